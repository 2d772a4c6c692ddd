-- pg_migrate 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_migrate UPDATE TO '0.2.0').
-- An upgrade script is frozen once released: it must take a 0.1.0 schema to exactly what a
-- fresh CREATE EXTENSION of 0.2.0 makes (pgrx-tests/tests/upgrade.rs compares the two).
\echo Use "ALTER EXTENSION pg_migrate UPDATE" to load this file. \quit

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
        -- tool must not go on to the next version as if this one had been applied. The job is
        -- marked cancelled before its worker has cleaned up and moved the version on, so wait for
        -- that too: the caller's next apply would otherwise find the version still applying.
        LOOP
            SELECT mg.state INTO m.state FROM migrate.migrations mg WHERE mg.version OPERATOR(pg_catalog.=) wait_version.version;
            EXIT WHEN m.state OPERATOR(pg_catalog.<>) ALL (ARRAY['applying', 'rolling_back'])
                   OR NOT (migrate.job_status(m.job)).worker_alive;
            COMMIT;
            PERFORM pg_catalog.pg_sleep(0.05);
            COMMIT;
        END LOOP;
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
