-- Backfills: an UPDATE of every row that existed when the job started, run in batches that each
-- commit and save the cursor. One row per backfill job (migrate.all_jobs, kind 'backfill').
-- Written only by pg_migrate (as the extension owner); read migrate.progress.

CREATE TABLE migrate.all_backfills (
    job                 bigint PRIMARY KEY REFERENCES migrate.all_jobs (id) ON DELETE CASCADE,
    relation            regclass NOT NULL,
    -- the table's name when the job started, for messages after a rename or drop
    table_name          text NOT NULL,
    -- the SET list as the user wrote it, and as pg_migrate runs it: [{"column", "expression"}]
    assignments         text NOT NULL,
    targets             jsonb NOT NULL,
    filter              text,
    -- key: primary-key keyset; ctid: page ranges (no primary key)
    walk                text NOT NULL CHECK (walk IN ('key', 'ctid')),
    key_columns         name[],
    key_types           text[],
    -- key: the key of the last row when the job started (rows after it are not the job's);
    -- ctid: {number of pages when the job started}
    upper_bound         text[],
    -- key: the key of the last row done; ctid: {first page not done}; NULL before the first batch
    cursor              text[],
    manual              boolean NOT NULL DEFAULT false,
    batch_size          int NOT NULL CHECK (batch_size > 0),
    fixed_batch         boolean NOT NULL DEFAULT false,
    batch_time_ms       int NOT NULL,
    sleep_ms            int NOT NULL,
    max_replica_lag_ms  int NOT NULL,
    rows_done           bigint NOT NULL DEFAULT 0,
    rows_scanned        bigint NOT NULL DEFAULT 0,
    rows_estimated      bigint NOT NULL DEFAULT 0,
    -- page walks: how many rows a page holds, to turn batch sizes into page ranges
    rows_per_page       float8 NOT NULL DEFAULT 1,
    batches             bigint NOT NULL DEFAULT 0,
    -- what the running backfill waits for now (a replica whose replay lags), NULL when it does not
    waiting_for         text,
    -- page walks: at backfill_start, the next transaction id and the transactions in progress.
    -- The walk updates the row versions that existed then: each such row once, and none written
    -- since (by the application, or by the walk itself when a row moved to a page further on).
    start_xmax          xid,
    start_xip           xid[] NOT NULL DEFAULT '{}',
    last_batch_at       timestamptz,
    last_batch_ms       float8,
    rows_per_second     float8
);

COMMENT ON TABLE migrate.all_backfills IS
    'pg_migrate backfill jobs (all roles); read migrate.progress for your own';

REVOKE ALL ON migrate.all_backfills FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('migrate.all_backfills', '');

CREATE VIEW migrate.progress WITH (security_barrier) AS
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

COMMENT ON VIEW migrate.progress IS
    'pg_migrate backfills of the roles you are a member of: how far, how fast, how long to go';

GRANT SELECT ON migrate.progress TO PUBLIC;

-- The progress NOTICE line, the same figures as migrate.progress.
CREATE FUNCTION migrate.progress_line(job bigint) RETURNS text
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

COMMENT ON FUNCTION migrate.progress_line(bigint) IS
    'pg_migrate: one line of progress for a backfill job (what migrate.wait() prints)';
