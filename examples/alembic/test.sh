#!/usr/bin/env bash
# Runs the Alembic example against a throwaway server: upgrade, expand, downgrade to base
# (pg_migrate rolls back), upgrade to head with the contract, the irreversible downgrade, and a
# revision that pg_migrate refuses. Run it with: SKIP_INSTALL=1 bash scripts/examples.sh alembic
source "$(dirname "$0")/../lib.sh"
python_env
start_example_db alembic
cd "$EXAMPLES/alembic"
alembic --version

# The application's data: 50,000 accounts, balances 1.25, 2.50, …, 62500.00.
seed() {
    q "INSERT INTO accounts (email, balance)
       SELECT 'user' || g || '@example.com', g * 1.25 FROM generate_series(1, 50000) AS g"
}

# fails_with OUTPUT_FILE COMMAND...: the command must fail; its output goes to OUTPUT_FILE.
fails_with() {
    local out=$1; shift
    if "$@" >"$out" 2>&1; then
        cat "$out"; echo "FAILED: expected $* to fail" >&2; exit 1
    fi
}
# output_has OUTPUT_FILE TEXT: OUTPUT_FILE contains TEXT.
output_has() {
    if ! grep -qF -- "$2" "$1"; then
        cat "$1"; printf 'FAILED: the output has no "%s"\n' "$2" >&2; exit 1
    fi
    printf 'ok: the output has "%s"\n' "$2"
}

say "upgrade to 0002: a table, then an index built concurrently in a background job"
alembic upgrade 0002_accounts_email_idx
expect "SELECT version, state FROM migrate.status()" \
"0001_create_accounts|applied
0002_accounts_email_idx|applied"
expect "SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email_idx'::regclass" t
expect "SELECT version_num FROM alembic_version" 0002_accounts_email_idx
seed

say "upgrade to 0003: expand balance (numeric) to balance_cents (bigint)"
alembic upgrade 0003_balance_cents_expand
expect "SELECT kind, \"column\", new_column FROM migrate.changes WHERE version = '0003_balance_cents_expand'" \
    "expand_column|balance|balance_cents"
# while the change is open, the old and the new application both work: the trigger syncs them
expect "INSERT INTO accounts (email, balance) VALUES ('old-app@example.com', 2.50) RETURNING balance_cents" 250
expect "INSERT INTO accounts (email, balance_cents) VALUES ('new-app@example.com', 399) RETURNING balance" 3.99
expect "SELECT version_num FROM alembic_version" 0003_balance_cents_expand

say "downgrade to base: pg_migrate aborts the change, drops the index (in a job) and the table"
alembic downgrade base
expect "SELECT version, state FROM migrate.status()" \
"0001_create_accounts|rolled_back
0002_accounts_email_idx|rolled_back
0003_balance_cents_expand|rolled_back"
expect "SELECT phase FROM migrate.all_changes WHERE version = '0003_balance_cents_expand'" aborted
expect "SELECT to_regclass('accounts') IS NULL, count(*) FROM pg_proc WHERE proname LIKE 'accounts_migrate_sync%'" "t|0"
expect "SELECT count(*) FROM alembic_version" 0
expect "SELECT count(*) FROM migrate.jobs WHERE state IN ('queued', 'running')" 0

say "upgrade to head: everything again, then wait for the backfill and contract"
alembic upgrade 0002_accounts_email_idx
seed
alembic upgrade head
expect "SELECT version_num FROM alembic_version" 0004_balance_cents_contract
expect_accounts_contracted
# the expand is a pg_migrate version; the contract is not (it has no way back to record)
expect "SELECT version, state FROM migrate.status()" \
"0001_create_accounts|applied
0002_accounts_email_idx|applied
0003_balance_cents_expand|applied"
expect "SELECT phase FROM migrate.all_changes WHERE version = '0003_balance_cents_expand' ORDER BY change DESC LIMIT 1" contracted
expect "SELECT count(*) FROM migrate.changes" 0
expect "SELECT count(*) FROM migrate.jobs WHERE state IN ('queued', 'running')" 0

say "downgrading past the contract is refused"
fails_with "$WORK/downgrade.out" alembic downgrade -1
output_has "$WORK/downgrade.out" "0004_balance_cents_contract cannot be downgraded"
expect "SELECT version_num FROM alembic_version" 0004_balance_cents_contract

say "a revision that pg_migrate refuses (lint: CREATE INDEX without CONCURRENTLY)"
fails_with "$WORK/broken.out" alembic -n broken upgrade head
grep -E '^(ERROR|INFO  \[alembic.runtime)' "$WORK/broken.out" || true
output_has "$WORK/broken.out" "SQLSTATE 42P17: up SQL of version \"0005_accounts_balance_cents_idx\" breaks lint rule index-not-concurrent"
output_has "$WORK/broken.out" "ERROR [alembic.pg_migrate] DETAIL: statement 1 (line 1) index-not-concurrent"
output_has "$WORK/broken.out" "ERROR [alembic.pg_migrate] HINT: "
output_has "$WORK/broken.out" "psycopg.errors.InvalidObjectDefinition"
# nothing of it was applied or recorded
expect "SELECT version_num FROM alembic_version" 0004_balance_cents_contract
expect "SELECT count(*) FROM migrate.migrations WHERE version LIKE '0005%'" 0
expect "SELECT count(*) FROM pg_indexes WHERE tablename = 'accounts'" 2

say "alembic example passed"
