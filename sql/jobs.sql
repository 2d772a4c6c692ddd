-- Background jobs: statements that cannot run inside the caller's transaction (CREATE/DROP INDEX
-- CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM, VALIDATE CONSTRAINT) and everything after them in
-- a migration run in a dynamic background worker, one top-level statement at a time.
-- Written only by pg_migrate (as the extension owner); each role sees its own jobs in migrate.jobs.

CREATE TABLE migrate.all_jobs (
    id            bigserial PRIMARY KEY,
    -- sql: a migration's top-level statements; backfill: batches of an UPDATE (migrate.all_backfills)
    kind          text NOT NULL DEFAULT 'sql' CHECK (kind IN ('sql', 'backfill')),
    -- the role the worker connects as: the role that queued the job
    owner         oid NOT NULL,
    database      oid NOT NULL,
    -- [{"version": "...", "direction": "up|down", "number": 3, "line": 7, "sql": "...", "top_level": true}]
    steps         jsonb NOT NULL DEFAULT '[]'
                  CHECK (jsonb_typeof(steps) = 'array' AND (kind <> 'sql' OR jsonb_array_length(steps) > 0)),
    -- how many steps are done; a resumed job starts at this step
    cursor        int NOT NULL DEFAULT 0,
    -- the caller's migrate.* settings when the job was queued (lock_timeout, retries, …)
    settings      jsonb NOT NULL DEFAULT '{}',
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'paused', 'done', 'failed', 'cancelled')),
    -- the transaction that queued the job: the worker waits until it has ended
    created_xid   xid8 NOT NULL DEFAULT pg_current_xact_id(),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at    timestamptz,
    finished_at   timestamptz,
    heartbeat     timestamptz,
    -- the worker that claimed the job: its pid and its pg_stat_activity.backend_start, which
    -- together name one process (a pid alone may be reused by any backend)
    worker_pid    int,
    worker_started timestamptz,
    attempts      int NOT NULL DEFAULT 0,
    last_error    text,
    -- the SQLSTATE of the failed statement (23505 for a duplicate key): migrate.wait raises it
    last_sqlstate text,
    cancelled_by  name
);

CREATE INDEX all_jobs_unfinished_idx ON migrate.all_jobs (id) WHERE state IN ('queued', 'running');

COMMENT ON TABLE migrate.all_jobs IS
    'pg_migrate background jobs (all roles); read migrate.jobs for your own';

REVOKE ALL ON migrate.all_jobs FROM PUBLIC;
REVOKE ALL ON SEQUENCE migrate.all_jobs_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migrate.all_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.all_jobs_id_seq', '');

