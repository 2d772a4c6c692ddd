-- Deploys every migration of this project, in order:
--
--     psql -X -v ON_ERROR_STOP=1 -f deploy.sql
--
-- Safe to run again: each migrate.apply() of a version that is already applied does nothing
-- (NOTICE "... is already applied; nothing to do"), and the psql-level steps are guarded.
--
-- Do NOT run it with -1 / --single-transaction (nor put BEGIN/COMMIT around the \ir lines):
-- CALL migrate.wait_version(), migrate.wait_change() and migrate.wait() commit between their
-- polls, so inside a transaction block they fail with ERROR 25001; and a background job (a
-- CREATE INDEX CONCURRENTLY, a backfill) only starts once the transaction that queued it has
-- committed. In psql's default autocommit mode every statement below is its own transaction:
-- each migrate.apply() is atomic by itself, and the waits run between them.

-- Stop at the first error (psql then exits with status 3), whatever the command line says.
\set ON_ERROR_STOP on
-- Print the SQLSTATE with each error, so a deploy log says "ERROR:  55000: ..." (and the HINT).
\set VERBOSITY verbose

\ir migrations/001_create_accounts.sql
\ir migrations/002_balance_cents.sql
\ir migrations/003_accounts_email_idx.sql

SELECT version, state, applied_at::timestamp(0) AS applied_at FROM migrate.status();
