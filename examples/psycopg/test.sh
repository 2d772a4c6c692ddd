#!/usr/bin/env bash
# Runs the psycopg 3 example against a throwaway server: migrate_demo.py applies migrations, waits
# for background jobs in autocommit mode, and makes pg_migrate refuse an edited migration (55000),
# a wait inside a transaction block (25001), an unsafe index build (42P17), an apply while
# another version is still applying (55006), and a job that fails (23505, the failed statement's SQLSTATE) and is resumed. It checks the exception class, e.sqlstate and
# e.diag.message_primary/detail/hint itself and exits non-zero if any is not as expected; this
# script checks its output and the database afterwards.
# Run it with: SKIP_INSTALL=1 bash scripts/examples.sh psycopg
source "$(dirname "$0")/../lib.sh"
python_env
start_example_db psycopg
cd "$EXAMPLES/psycopg"
python -c 'import psycopg; print("psycopg", psycopg.__version__, "libpq", psycopg.pq.version(), psycopg.pq.__impl__)'

say "migrate_demo.py"
python migrate_demo.py | tee "$WORK/demo.out"

# output_has TEXT: the script printed TEXT.
output_has() {
    grep -qF -- "$1" "$WORK/demo.out" || { printf 'FAILED: the output has no "%s"\n' "$1" >&2; exit 1; }
    printf 'ok: the output has "%s"\n' "$1"
}

say "what reached the client"
output_has "caught psycopg.errors.ObjectNotInPrerequisiteState"
output_has "e.sqlstate:                55000"
output_has 'e.diag.message_primary:    version "20240101000000_create_accounts" is already applied with a different checksum'
output_has "e.diag.message_detail:     Recorded checksum "
output_has "e.diag.message_hint:       An applied migration must not be edited"
output_has "caught psycopg.errors.ActiveSqlTransaction"
output_has "e.sqlstate:                25001"
output_has "e.diag.message_primary:    migrate.wait()"
output_has "e.diag.message_hint:       COMMIT first"
output_has "caught psycopg.errors.InvalidObjectDefinition"
output_has "e.sqlstate:                42P17"
output_has 'e.diag.message_primary:    up SQL of version "20240103000000_accounts_balance_idx" breaks lint rule index-not-concurrent'
output_has "e.diag.message_hint:       Build it with SELECT migrate.create_index(...)"
output_has "caught psycopg.errors.ObjectInUse"
output_has "e.sqlstate:                55006"
output_has "caught psycopg.errors.UniqueViolation"
output_has "e.sqlstate:                23505"
output_has 'e.diag.message_primary:    pg_migrate: job 3 failed: '
output_has "NOTICE: pg_migrate: resuming version \"20240106000000_accounts_email_key\" in job 3"
output_has "NOTICE: pg_migrate: job 1 is done"
output_has "all checks passed"
if grep -q FAILED "$WORK/demo.out"; then echo "FAILED: a check of migrate_demo.py failed" >&2; exit 1; fi

say "the database afterwards"
expect "SELECT version, state FROM migrate.status()" \
"20240101000000_create_accounts|applied
20240102000000_accounts_email_idx|applied
20240104000000_accounts_created_at_idx|applied
20240105000000_accounts_note|applied
20240106000000_accounts_email_key|applied"
expect "SELECT indexrelid::regclass, indisvalid FROM pg_index WHERE indrelid = 'accounts'::regclass ORDER BY indexrelid::regclass::text" \
"accounts_created_at_idx|t
accounts_email_idx|t
accounts_email_key|t
accounts_pkey|t"
# the refused calls changed nothing: numeric(12,2) as first applied, no balance index
expect "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'balance'" \
    "numeric(12,2)"
expect "SELECT count(*) FROM accounts" 1000

say "psycopg example passed"