-- The live worker recorded for a job, as pg_stat_activity shows it; no row once that process
-- is gone. Only pg_migrate writes the recorded pid and backend_start (when a worker claims its
-- job, under the job row's lock), and only pg_migrate starts processes of this backend type:
-- no session can pose as a job's worker the way any role could take an advisory lock key. You
-- see the workers of the roles you are a member of (pg_stat_activity's rule); members of
-- pg_read_all_stats see all of them.
CREATE FUNCTION migrate.job_worker(worker_pid int, worker_started timestamptz)
RETURNS TABLE (pid int, since timestamptz, wait_event_type text, wait_event text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT a.pid, a.backend_start, a.wait_event_type, a.wait_event
  FROM pg_catalog.pg_stat_get_activity(worker_pid) a
 WHERE worker_pid IS NOT NULL
   AND a.backend_start OPERATOR(pg_catalog.=) worker_started
   AND a.backend_type OPERATOR(pg_catalog.=) 'pg_migrate job worker'
$$;

COMMENT ON FUNCTION migrate.job_worker(int, timestamptz) IS
    'pg_migrate: the live job worker with this pid and backend_start, if there is one';

CREATE VIEW migrate.jobs WITH (security_barrier) AS
SELECT j.id                                   AS job,
       j.kind,
       (SELECT string_agg(DISTINCT s->>'version', ', ') FROM jsonb_array_elements(j.steps) s) AS version,
       pg_catalog.pg_get_userbyid(j.owner)    AS owner,
       j.state,
       j.cursor                               AS steps_done,
       jsonb_array_length(j.steps)            AS steps_total,
       j.steps -> LEAST(j.cursor, jsonb_array_length(j.steps) - 1) ->> 'sql' AS current_step,
       j.worker_pid,
       EXISTS (SELECT 1 FROM migrate.job_worker(j.worker_pid, j.worker_started)) AS worker_alive,
       j.heartbeat,
       j.attempts,
       j.created_at,
       j.started_at,
       j.finished_at,
       j.last_error,
       j.cancelled_by,
       j.last_sqlstate
  FROM migrate.all_jobs j
 WHERE j.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
   AND pg_catalog.pg_has_role(current_user, j.owner, 'USAGE');

COMMENT ON VIEW migrate.jobs IS
    'pg_migrate background jobs of the roles you are a member of';

GRANT SELECT ON migrate.jobs TO PUBLIC;

-- Waits for a job to end, committing between polls: it never holds a snapshot that CREATE INDEX
-- CONCURRENTLY would wait for. A procedure with a SET clause cannot COMMIT, so instead of pinning
-- search_path every name, type and operator here is schema-qualified (an unqualified text ||
-- bigint, IS DISTINCT FROM or variable type would run an operator or a domain's check of a schema
-- on the caller's path, with the caller's rights).
CREATE PROCEDURE migrate.wait(job bigint, timeout interval DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
    st pg_catalog.record;
    deadline pg_catalog.timestamptz := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) timeout;
    last_done pg_catalog.int4 := -1;
    line pg_catalog.text;
    last_line pg_catalog.text;
    last_line_at pg_catalog.timestamptz;
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
            IF ((line IS NULL) OPERATOR(pg_catalog.<>) (last_line IS NULL) OR line OPERATOR(pg_catalog.<>) last_line) AND (last_line_at IS NULL OR
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
        -- the failed statement's own SQLSTATE, so that a client can tell a duplicate key (23505)
        -- from a lock it could not get (55P03); 38000 for jobs that failed before it was kept
        RAISE EXCEPTION 'pg_migrate: job % failed: %', job, st.last_error
            USING ERRCODE = CASE WHEN st.last_sqlstate IS NULL OR pg_catalog.left(st.last_sqlstate, 2) OPERATOR(pg_catalog.=) ANY (ARRAY['00', '01', '02'])
                                 THEN '38000' ELSE st.last_sqlstate END,
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

COMMENT ON PROCEDURE migrate.wait(bigint, interval) IS
    'pg_migrate: wait for a background job, committing between polls (use CALL, outside BEGIN)';

-- Waits for the background work of a version: the job of its latest apply or rollback, then the
-- jobs of the expand/contract changes its up SQL made (their backfills, validations, index
-- builds). What a migration tool knows is the version string, not job numbers. Same rules as
-- migrate.wait() (CALL it outside BEGIN).
CREATE PROCEDURE migrate.wait_version(version text, timeout interval DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
    m pg_catalog.record;
    changes pg_catalog.int8[];
    ch pg_catalog.int8;
    waited pg_catalog.bool := false;
BEGIN
    PERFORM migrate.assert_can_wait();
    SELECT mg.state, mg.job_ids[pg_catalog.cardinality(mg.job_ids)] AS job INTO m
      FROM migrate.migrations mg WHERE mg.version OPERATOR(pg_catalog.=) wait_version.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_migrate: version "%" is not known', version
            USING ERRCODE = 'undefined_object',
                  HINT = 'See SELECT version, state FROM migrate.status() for the recorded versions.';
    END IF;
    -- job_ids keeps the jobs of earlier applies and rollbacks too: only these states have one
    -- that is current
    IF m.job IS NOT NULL AND m.state OPERATOR(pg_catalog.=) ANY (ARRAY['applying', 'rolling_back', 'failed']) THEN
        waited := true;
        CALL migrate.wait(m.job, timeout);
        -- A cancelled job leaves the version failed, which wait() only warns about: a migration
        -- tool must not go on to the next version as if this one had been applied.
        IF (migrate.job_status(m.job)).state OPERATOR(pg_catalog.=) 'cancelled' THEN
            RAISE EXCEPTION 'pg_migrate: version "%" is failed: its job % was cancelled', version, m.job
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Apply the version again to resume its job, or roll it back.';
        END IF;
    END IF;
    SELECT pg_catalog.array_agg(c.change ORDER BY c.change) INTO changes
      FROM migrate.changes c
     WHERE c.version OPERATOR(pg_catalog.=) wait_version.version
       AND c.job_state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running', 'failed']);
    FOREACH ch IN ARRAY COALESCE(changes, '{}') LOOP
        waited := true;
        CALL migrate.wait_change(ch, timeout);
    END LOOP;
    IF NOT waited THEN
        RAISE NOTICE 'pg_migrate: version "%" is %; nothing to wait for', version, m.state;
    END IF;
END
$proc$;

COMMENT ON PROCEDURE migrate.wait_version(text, interval) IS
    'pg_migrate: wait for the background jobs of a version: its apply or rollback, its expand/contract changes (use CALL, outside BEGIN)';

CREATE FUNCTION migrate.job_status(job bigint) RETURNS migrate.jobs
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r migrate.jobs;
BEGIN
    SELECT * INTO r FROM migrate.jobs j WHERE j.job = job_status.job;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist or belongs to another role', job
            USING ERRCODE = 'undefined_object',
                  HINT = 'See SELECT * FROM migrate.jobs for the jobs you can see.';
    END IF;
    RETURN r;
END
$fn$;

COMMENT ON FUNCTION migrate.job_status(bigint) IS 'pg_migrate: one job as migrate.jobs shows it';
