-- Revert accounts:0001_accounts from pg
--
-- Runs the down SQL pg_migrate recorded with the version. No BEGIN/COMMIT (see the deploy script).

SELECT migrate.rollback('0001_accounts');
CALL migrate.wait_version('0001_accounts');
