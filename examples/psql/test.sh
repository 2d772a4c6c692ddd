#!/usr/bin/env bash
# Runs deploy.sql and rollback.sql with psql against a throwaway PostgreSQL 15 server and checks
# what pg_migrate recorded and what the schema and the data look like after each step.
source "$(dirname "$0")/../lib.sh"
cd "$(dirname "$0")"
start_example_db psql

# show LOG: the output of a psql run, indented, without the LOCATION lines of VERBOSITY verbose.
show() { grep -v '^LOCATION:' "$LOGS/$1" | sed 's/^/    /'; }

# run_psql LOG ARGS...: psql as a deploy pipeline runs it; its output is kept in $LOGS/LOG and shown.
run_psql() {
    local log=$1 rc=0; shift
    psql -X -v ON_ERROR_STOP=1 "$@" >"$LOGS/$log" 2>&1 || rc=$?
    show "$log"
    [ "$rc" = 0 ] || { printf 'FAILED: psql %s exited with %s\n' "$*" "$rc" >&2; exit 1; }
}

# expect_exit CODE WANT LOG ARGS...: psql must exit with CODE and print WANT.
expect_exit() {
    local code=$1 want=$2 log=$LOGS/$3 rc=0; shift 3
    psql -X -v ON_ERROR_STOP=1 "$@" >"$log" 2>&1 || rc=$?
    show "$(basename "$log")"
    if [ "$rc" != "$code" ]; then
        printf 'FAILED: psql %s exited with %s, expected %s\n' "$*" "$rc" "$code" >&2; exit 1
    fi
    if ! grep -qF -- "$want" "$log"; then
        printf 'FAILED: psql %s did not print "%s"\n' "$*" "$want" >&2; exit 1
    fi
    printf 'ok: psql exits %s with "%s"\n' "$code" "$want"
}

# count_in LOG TEXT: how many lines of LOG contain TEXT.
count_in() { grep -cF -- "$2" "$LOGS/$1" || true; }

STATES="SELECT string_agg(version || '=' || state, ' ' ORDER BY version) FROM migrate.status()"
COLUMNS="SELECT string_agg(column_name || ' ' || data_type || coalesce(' default ' || column_default, ''), ', ' ORDER BY ordinal_position)
           FROM information_schema.columns WHERE table_name = 'accounts'"
EMAIL_IDX="SELECT coalesce((SELECT indisvalid::text FROM pg_index WHERE indexrelid = to_regclass('accounts_email_idx')), 'none')"
# Everything a second deploy must leave alone: the history, the jobs and the schema.
SNAPSHOT="SELECT (SELECT count(*) FROM migrate.events) || ' events, ' || (SELECT count(*) FROM migrate.jobs) || ' jobs, '
                 || (SELECT md5(string_agg(column_name || data_type, ',' ORDER BY ordinal_position))
                       FROM information_schema.columns WHERE table_name = 'accounts')"

say "1. deploy: create + seed, expand/contract, concurrent index"
run_psql deploy1.log -f deploy.sql
# When psql returns, the deploy is complete: the CALLs waited for the backfill, the contract job
# and the index build (without them, 003 would still be 'applying' here and 002 not contracted).
expect "$STATES" "001_create_accounts=applied 002_balance_cents=applied 003_accounts_email_idx=applied"
expect "$COLUMNS" "id bigint, email text, created_at timestamp with time zone default now(), balance_cents bigint default 0"
expect "SELECT count(*), sum(balance_cents), count(*) FILTER (WHERE balance_cents IS NULL) FROM accounts" "100000|499500000|0"
expect "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'balance_cents'" "t"
expect "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'accounts_balance_check'" "CHECK (((balance_cents)::numeric >= (0)::numeric))"
expect "$EMAIL_IDX" "true"
expect "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal" "0"
expect "SELECT kind || ' ' || phase FROM migrate.all_changes" "expand_column contracted"
expect "SELECT count(*) FROM migrate.changes" "0"
expect "SELECT string_agg(kind || ' ' || state, ', ' ORDER BY job) FROM migrate.jobs" "backfill done, sql done, sql done"

