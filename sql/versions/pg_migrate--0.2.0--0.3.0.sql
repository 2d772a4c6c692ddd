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

-- changed: migrate.wait(), wait_version() and wait_change() qualify every operator and variable
-- type (an unqualified text || bigint, IS DISTINCT FROM or `text` variable resolved on the
-- caller's search_path, where anyone who can create in a schema on it could hijack them)
CREATE OR REPLACE PROCEDURE migrate.wait(job bigint, timeout interval DEFAULT NULL)
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

CREATE OR REPLACE PROCEDURE migrate.wait_version(version text, timeout interval DEFAULT NULL)
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

CREATE OR REPLACE PROCEDURE migrate.wait_change(change bigint, timeout interval DEFAULT NULL)
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

-- == jobs: liveness, cancellation, fairness ==
-- A job's worker is the process recorded in its row (pid and backend_start), checked against
-- pg_stat_activity, instead of whoever holds an advisory lock key: any role could take those
-- keys, keep new jobs from starting and make dead workers look alive. See sql/jobs.sql.
ALTER TABLE migrate.all_jobs ADD COLUMN worker_started timestamptz;

-- new: a failed job keeps the failed statement's SQLSTATE, which migrate.wait() raises again
ALTER TABLE migrate.all_jobs ADD COLUMN last_sqlstate text;

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

-- worker_alive reads the recorded worker; new last column: the failed statement's SQLSTATE.
CREATE OR REPLACE VIEW migrate.jobs WITH (security_barrier) AS
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

-- Workers of 0.2.0 that are running through this update (the library is already the new one)
-- still hold their job's advisory lock: record them, so that they are not taken for dead and
-- their jobs are not started a second time. Only a pg_migrate worker whose pid the job row
-- already names is recorded, not any other session that holds such a key.
UPDATE migrate.all_jobs j
   SET worker_started = a.backend_start
  FROM pg_catalog.pg_stat_get_activity(NULL) a
 WHERE a.pid = j.worker_pid
   AND a.backend_type = 'pg_migrate job worker'
   AND j.state IN ('queued', 'running')
   AND EXISTS (SELECT FROM pg_catalog.pg_locks l
                WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
                  AND l.classid = 1886218599::oid AND l.objid = (j.id % 2147483647)::oid AND l.objsubid = 2);

DROP FUNCTION migrate.job_lock_space();

-- Deployers (apply, rollback, baseline, repair) take turns: pg_migrate locks this one row
-- FOR UPDATE, as the extension owner, until the deploying transaction ends. An advisory lock key
-- would serialise them as well, but any role can take any advisory lock and hold it for as long
-- as it likes, which would stop every deploy; locking this row needs UPDATE on the table, which
-- no role but its owner has.
CREATE TABLE migrate.deploy_lock (
    one boolean PRIMARY KEY DEFAULT true CHECK (one)
);

INSERT INTO migrate.deploy_lock DEFAULT VALUES;

COMMENT ON TABLE migrate.deploy_lock IS
    'pg_migrate: the row a deploying transaction locks; nobody else may read or lock it';

REVOKE ALL ON migrate.deploy_lock FROM PUBLIC;

-- Who holds which pg_migrate worker and what each unfinished job waits for: one row per queued
-- or running job of this database. Everyone sees the jobs of the roles they are a member of,
-- like migrate.jobs; members of pg_monitor (and superusers) see every role's, to find the job
-- that holds up a deploy and whose owner to talk to (SELECT migrate.cancel(job) stops it).
CREATE VIEW migrate.workers WITH (security_barrier) AS
SELECT j.id                                   AS job,
       j.kind,
       pg_catalog.pg_get_userbyid(j.owner)    AS owner,
       j.state,
       CASE WHEN j.kind = 'backfill' THEN 'backfill of ' || b.table_name
            ELSE coalesce('version ' || (j.steps -> LEAST(j.cursor, jsonb_array_length(j.steps) - 1) ->> 'version'),
                          'migrate.run_async()')
       END                                    AS target,
       w.pid,
       -- when its worker started; without one, the job's last sign of life or when it was queued
       coalesce(w.since, j.heartbeat, j.created_at) AS since,
       CASE WHEN w.pid IS NULL AND b.manual THEN 'migrate.backfill_batch() calls: it runs by hand'
            WHEN w.pid IS NULL AND j.state = 'queued' THEN 'a worker: migrate.max_workers and migrate.max_workers_per_role limit how many run'
            WHEN w.pid IS NULL THEN 'a new worker: its worker is gone (SELECT migrate.resume_jobs() starts one)'
            WHEN w.wait_event_type = 'Extension' THEN 'its pause between batches (sleep_ms) or a replica to catch up'
            ELSE coalesce(w.wait_event_type || ': ' || w.wait_event, 'nothing: it is working')
       END                                    AS waiting_for,
       CASE WHEN w.pid IS NOT NULL THEN pg_catalog.pg_blocking_pids(w.pid) END AS blocked_by
  FROM migrate.all_jobs j
  LEFT JOIN migrate.all_backfills b ON b.job = j.id
  LEFT JOIN LATERAL migrate.job_worker(j.worker_pid, j.worker_started) w ON true
 WHERE j.state IN ('queued', 'running')
   AND j.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
   AND (pg_catalog.pg_has_role(current_user, j.owner, 'USAGE')
        OR pg_catalog.pg_has_role(current_user, 'pg_monitor', 'USAGE'));

COMMENT ON VIEW migrate.workers IS
    'pg_migrate unfinished jobs: who owns them, which worker runs them, what they wait for (all roles for pg_monitor)';

GRANT SELECT ON migrate.workers TO PUBLIC;

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

-- new: the compiled sync trigger of expand_column changes (src/expand/sync_row.rs); the changes
-- opened before this update keep their generated PL/pgSQL functions
CREATE FUNCTION migrate.sync_row() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'pg_migrate_sync_row';

COMMENT ON FUNCTION migrate.sync_row() IS
    'pg_migrate: the compiled sync trigger of expand_column changes (not for use by hand)';

-- new: migrate.progress says what a running backfill waits for (a replica whose replay lags), and
-- the progress line too
ALTER TABLE migrate.all_backfills ADD COLUMN waiting_for text;

CREATE OR REPLACE VIEW migrate.progress WITH (security_barrier) AS
SELECT j.job,
       b.relation                              AS "table",
       j.state,
       b.rows_done,
       b.rows_estimated,
       pg_catalog.round(CASE
           WHEN j.state = 'done' THEN 100
           WHEN b.walk = 'ctid' THEN 100.0 * coalesce(b.cursor[1]::bigint, 0)
                                           / GREATEST(b.upper_bound[1]::bigint, 1)
           ELSE LEAST(99.9, 100.0 * b.rows_scanned / GREATEST(b.rows_estimated, b.rows_scanned, 1))
       END, 1)                                 AS percent,
       pg_catalog.round(b.rows_per_second)::bigint AS rows_per_second,
       CASE WHEN j.state IN ('queued', 'running') AND b.rows_per_second > 0 THEN
           pg_catalog.make_interval(secs => pg_catalog.round(
               GREATEST(b.rows_estimated - b.rows_scanned, 0) / b.rows_per_second))
       END                                     AS eta,
       b.batch_size,
       j.last_error,
       b.last_batch_at,
       b.rows_scanned,
       b.batches,
       b.walk,
       b.manual,
       b.assignments,
       b.filter,
       CASE WHEN j.state IN ('queued', 'running') THEN b.waiting_for END AS waiting_for
  FROM migrate.all_backfills b
  JOIN migrate.jobs j ON j.job = b.job;

CREATE OR REPLACE FUNCTION migrate.progress_line(job bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT format('pg_migrate: backfill job %s on %s is %s: %s rows updated, %s%% of ~%s rows%s%s%s%s',
              p.job, p."table", p.state, p.rows_done, p.percent, p.rows_estimated,
              ', ' || p.rows_per_second || ' rows/s',
              ', about ' || p.eta || ' left',
              ', batch size ' || p.batch_size,
              '; waiting: ' || p.waiting_for)
  FROM migrate.progress p
 WHERE p.job = progress_line.job
$fn$;

