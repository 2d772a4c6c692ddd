#!/usr/bin/env bash
# Liquibase formatted SQL changesets that call pg_migrate, run with the real Liquibase CLI (the
# npm package bundles Liquibase and the PostgreSQL JDBC driver; it needs Java) against a throwaway
# server: update deploy by deploy, status, history, rollback-count, a changeset pg_migrate
# refuses and one whose job fails.
source "$(dirname "$0")/../lib.sh"
DIR=$EXAMPLES/liquibase
command -v java >/dev/null || { echo "FAILED: Liquibase needs Java (scripts/setup.sh installs openjdk-17-jre-headless)" >&2; exit 1; }
npm_install "$DIR"
start_example_db liquibase
cd "$DIR"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"; stop_scratch_cluster' EXIT

export LIQUIBASE_COMMAND_URL="jdbc:postgresql://127.0.0.1:$PORT/app" LIQUIBASE_COMMAND_USERNAME=postgres
# A quicker JVM start for the test's many short commands (the JIT's first tier only).
export JAVA_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
liquibase() { "$DIR/node_modules/liquibase/dist/liquibase/liquibase" --search-path="$SCRATCH,$DIR" "$@"; }
V1=20240101000000_create_orders
V2=20240102000000_orders_created_at_idx
V3=20240103000000_orders_amount_cents_expand
V4=20240104000000_orders_amount_cents_contract

# deploy N: the root changelog as the Nth deploy shipped it (its first N+1 includes: deploy 1
# has the table and its index). The included files and their paths are the project's, so
# DATABASECHANGELOG records the same FILENAME whichever root includes them.
deploy() { head -n $(($1 + 3)) changelog.yaml >"$SCRATCH/deploy$1.yaml"; echo "--changelog-file=deploy$1.yaml"; }
# with_broken FILE: the whole changelog plus one changeset from broken/.
with_broken() {
    local name; name=$(basename "$1" .sql)
    { cat changelog.yaml; echo "  - include: {file: $1}"; } >"$SCRATCH/$name.yaml"
    echo "--changelog-file=$name.yaml"
}

say "deploy 1: create orders, index created_at concurrently (a job; the changeset waits)"
run_logged update1 liquibase "$(deploy 1)" update
printed update1 "Running Changeset: changes/$V2.sql::$V2::pg_migrate"
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|applied"
expect "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_created_at_idx'::regclass" t
expect "SELECT id, exectype FROM databasechangelog ORDER BY orderexecuted" "$V1|EXECUTED
$V2|EXECUTED"
# the application writes 10,000 orders
q "INSERT INTO orders (customer, amount, created_at)
   SELECT 'customer ' || (g % 1000), (g % 5000) * 0.25, now() - g * interval '1 minute'
     FROM generate_series(1, 10000) AS g"

say "status and history: what is pending, what ran"
run_logged status liquibase status --verbose
printed status "2 changesets have not been applied"
printed status "changes/$V3.sql::$V3::pg_migrate"
run_logged history liquibase "$(deploy 1)" history
printed history "| changes/$V2.sql"

say "deploy 2: expand amount -> amount_cents (column, sync trigger, backfill job)"
run_logged update2 liquibase "$(deploy 2)" update
expect "SELECT version, state FROM migrate.status() WHERE version = '$V3'" "$V3|applied"
expect "SELECT \"column\", new_column FROM migrate.changes" "amount|amount_cents"
# the application of deploy 1 still writes amount only; amount_cents follows
expect "INSERT INTO orders (customer, amount) VALUES ('old app', 2.50) RETURNING amount_cents" 250

say "rollback-count --count=2: the expand is aborted, the index dropped concurrently and waited for"
run_logged rollback2 liquibase "$(deploy 2)" rollback-count --count=2
printed rollback2 "Rolling Back Changeset: changes/$V2.sql::$V2::pg_migrate"
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|rolled_back
$V3|rolled_back"
expect "SELECT to_regclass('orders_created_at_idx') IS NULL, (SELECT count(*) FROM migrate.changes)" "t|0"
# the index's rollback job ended (rollback_done) within the changeset's rollback
expect "SELECT action, version FROM migrate.events WHERE action LIKE 'rollback%' ORDER BY id" "rollback|$V3
rollback|$V2
rollback_done|$V2"
expect "SELECT string_agg(id, ',' ORDER BY orderexecuted) FROM databasechangelog" "$V1"

say "deploy 2 again, then deploy 3: the contract waits for the backfill and for its own job"
run_logged update2b liquibase "$(deploy 2)" update
run_logged update3 liquibase update
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|applied
$V3|applied"
expect "SELECT count(*) FROM migrate.events WHERE action = 'reapply'" 2
expect "SELECT count(*) FROM migrate.changes" 0
expect "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
         WHERE table_name = 'orders' AND column_name LIKE 'amount%'" "amount_cents|bigint|NO|0"
