#!/usr/bin/env bash
# node-pg-migrate migrations that call pg_migrate, run with the real node-pg-migrate CLI against a
# throwaway server: up (some, then all), up --dry-run as the status, down, a contract whose down is
# disabled, then a migration pg_migrate refuses.
source "$(dirname "$0")/../lib.sh"
DIR=$EXAMPLES/node-pg-migrate
npm_install "$DIR"
start_example_db node-pg-migrate
cd "$DIR"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"; stop_scratch_cluster' EXIT

pgm() { "$DIR/node_modules/.bin/node-pg-migrate" "$@"; }   # what `npx node-pg-migrate` runs
V1=20240101000000_create_orders
V2=20240102000000_orders_created_at_idx
V3=20240103000000_orders_amount_cents_expand
V4=20240104000000_orders_amount_cents_contract

say "up 1 (create orders), the application writes 10,000 orders, up 2 (index, expand)"
run_logged up1 pgm up 1
q "INSERT INTO orders (customer, amount, created_at)
   SELECT 'customer ' || (g % 1000), (g % 5000) * 0.25, now() - g * interval '1 minute'
     FROM generate_series(1, 10000) AS g"
run_logged up2 pgm up 2
# the index migration ran outside node-pg-migrate's transaction, its statements one by one
printed up2 "#> WARNING: Need to break single transaction! <"
printed up2 "CALL migrate.wait_version('$V2');"
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|applied
$V3|applied"
expect "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_created_at_idx'::regclass" t
expect "SELECT \"column\", new_column FROM migrate.changes" "amount|amount_cents"
# the application that still writes amount keeps working, and amount_cents follows
expect "INSERT INTO orders (customer, amount) VALUES ('old app', 2.50) RETURNING amount_cents" 250
expect "SELECT string_agg(name, ',' ORDER BY id) FROM pgmigrations" "$V1,$V2,$V3"

say "up --dry-run (node-pg-migrate has no status command): the contract is pending"
run_logged dry pgm up --dry-run
printed dry "> - $V4"
expect "SELECT count(*) FROM pgmigrations" 3

say "down 3: pg_migrate rolls back all three, newest first; the index's rollback job is waited for"
run_logged down3 pgm down 3
expect "SELECT version, state FROM migrate.status()" "$V1|rolled_back
$V2|rolled_back
$V3|rolled_back"
expect "SELECT to_regclass('orders') IS NULL, (SELECT count(*) FROM migrate.changes)" "t|0"
expect "SELECT action, version FROM migrate.events WHERE action LIKE 'rollback%' ORDER BY id" "rollback|$V3
rollback|$V2
rollback_done|$V2
rollback|$V1"
expect "SELECT count(*) FROM pgmigrations" 0

say "up 1, 10,000 orders, then up: index, expand and contract in one run (it waits for the backfill)"
run_logged up1b pgm up 1
q "INSERT INTO orders (customer, amount, created_at)
   SELECT 'customer ' || (g % 1000), (g % 5000) * 0.25, now() - g * interval '1 minute'
     FROM generate_series(1, 10000) AS g"
run_logged up3 pgm up
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|applied
$V3|applied"
expect "SELECT count(*) FROM migrate.events WHERE action = 'reapply'" 3
expect "SELECT string_agg(name, ',' ORDER BY id) FROM pgmigrations" "$V1,$V2,$V3,$V4"
expect "SELECT count(*) FROM migrate.changes" 0
expect "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
         WHERE table_name = 'orders' AND column_name LIKE 'amount%'" "amount_cents|bigint|NO|0"
expect "SELECT indexrelid::regclass, pg_get_indexdef(indexrelid) FROM pg_index
         WHERE indrelid = 'orders'::regclass AND NOT indisprimary ORDER BY indexrelid::regclass::text" \
    "orders_amount_idx|CREATE INDEX orders_amount_idx ON public.orders USING btree (amount_cents)
orders_created_at_idx|CREATE INDEX orders_created_at_idx ON public.orders USING btree (created_at)"
expect "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal" 0
expect "SELECT (SELECT sum(amount_cents) FROM orders)
             = (SELECT sum((g % 5000) * 25) FROM generate_series(1, 10000) AS g)" t

say "down: the contract's down is disabled"
expect_fail "User has disabled down migration on file: $V4" pgm down
expect "SELECT count(*) FROM pgmigrations" 4
expect "SELECT count(*) FROM migrate.status() WHERE state = 'applied'" 3

say "a migration pg_migrate refuses (CREATE INDEX without CONCURRENTLY)"
# from a scratch copy of migrations/ plus broken/, so the project stays clean (pg_migrate.js is a
# link, so that its require('pg') finds the project's node_modules)
cp -r migrations "$SCRATCH/"
ln -s "$DIR/pg_migrate.js" "$SCRATCH/"
cp broken/*.js "$SCRATCH/migrations/"
out=$(pgm up -m "$SCRATCH/migrations" 2>&1) && {
    printf 'FAILED: the refused migration succeeded:\n%s\n' "$out" >&2; exit 1; }
printf '%s\n' "$out"
for want in 'error: up SQL of version "20240105000000_orders_customer_idx" breaks lint rule index-not-concurrent' \
            "code: '42P17'" \
            "detail: 'statement 1 (line 1) index-not-concurrent: CREATE INDEX orders_customer_idx on existing table orders without CONCURRENTLY" \
            "hint: 'Build it with SELECT migrate.create_index(...)"; do
    [[ $out == *"$want"* ]] || { printf 'FAILED: node-pg-migrate output lacks: %s\n' "$want" >&2; exit 1; }
    echo "ok: node-pg-migrate printed: $want"
done
expect "SELECT count(*) FROM migrate.status() WHERE version = '20240105000000_orders_customer_idx'" 0
expect "SELECT count(*) FROM pgmigrations" 4
expect "SELECT count(*) FROM pg_class WHERE relname = 'orders_customer_idx'" 0
