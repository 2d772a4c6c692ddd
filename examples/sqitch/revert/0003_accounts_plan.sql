-- Revert accounts:0003_accounts_plan from pg
--
-- Runs the down SQL pg_migrate recorded with the version. No BEGIN/COMMIT (see the deploy script).

SELECT migrate.rollback('0003_accounts_plan');
CALL migrate.wait_version('0003_accounts_plan');
