-- Verify accounts:0001_accounts on pg

BEGIN;

-- pg_migrate must have recorded the version as applied (not applying, failed or rolled back).
DO $verify$
DECLARE
    st text := (SELECT state FROM migrate.status() WHERE version = '0001_accounts');
BEGIN
    IF st IS DISTINCT FROM 'applied' THEN
        RAISE EXCEPTION 'pg_migrate version "0001_accounts" is %, not applied', coalesce(st, 'unknown');
    END IF;
END
$verify$;

-- The table and its columns, without touching the data.
SELECT id, email, created_at FROM accounts WHERE false;

ROLLBACK;
