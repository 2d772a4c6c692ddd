#!/usr/bin/env bash
# Knex migrations that call pg_migrate, run with the real Knex CLI against a throwaway server:
# migrate:up / seed:run / migrate:latest / migrate:rollback, then a migration pg_migrate refuses.
source "$(dirname "$0")/../lib.sh"
DIR=$EXAMPLES/knex
npm_install "$DIR"
start_example_db knex
cd "$DIR"

knex() { "$DIR/node_modules/.bin/knex" "$@"; }   # what `npx knex` runs
V1=20240101000000_create_orders
V2=20240102000000_orders_created_at_idx
V3=20240103000000_orders_amount_cents_expand

say "knex: create orders, load 50,000 of them, index them concurrently, expand amount"
knex migrate:up                      # batch 1: create_orders
knex seed:run                        # 50,000 orders
knex migrate:up                      # batch 2: the index, built by a worker; the migration waits
knex migrate:up                      # batch 3: expand amount -> amount_cents
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|applied
$V3|applied"
expect "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_created_at_idx'::regclass" t
expect "SELECT \"column\", new_column FROM migrate.changes" "amount|amount_cents"
# the application that still writes amount keeps working, and amount_cents follows
expect "INSERT INTO orders (customer, amount) VALUES ('old app', 2.50) RETURNING amount_cents" 250

say "knex: migrate:rollback --all runs pg_migrate's down SQL, newest first"
knex migrate:rollback --all
expect "SELECT version, state FROM migrate.status()" "$V1|rolled_back
$V2|rolled_back
$V3|rolled_back"
expect "SELECT to_regclass('orders') IS NULL, (SELECT count(*) FROM migrate.changes)" "t|0"
# the index's rollback ran in a job: rollback_done is its end, before Knex went on to $V1
expect "SELECT action, version FROM migrate.events WHERE action LIKE 'rollback%' ORDER BY id" "rollback|$V3
rollback|$V2
rollback_done|$V2
rollback|$V1"
expect "SELECT count(*) FROM knex_migrations" 0

say "knex: again, with the contract in the same migrate:latest (it waits for the backfill)"
knex migrate:up
knex seed:run
knex migrate:latest                  # index, expand, contract
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|applied
$V3|applied"
expect "SELECT count(*) FROM migrate.events WHERE action = 'reapply'" 3
expect "SELECT name, batch FROM knex_migrations ORDER BY id" "$V1.js|1
$V2.js|2
$V3.js|2
20240104000000_orders_amount_cents_contract.js|2"
expect "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
         WHERE table_name = 'orders' AND column_name LIKE 'amount%'" "amount_cents|bigint|NO|0"
expect "SELECT indexrelid::regclass, pg_get_indexdef(indexrelid) FROM pg_index
         WHERE indrelid = 'orders'::regclass AND NOT indisprimary ORDER BY indexrelid::regclass::text" \
    "orders_amount_idx|CREATE INDEX orders_amount_idx ON public.orders USING btree (amount_cents)
orders_created_at_idx|CREATE INDEX orders_created_at_idx ON public.orders USING btree (created_at)"
expect "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal" 0
# every order's amount came through in cents
expect "SELECT (SELECT sum(amount_cents) FROM orders)
             = (SELECT sum((g % 5000) * 25) FROM generate_series(1, 50000) AS g)" t

say "knex: the contract cannot be rolled back"
expect_fail "cannot be undone" knex migrate:rollback
expect "SELECT count(*) FROM knex_migrations" 4
expect "SELECT count(*) FROM migrate.status() WHERE state = 'applied'" 3

say "knex: a migration pg_migrate refuses (CREATE INDEX without CONCURRENTLY)"
# run from a scratch copy of the project's migrations plus broken/, so the project stays clean
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"; stop_scratch_cluster' EXIT
cp -r migrations pg_migrate.js "$SCRATCH/"
cp broken/*.js "$SCRATCH/migrations/"
out=$(knex migrate:latest --migrations-directory "$SCRATCH/migrations" 2>&1) && {
    printf 'FAILED: the refused migration succeeded:\n%s\n' "$out" >&2; exit 1; }
printf '%s\n' "$out"
for want in 'ERROR 42P17: up SQL of version "20240105000000_orders_customer_idx" breaks lint rule index-not-concurrent' \
            'DETAIL: statement 1 (line 1) index-not-concurrent: CREATE INDEX orders_customer_idx on existing table orders without CONCURRENTLY' \
            'HINT: Build it with SELECT migrate.create_index(...)'; do
    [[ $out == *"$want"* ]] || { printf 'FAILED: knex output lacks: %s\n' "$want" >&2; exit 1; }
    echo "ok: knex printed: $want"
done
expect "SELECT count(*) FROM migrate.status() WHERE version = '20240105000000_orders_customer_idx'" 0
expect "SELECT count(*) FROM knex_migrations" 4
expect "SELECT count(*) FROM pg_class WHERE relname = 'orders_customer_idx'" 0
