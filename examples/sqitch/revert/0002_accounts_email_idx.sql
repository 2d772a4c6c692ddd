-- Revert accounts:0002_accounts_email_idx from pg
--
-- Runs the down SQL pg_migrate recorded with the version. No BEGIN/COMMIT (see the deploy script).

SELECT migrate.rollback('0002_accounts_email_idx');
CALL migrate.wait_version('0002_accounts_email_idx');