say "2. deploy again: nothing to do"
before=$(q "$SNAPSHOT")
run_psql deploy2.log -f deploy.sql
expect "$SNAPSHOT" "$before"
expect "$STATES" "001_create_accounts=applied 002_balance_cents=applied 003_accounts_email_idx=applied"
n=$(count_in deploy2.log 'is already applied; nothing to do')
[ "$n" = 3 ] || { echo "FAILED: expected 3 'already applied' NOTICEs, got $n" >&2; exit 1; }
echo "ok: 3 NOTICEs 'already applied', the expand/contract block skipped, no new event, job or column"

say "3. rollback.sql -v to=002_balance_cents: the index is dropped concurrently in a job, waited for"
run_psql rollback1.log -v to=002_balance_cents -f rollback.sql
expect "$STATES" "001_create_accounts=applied 002_balance_cents=applied 003_accounts_email_idx=rolled_back"
expect "$EMAIL_IDX" "none"
expect "SELECT state FROM migrate.jobs ORDER BY job DESC LIMIT 1" "done"

say "4. rollback.sql (latest version): a contracted expand/contract change cannot be undone"
expect_exit 3 "ERROR:  55000: statement 1/1 (line 1) of down SQL of version \"002_balance_cents\" failed: cannot abort change 1: it has already been contracted" \
    rollback2.log -f rollback.sql
expect "$STATES" "001_create_accounts=applied 002_balance_cents=applied 003_accounts_email_idx=rolled_back"
expect "SELECT count(*), sum(balance_cents) FROM accounts" "100000|499500000"
# the failed attempt is still recorded: a short-lived worker appends the event a moment later
for _ in $(seq 50); do
    [ "$(q "SELECT count(*) FROM migrate.events WHERE version = '002_balance_cents' AND action = 'rollback_failed'")" = 1 ] && break
    sleep 0.1
done
expect "SELECT action, detail->>'sqlstate' FROM migrate.events WHERE version = '002_balance_cents' ORDER BY id DESC LIMIT 1" \
    "rollback_failed|55000"

say "5. deploy again: the rolled-back version is applied again, the others are left alone"
run_psql deploy3.log -f deploy.sql
expect "$STATES" "001_create_accounts=applied 002_balance_cents=applied 003_accounts_email_idx=applied"
expect "$EMAIL_IDX" "true"
expect "SELECT string_agg(action, ' ' ORDER BY id) FROM migrate.events WHERE version = '003_accounts_email_idx'" \
    "apply apply_done rollback rollback_done reapply apply_done"

say "6. psql -1 (--single-transaction) is wrong: the first CALL fails with 25001"
before=$(q "$SNAPSHOT")
expect_exit 3 "ERROR:  25001: migrate.wait(), wait_version() and wait_change() cannot run inside a transaction block" single.log -1 -f deploy.sql
expect "$SNAPSHOT" "$before"

say "7. an edited migration file: ERROR 55000 (checksum), HINT, psql exits 3, nothing runs"
cp -r migrations deploy.sql "$WORK/"
sed -i 's/generate_series(1, 100000)/generate_series(1, 200000)/' "$WORK/migrations/001_create_accounts.sql"
expect_exit 3 'ERROR:  55000: version "001_create_accounts" is already applied with a different checksum' \
    edited.log -f "$WORK/deploy.sql"
grep -q '^HINT:  An applied migration must not be edited: add a new version for the change.' "$LOGS/edited.log" ||
    { echo "FAILED: no HINT line in the output" >&2; exit 1; }
echo "ok: the HINT line is printed"
expect "$SNAPSHOT" "$before"
expect "SELECT count(*) FROM accounts" "100000"

echo "psql example: all checks passed"
