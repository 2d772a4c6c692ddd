#!/usr/bin/env bash
# dbmate migrations that call pg_migrate, run with the real dbmate CLI (npm's dbmate package ships
# the binary) against a throwaway server: up, status, rollback one by one, then an index whose
# build fails on duplicate data, and the way back.
source "$(dirname "$0")/../lib.sh"
DIR=$EXAMPLES/dbmate
npm_install "$DIR"
start_example_db dbmate
cd "$DIR"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"; stop_scratch_cluster' EXIT

# dbmate's driver (lib/pq) asks for TLS unless told; no db/schema.sql dump into the project
export DATABASE_URL="$DATABASE_URL?sslmode=disable" DBMATE_NO_DUMP_SCHEMA=true
dbmate() { "$DIR/node_modules/.bin/dbmate" "$@"; }   # what `npx dbmate` runs
V1=20240101000000
V2=20240102000001

say "dbmate up: create orders, a unique index built by a job, the wait in a migration of its own"
run_logged up dbmate up
expect "SELECT version, name, state FROM migrate.status()" "$V1|create_orders|applied
$V2|orders_reference_key|applied"
expect "SELECT indisvalid, indisunique FROM pg_index WHERE indexrelid = 'orders_reference_key'::regclass" "t|t"
expect "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations" "$V1,20240102000000,$V2,20240102000002"
run_logged status dbmate status
printed status "[X] 20240102000002_wait_orders_reference_key.sql"
printed status "Applied: 4"

say "dbmate rollback, four times: the index's rollback job is waited for before the table goes"
for _ in 1 2 3 4; do run_logged rollback dbmate rollback; done
expect "SELECT version, state FROM migrate.status()" "$V1|rolled_back
$V2|rolled_back"
expect "SELECT to_regclass('orders') IS NULL" t
# 20240102000000's down (the wait) ended the DROP INDEX CONCURRENTLY job before the table's rollback
expect "SELECT action, version FROM migrate.events WHERE action LIKE 'rollback%' ORDER BY id" "rollback|$V2
rollback_done|$V2
rollback|$V1"
expect "SELECT count(*) FROM schema_migrations" 0

say "deploy 1 has only the table; the application writes orders, two with the same reference"
mkdir "$SCRATCH/deploy1"
cp db/migrations/${V1}_create_orders.sql "$SCRATCH/deploy1/"
run_logged deploy1 dbmate --migrations-dir "$SCRATCH/deploy1" up
q "INSERT INTO orders (reference, amount) SELECT 'R' || g, g FROM generate_series(1, 1000) AS g"
q "INSERT INTO orders (reference, amount) VALUES ('R7', 1)"

say "deploy 2: the index build fails; the wait raises the job's SQLSTATE (23505) and dbmate stops"
out=$(dbmate up 2>&1) && { printf 'FAILED: dbmate up succeeded:\n%s\n' "$out" >&2; exit 1; }
printf '%s\n' "$out"
[[ $out == *"Error: pq: pg_migrate: job "*" failed: statement 1/1 (line 1) of up SQL of version \"$V2\" failed"*"(23505)"* ]] ||
    { echo "FAILED: dbmate did not print the job's error with 23505" >&2; exit 1; }
echo "ok: dbmate printed the failed job's error and (23505)"
expect "SELECT m.state, j.state, j.last_sqlstate FROM migrate.status() m JOIN migrate.jobs j ON j.version = m.version
         WHERE m.version = '$V2' ORDER BY j.job DESC LIMIT 1" "failed|failed|23505"
# the apply was recorded by dbmate (it committed), the wait was not
expect "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations" "$V1,20240102000000,$V2"
expect "SELECT count(*) FROM pg_class WHERE relname = 'orders_reference_key'" 0   # no INVALID index left

say "fix the data, roll the index's migration back (the next rollback waits for it), up again"
q "DELETE FROM orders WHERE reference = 'R7' AND amount = 1"
run_logged rollback_failed dbmate rollback     # 20240102000001: migrate.rollback of the failed version
run_logged rollback_wait dbmate rollback       # 20240102000000: waits for that rollback
run_logged up_again dbmate up
expect "SELECT version, state FROM migrate.status()" "$V1|applied
$V2|applied"
expect "SELECT indisvalid, indisunique FROM pg_index WHERE indexrelid = 'orders_reference_key'::regclass" "t|t"
expect "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations" "$V1,20240102000000,$V2,20240102000002"
