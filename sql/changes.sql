-- Expand/contract changes: one row per operation (expand_column, add_column, add_check, …), open
-- until contract, abort or the end of its job. Written only by pg_migrate (as the extension
-- owner); read migrate.changes for the open ones of your roles.

CREATE TABLE migrate.all_changes (
    change        bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('expand_column', 'add_column', 'add_check', 'add_foreign_key',
                                                'create_index', 'drop_index', 'drop_column', 'add_enum_value')),
    -- the table (the type for add_enum_value); an oid, so that dropping the table is not blocked
    relation      oid NOT NULL,
    -- the table's name when the change was made, quoted and qualified, for messages
    table_name    text NOT NULL,
    -- the column changed, added or dropped
    column_name   name,
    -- expand_column: the column that takes over, under its name during the change
    new_column    name,
    -- the index, constraint or enum value the change is about
    object_name   text,
    -- what the kind needs to contract or undo it: types, up/down, the old default, definitions
    spec          jsonb NOT NULL DEFAULT '{}',
    -- open: expanded (backfilling or ready); contracting: the contract job runs; done: a one-shot
    -- change whose work is complete; contracted / aborted: ended
    phase         text NOT NULL DEFAULT 'open'
                  CHECK (phase IN ('open', 'contracting', 'contracted', 'aborted', 'done')),
    backfill_job  bigint REFERENCES migrate.all_jobs (id) ON DELETE SET NULL,
    -- the validation, index or contract job
    job           bigint REFERENCES migrate.all_jobs (id) ON DELETE SET NULL,
    -- the migration version whose up SQL made the change, if any: its generated down SQL aborts it
    version       text,
    owner         oid NOT NULL,
    created_by    name NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at      timestamptz
);

CREATE INDEX all_changes_open_idx ON migrate.all_changes (relation) WHERE phase IN ('open', 'contracting');

COMMENT ON TABLE migrate.all_changes IS
    'pg_migrate expand/contract changes (all roles); read migrate.changes for the open ones';

REVOKE ALL ON migrate.all_changes FROM PUBLIC;
REVOKE ALL ON SEQUENCE migrate.all_changes_change_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migrate.all_changes', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.all_changes_change_seq', '');

CREATE VIEW migrate.changes WITH (security_barrier) AS
SELECT c.change,
       c.kind,
       c.table_name                               AS "table",
       c.column_name                              AS "column",
       c.new_column,
       CASE
           WHEN c.phase = 'contracting' THEN
               CASE cj.state WHEN 'failed' THEN 'contract failed' WHEN 'cancelled' THEN 'contract cancelled'
                             ELSE 'contracting' END
           WHEN c.kind = 'drop_column' THEN 'deprecated'
           WHEN bj.state IN ('queued', 'running') THEN 'backfilling'
           WHEN bj.state IS NOT NULL AND bj.state <> 'done' THEN 'backfill ' || bj.state
           WHEN c.kind IN ('expand_column', 'add_column') THEN 'ready to contract'
           WHEN cj.state IN ('queued', 'running') THEN 'running'
           ELSE coalesce(cj.state, 'done')
       END                                        AS phase,
       CASE WHEN c.phase = 'contracting' THEN c.job ELSE coalesce(c.backfill_job, c.job) END AS job,
       CASE WHEN c.phase = 'contracting' THEN cj.state ELSE coalesce(bj.state, cj.state) END AS job_state,
       p.percent                                  AS backfill_percent,
       p.eta                                      AS backfill_eta,
       CASE WHEN c.phase = 'open' AND c.kind IN ('expand_column', 'add_column')
            THEN migrate.contract_plan(c.change) END AS contract_will,
       c.version,
       c.created_by,
       c.created_at
  FROM migrate.all_changes c
  LEFT JOIN migrate.all_jobs bj ON bj.id = c.backfill_job
  LEFT JOIN migrate.all_jobs cj ON cj.id = c.job
  LEFT JOIN migrate.progress p ON p.job = c.backfill_job
 WHERE c.phase IN ('open', 'contracting')
   AND NOT (c.kind NOT IN ('expand_column', 'add_column', 'drop_column') AND cj.state = 'done')
   AND pg_catalog.pg_has_role(c.owner, 'MEMBER');

COMMENT ON VIEW migrate.changes IS
    'pg_migrate open expand/contract changes of the roles you are a member of: phase, backfill progress, what contract will do';

GRANT SELECT ON migrate.changes TO PUBLIC;

-- Waits for the job a change is waiting on (its backfill, its validation or index build, its
-- contract), committing between polls like migrate.wait().
CREATE PROCEDURE migrate.wait_change(change bigint, timeout interval DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
    j pg_catalog.int8;
BEGIN
    SELECT c.job INTO j FROM migrate.changes c WHERE c.change OPERATOR(pg_catalog.=) wait_change.change;
    IF j IS NULL THEN
        RAISE NOTICE 'pg_migrate: change % has no job to wait for (it has ended, or it is not yours)', change;
        RETURN;
    END IF;
    CALL migrate.wait(j, timeout);
END
$proc$;

COMMENT ON PROCEDURE migrate.wait_change(bigint, interval) IS
    'pg_migrate: wait for the job of an expand/contract change (backfill, validation, index build or contract)';

-- The sync trigger of expand_column changes (src/expand/sync_row.rs): its arguments carry the
-- change (columns, up, down, the old default, the schemas they resolve in); each backend analyses
-- the expressions once and runs them as analysed, with no PL/pgSQL and no per-row search_path
-- switch. Each argument expression must be one expression, run with the writer's rights.
CREATE FUNCTION migrate.sync_row() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_migrate_sync_row';

COMMENT ON FUNCTION migrate.sync_row() IS
    'pg_migrate: the compiled sync trigger of expand_column changes (not for use by hand)';
