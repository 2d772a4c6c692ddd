-- Verify accounts:0002_accounts_email_idx on pg

BEGIN;

-- pg_migrate must have recorded the version as applied (not applying, failed or rolled back).
DO $verify$
DECLARE
    st text := (SELECT state FROM migrate.status() WHERE version = '0002_accounts_email_idx');
BEGIN
    IF st IS DISTINCT FROM 'applied' THEN
        RAISE EXCEPTION 'pg_migrate version "0002_accounts_email_idx" is %, not applied', coalesce(st, 'unknown');
    END IF;
END
$verify$;

-- The index exists and is valid (a concurrent build that failed would leave it INVALID; pg_migrate
-- drops such an index, and the version would be failed).
SELECT 1 / count(*) FROM pg_index WHERE indexrelid = 'accounts_email_idx'::regclass AND indisvalid;

ROLLBACK;
