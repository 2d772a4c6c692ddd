#!/usr/bin/env bash
# Builds the tokio-postgres example (a workspace member) and runs it twice against a throwaway
# PostgreSQL 15 server: the program checks the errors it provokes itself (SQLSTATE, DETAIL, HINT)
# and exits non-zero otherwise; this script checks what it left in the database.
source "$(dirname "$0")/../lib.sh"
CRATE=pg_migrate_example_tokio_postgres
BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug/$CRATE

say "building $CRATE"
(cd "$REPO" && RUST_BACKTRACE=0 cargo build -p "$CRATE" --quiet)

start_example_db tokio_postgres
STATES="SELECT string_agg(version || '=' || state, ' ' ORDER BY version) FROM migrate.status()"
BOTH_APPLIED="20240601090000_orders=applied 20240601090100_orders_created_at_idx=applied"

say "1. first run: apply, wait for the index job, provoke 55000, 25001 and 42P17"
run_logged run1.log "$BIN"
expect "$STATES" "$BOTH_APPLIED"
expect "SELECT count(*) FROM orders" "20000"
expect "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_created_at_idx'::regclass" "t"
expect "SELECT count(*) FROM migrate.migrations WHERE version = '20240601090200_orders_customer_idx'" "0"
expect "SELECT count(*) FROM pg_class WHERE relname = 'orders_customer_idx'" "0"
printed run1.log 'migrate.apply -> applying'
for code in 55000 25001 42P17; do printed run1.log "code:    $code"; done

say "2. second run: every apply finds its version applied; the same errors, nothing new recorded"
events=$(q "SELECT count(*) FROM migrate.events")
run_logged run2.log "$BIN"
expect "SELECT count(*) FROM migrate.events" "$events"
expect "$STATES" "$BOTH_APPLIED"
printed run2.log 'NOTICE: pg_migrate: version "20240601090100_orders_created_at_idx" is already applied; nothing to do'

say "3. without DATABASE_URL it refuses to start"
rc=0
env -u DATABASE_URL "$BIN" >"$LOGS/nourl.log" 2>&1 || rc=$?
[ "$rc" = 2 ] || { echo "FAILED: expected exit status 2 without DATABASE_URL, got $rc" >&2; exit 1; }
printed nourl.log 'set DATABASE_URL'

echo "tokio-postgres example: all checks passed"
