-- pg_migrate 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_migrate UPDATE TO '0.2.0').
-- An upgrade script is frozen once released: it must take a 0.1.0 schema to exactly what a
-- fresh CREATE EXTENSION of 0.2.0 makes (pgrx-tests/tests/upgrade.rs compares the two).
\echo Use "ALTER EXTENSION pg_migrate UPDATE" to load this file. \quit

-- changed: CALL migrate.wait() of a cancelled job returns once the job's worker has stopped
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
                CASE WHEN st.state OPERATOR(pg_catalog.=) 'running' THEN ', running: ' || st.current_step ELSE '' END;
            last_done := st.steps_done;
        END IF;
        IF deadline IS NOT NULL AND pg_catalog.clock_timestamp() OPERATOR(pg_catalog.>) deadline THEN
            RAISE EXCEPTION 'pg_migrate: job % is still % after %', job, st.state, timeout
                USING ERRCODE = 'query_canceled',
                      HINT = 'The job keeps running. Call migrate.wait() again, or migrate.cancel(' || job || ').';
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
                  HINT = 'See SELECT * FROM migrate.jobs WHERE job = ' || job || '; ' ||
                         CASE WHEN st.kind OPERATOR(pg_catalog.=) 'backfill' THEN 'fix the cause and call migrate.resume(' || job || ') to go on from where it stopped.'
                              WHEN st.version IS NULL THEN 'fix the cause and run the statement again with migrate.run_async().'
                              ELSE 'fix the cause and apply the version again to resume (or roll it back).' END;
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


-- new: CALL migrate.wait_version(version), for migration tools that know versions, not jobs
-- Waits for the background work of a version: the job of its latest apply or rollback, then the
-- jobs of the expand/contract changes its up SQL made (their backfills, validations, index
-- builds). What a migration tool knows is the version string, not job numbers. Same rules as
-- migrate.wait() (CALL it outside BEGIN).
CREATE PROCEDURE migrate.wait_version(version text, timeout interval DEFAULT NULL)
LANGUAGE plpgsql
AS $proc$
DECLARE
    m record;
    changes bigint[];
    ch bigint;
    waited boolean := false;
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
