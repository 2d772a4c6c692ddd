-- pg_migrate catalog: the one place where the extension's tables, views and SQL-language
-- functions are defined. Rust code reads and writes these tables only through
-- src/version/history.rs, as the extension owner (see src/ddl/session.rs).
--
-- Users may read everything here; nobody but the extension owner may write, and the event log
-- refuses UPDATE, DELETE and TRUNCATE even from the owner.

-- One row per version pg_migrate knows about.
CREATE TABLE migrate.migrations (
    version       text PRIMARY KEY
                  CHECK (version <> '' AND length(version) <= 200),
    name          text,
    -- sha256 (hex) of the normalised up text; NULL for a baseline, which ran nothing.
    checksum      text CHECK (checksum ~ '^[0-9a-f]{64}$'),
    up            text,
    down          text,
    state         text NOT NULL
                  CHECK (state IN ('applying', 'applied', 'failed', 'rolling_back', 'rolled_back')),
    is_baseline   boolean NOT NULL DEFAULT false,
    applied_by    name,
    -- the role the version belongs to: the role that applied it (current_user of the apply or
    -- baseline). Rolling it back, resuming or repairing it needs membership in this role, and its
    -- SQL runs as this role. NULL only for a row recorded before 0.3.0 whose role was gone.
    owner         regrole,
    applied_at    timestamptz,
    duration_ms   numeric,
    rolled_back_by name,
    rolled_back_at timestamptz,
    -- lint rules this migration was allowed to break (filled by the safety analysis).
    lint_accepted text[] NOT NULL DEFAULT '{}',
    -- background jobs that carry this migration's non-transactional steps.
    job_ids       bigint[] NOT NULL DEFAULT '{}'
);

COMMENT ON TABLE migrate.migrations IS
    'pg_migrate version history: one row per known migration version';

-- Append-only log of every state change.
CREATE TABLE migrate.events (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    version       text,
    -- apply | reapply | apply_done | apply_failed | resume | rollback | rollback_done |
    -- rollback_failed | rollback_abandoned | cancelled | baseline | repair
    action        text NOT NULL,
    from_state    text,
    to_state      text,
    -- the role that called pg_migrate (current_user at the call) and the session's login role
    actor         name NOT NULL,
    session_role  name NOT NULL,
    backend_pid   int NOT NULL DEFAULT pg_backend_pid(),
    txid          bigint DEFAULT txid_current_if_assigned(),
    detail        jsonb NOT NULL DEFAULT '{}',
    error         text
);

CREATE INDEX events_version_idx ON migrate.events (version, id);

COMMENT ON TABLE migrate.events IS
    'pg_migrate event log: append-only, one row per state change';

CREATE FUNCTION migrate.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION 'migrate.events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'The event log is the audit trail of every migration state change.',
              HINT = 'Read it with SELECT; pg_migrate appends to it by itself.';
END
$fn$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON migrate.events
    FOR EACH ROW EXECUTE FUNCTION migrate.refuse_event_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON migrate.events
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.refuse_event_change();

-- Readable by everyone, writable by the extension owner only (pg_migrate writes as the owner).
REVOKE ALL ON migrate.migrations, migrate.events FROM PUBLIC;
REVOKE ALL ON SEQUENCE migrate.events_id_seq FROM PUBLIC;
GRANT SELECT ON migrate.migrations, migrate.events TO PUBLIC;
GRANT USAGE ON SCHEMA migrate TO PUBLIC;

-- pg_dump keeps the history with the database.
SELECT pg_catalog.pg_extension_config_dump('migrate.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.events', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.events_id_seq', '');

-- One row per known version, oldest first.
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