expect "SELECT indexrelid::regclass, pg_get_indexdef(indexrelid) FROM pg_index
         WHERE indrelid = 'orders'::regclass AND NOT indisprimary ORDER BY indexrelid::regclass::text" \
    "orders_amount_idx|CREATE INDEX orders_amount_idx ON public.orders USING btree (amount_cents)
orders_created_at_idx|CREATE INDEX orders_created_at_idx ON public.orders USING btree (created_at)"
expect "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal" 0
# every order's amount came through in cents, the old application's order too (its amount_cents
# went with the rolled-back expand; the second expand's backfill filled it again)
expect "SELECT (SELECT sum(amount_cents) FROM orders WHERE customer LIKE 'customer %')
             = (SELECT sum((g % 5000) * 25) FROM generate_series(1, 10000) AS g)" t
expect "SELECT amount_cents FROM orders WHERE customer = 'old app'" 250
expect "SELECT id, exectype FROM databasechangelog ORDER BY orderexecuted" "$V1|EXECUTED
$V2|EXECUTED
$V3|EXECUTED
$V4|EXECUTED"

say "the contract cannot be rolled back: its changeset has no --rollback"
expect_fail 'Liquibase does not support automatic rollback generation for raw sql changes' \
    liquibase rollback-count --count=1
expect "SELECT count(*) FROM databasechangelog" 4
expect "SELECT count(*) FROM migrate.status() WHERE state = 'applied'" 3

say "a changeset pg_migrate refuses (CREATE INDEX without CONCURRENTLY): 42P17, whose SQLSTATE Liquibase does not print"
out=$(liquibase "$(with_broken broken/20240105000000_orders_customer_idx.sql)" update 2>&1) && {
    printf 'FAILED: the refused changeset succeeded:\n%s\n' "$out" >&2; exit 1; }
printf '%s\n' "$out" | sed -n '/Exception Primary Reason/,/Exception Primary Source/p'
for want in 'ERROR: up SQL of version "20240105000000_orders_customer_idx" breaks lint rule index-not-concurrent' \
            '  Detail: statement 1 (line 1) index-not-concurrent: CREATE INDEX orders_customer_idx on existing table orders without CONCURRENTLY' \
            '  Hint: Build it with SELECT migrate.create_index(...)'; do
    [[ $out == *"$want"* ]] || { printf 'FAILED: liquibase output lacks: %s\n' "$want" >&2; exit 1; }
    echo "ok: liquibase printed: $want"
done
expect "SELECT count(*) FROM migrate.status() WHERE version = '20240105000000_orders_customer_idx'" 0
expect "SELECT count(*) FROM databasechangelog" 4
expect "SELECT count(*) FROM pg_class WHERE relname = 'orders_customer_idx'" 0

say "a changeset whose job fails (a unique index over duplicates): the wait raises 23505"
out=$(liquibase "$(with_broken broken/20240106000000_orders_customer_key.sql)" update 2>&1) && {
    printf 'FAILED: the failing changeset succeeded:\n%s\n' "$out" >&2; exit 1; }
printf '%s\n' "$out" | sed -n '/Exception Primary Reason/,/Exception Primary Source/p'
for want in 'of up SQL of version "20240106000000_orders_customer_key" failed: could not create unique index "orders_customer_key" (Key (customer)=(customer ' \
            '  Hint: See SELECT * FROM migrate.jobs WHERE job = ' \
            "[Failed SQL: (0) CALL migrate.wait_version('20240106000000_orders_customer_key')]"; do
    [[ $out == *"$want"* ]] || { printf 'FAILED: liquibase output lacks: %s\n' "$want" >&2; exit 1; }
    echo "ok: liquibase printed: $want"
done
# Liquibase does not print the SQLSTATE; pg_migrate keeps it with the job
expect "SELECT m.state, j.state, j.last_sqlstate FROM migrate.status() m JOIN migrate.jobs j ON j.version = m.version
         WHERE m.version = '20240106000000_orders_customer_key'" "failed|failed|23505"
expect "SELECT count(*) FROM databasechangelog" 4
expect "SELECT count(*) FROM pg_class WHERE relname = 'orders_customer_key'" 0   # no INVALID index left
# Liquibase never recorded the changeset: roll the failed version back by hand (or fix the data
# and run update again, which applies it again and resumes the job)
q "SELECT migrate.rollback('20240106000000_orders_customer_key')" >/dev/null
q "CALL migrate.wait_version('20240106000000_orders_customer_key')"
expect "SELECT state FROM migrate.status() WHERE version = '20240106000000_orders_customer_key'" rolled_back
