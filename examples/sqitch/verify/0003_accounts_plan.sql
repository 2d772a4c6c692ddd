-- Verify accounts:0003_accounts_plan on pg

BEGIN;

-- pg_migrate must have recorded the version as applied (not applying, failed or rolled back).
DO $verify$
DECLARE
    st text := (SELECT state FROM migrate.status() WHERE version = '0003_accounts_plan');
BEGIN
    IF st IS DISTINCT FROM 'applied' THEN
        RAISE EXCEPTION 'pg_migrate version "0003_accounts_plan" is %, not applied', coalesce(st, 'unknown');
    END IF;
END
$verify$;

SELECT plan FROM accounts WHERE false;

ROLLBACK;
