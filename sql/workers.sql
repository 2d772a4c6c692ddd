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
