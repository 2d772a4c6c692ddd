-- pg_migrate 0.2.0 -> 0.3.0 (ALTER EXTENSION pg_migrate UPDATE TO '0.3.0').
-- An upgrade script is frozen once released: it must take a 0.2.0 schema to exactly what a
-- fresh CREATE EXTENSION of 0.3.0 makes (pgrx-tests/tests/upgrade.rs compares the two).
-- 0.3.0 is the security release (issue 13): see docs/security.md.
\echo Use "ALTER EXTENSION pg_migrate UPDATE" to load this file. \quit

-- == expressions, backfills, contract, verify ==

-- new: which backfill is writing in this backend; the sync triggers of new changes read it
-- instead of the migrate.backfill_job setting (see src/backfill/marker.rs)
CREATE FUNCTION migrate."backfill_writing"() RETURNS bigint /* Option < i64 > */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'backfill_writing_wrapper';

-- changed: migrate.wait() qualifies its operators (its text || bigint ran whatever operator a
-- schema on the caller's search_path defined)
CREATE OR REPLACE PROCEDURE migrate.wait(job bigint, timeout interval DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
    st record;
    deadline timestamptz := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) timeout;
    last_done int := -1;
    line text;
    last_line text;
    last_line_at timestamptz;
BEGIN
    PERFORM migrate.assert_can_wait();
    LOOP
        SELECT * INTO st FROM migrate.job_status(job);
        IF st.state OPERATOR(pg_catalog.=) ANY (ARRAY['done', 'failed', 'cancelled', 'paused']) THEN
            EXIT;
        END IF;
        IF st.kind OPERATOR(pg_catalog.=) 'backfill' THEN
            -- a progress line when the figures changed, at most one a second
            line := migrate.progress_line(job);
            IF line IS DISTINCT FROM last_line AND (last_line_at IS NULL OR
               pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) last_line_at OPERATOR(pg_catalog.>=) interval '1 second') THEN
                RAISE NOTICE '%', line;
                last_line := line;
                last_line_at := pg_catalog.clock_timestamp();
            END IF;
        ELSIF st.steps_done OPERATOR(pg_catalog.<>) last_done THEN
            RAISE NOTICE 'pg_migrate: job % is %: % of % steps done%', job, st.state, st.steps_done,
                st.steps_total,
                CASE WHEN st.state OPERATOR(pg_catalog.=) 'running' THEN pg_catalog.format(', running: %s', st.current_step) ELSE '' END;
            last_done := st.steps_done;
        END IF;
        IF deadline IS NOT NULL AND pg_catalog.clock_timestamp() OPERATOR(pg_catalog.>) deadline THEN
            RAISE EXCEPTION 'pg_migrate: job % is still % after %', job, st.state, timeout
                USING ERRCODE = 'query_canceled',
                      HINT = pg_catalog.format('The job keeps running. Call migrate.wait() again, or migrate.cancel(%s).', job);
        END IF;
        COMMIT;
        PERFORM pg_catalog.pg_sleep(0.1);
        COMMIT;
    END LOOP;
    -- migrate.cancel() marks the job cancelled at once; its worker then stops the statement,
    -- cleans up and moves the version on. Return only once it has, so that what the caller does
    -- next (apply the version again, or the next one) does not find the version still applying.
    IF st.state OPERATOR(pg_catalog.=) 'cancelled' THEN
        WHILE (migrate.job_status(job)).worker_alive LOOP
            COMMIT;
            PERFORM pg_catalog.pg_sleep(0.05);
            COMMIT;
        END LOOP;
    END IF;
    IF st.state OPERATOR(pg_catalog.=) 'failed' THEN
        RAISE EXCEPTION 'pg_migrate: job % failed: %', job, st.last_error
            USING ERRCODE = 'external_routine_exception',
                  HINT = pg_catalog.format('See SELECT * FROM migrate.jobs WHERE job = %s; %s', job,
                         CASE WHEN st.kind OPERATOR(pg_catalog.=) 'backfill' THEN pg_catalog.format('fix the cause and call migrate.resume(%s) to go on from where it stopped.', job)
                              WHEN st.version IS NULL THEN 'fix the cause and run the statement again with migrate.run_async().'
                              ELSE 'fix the cause and apply the version again to resume (or roll it back).' END);
    ELSIF st.state OPERATOR(pg_catalog.=) 'cancelled' THEN
        RAISE WARNING 'pg_migrate: job % was cancelled', job;
    ELSIF st.state OPERATOR(pg_catalog.=) 'paused' THEN
        RAISE WARNING 'pg_migrate: job % is paused; migrate.resume(%) goes on from where it stopped', job, job;
    ELSE
        IF st.kind OPERATOR(pg_catalog.=) 'backfill' THEN
            RAISE NOTICE '%', migrate.progress_line(job);
        END IF;
        RAISE NOTICE 'pg_migrate: job % is done', job;
    END IF;
END
$proc$;

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
