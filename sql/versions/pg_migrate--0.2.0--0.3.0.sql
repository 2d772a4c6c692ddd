-- pg_migrate 0.2.0 -> 0.3.0 (ALTER EXTENSION pg_migrate UPDATE TO '0.3.0').
-- An upgrade script is frozen once released: it must take a 0.2.0 schema to exactly what a
-- fresh CREATE EXTENSION of 0.3.0 makes (pgrx-tests/tests/upgrade.rs compares the two).
-- 0.3.0 is the security release (issue 13): see docs/security.md.
\echo Use "ALTER EXTENSION pg_migrate UPDATE" to load this file. \quit

-- == expressions, backfills, contract, verify ==

-- == jobs: liveness, cancellation, fairness ==

-- == versions: owners, rollback, repair, baseline ==
-- Versions belong to the role that applied them: rolling one back, resuming or repairing it needs
-- membership in that role, and its SQL runs as that role. A version recorded before 0.3.0 belongs
-- to the role its applied_by names (NULL when no such role exists any more: nobody can act for it
-- until a superuser gives it to an existing role).
ALTER TABLE migrate.migrations ADD COLUMN owner regrole;
UPDATE migrate.migrations m SET owner = r.oid::pg_catalog.regrole
  FROM pg_catalog.pg_roles r
 WHERE r.rolname OPERATOR(pg_catalog.=) m.applied_by;

-- changed: status() shows each version's owner (a new column, so the function is replaced)
DROP FUNCTION migrate.status();
CREATE FUNCTION migrate.status()
RETURNS TABLE (
    version     text,
    name        text,
    state       text,
    checksum    text,
    applied_at  timestamptz,
    applied_by  name,
    duration_ms numeric,
    has_down    boolean,
    owner       name
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT m.version, m.name,
           CASE WHEN m.is_baseline AND m.state = 'applied' THEN 'baseline' ELSE m.state END,
           m.checksum, m.applied_at, m.applied_by, m.duration_ms,
           m.down IS NOT NULL,
           pg_catalog.pg_get_userbyid(m.owner)
      FROM migrate.migrations m
     ORDER BY m.version COLLATE "C"
$fn$;

COMMENT ON FUNCTION migrate.status() IS
    'pg_migrate: one row per known version (baselines show state baseline; owner is the role it belongs to)';
