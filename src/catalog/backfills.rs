//! The only code that reads or writes `migrate.all_backfills`, as the extension owner like the
//! rest of the catalog. A backfill is a job (`migrate.all_jobs`, kind 'backfill') plus this row.

use crate::catalog::jobs::Settings;
use crate::ddl::session::as_extension_owner;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::{Deserialize, Serialize};

/// One `column = (expression)` of the job's SET list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    pub column: String,
    pub expression: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Walk {
    /// By primary key, in key order.
    Key,
    /// By ranges of heap pages (tables without a primary key).
    Ctid,
}

/// How fast a backfill goes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pace {
    /// Rows per batch now (adapted after every batch unless `fixed_batch`).
    pub batch_size: i32,
    pub fixed_batch: bool,
    /// The batch duration batch sizes adapt to.
    pub batch_time_ms: i32,
    /// Pause between a worker's batches.
    pub sleep_ms: i32,
    /// Batches wait while a replica's replay lag is above this.
    pub max_replica_lag_ms: i32,
}

/// What `backfill_start` decided; the rest of the row starts at zero.
#[derive(Debug, Clone)]
pub struct New {
    pub job: i64,
    pub relation: pg_sys::Oid,
    pub table_name: String,
    pub assignments: String,
    pub targets: Vec<Target>,
    pub filter: Option<String>,
    pub walk: Walk,
    pub key_columns: Vec<String>,
    pub key_types: Vec<String>,
    pub upper_bound: Option<Vec<String>>,
    pub manual: bool,
    pub pace: Pace,
    pub rows_estimated: i64,
    pub rows_per_page: f64,
    /// Page walks: the start snapshot's xmax and in-progress transactions (32-bit xids as text).
    pub start_xmax: Option<String>,
    pub start_xip: Vec<String>,
}

/// A backfill as a batch needs it, with its job's state, owner and settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Backfill {
    pub job: i64,
    pub state: String,
    pub owner: u32,
    #[serde(default)]
    pub settings: Settings,
    pub relation: u32,
    pub table_name: String,
    pub assignments: String,
    pub targets: Vec<Target>,
    pub filter: Option<String>,
    pub walk: Walk,
    #[serde(default)]
    pub key_columns: Option<Vec<String>>,
    #[serde(default)]
    pub key_types: Option<Vec<String>>,
    pub upper_bound: Option<Vec<String>>,
    pub cursor: Option<Vec<String>>,
    pub manual: bool,
    #[serde(flatten)]
    pub pace: Pace,
    pub rows_per_page: f64,
    pub start_xmax: Option<String>,
    pub start_xip: Vec<String>,
    /// Seconds since the epoch of the last batch's end.
    pub last_batch_epoch: Option<f64>,
    pub rows_per_second: Option<f64>,
}

pub fn insert(b: &New) {
    let targets = serde_json::to_value(&b.targets).expect("targets serialise");
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO migrate.all_backfills
                    (job, relation, table_name, assignments, targets, filter, walk, key_columns, key_types,
                     upper_bound, manual, batch_size, fixed_batch, batch_time_ms, sleep_ms, max_replica_lag_ms,
                     rows_estimated, rows_per_page, start_xmax, start_xip)
             VALUES ($1, $2::oid::regclass, $3, $4, $5, $6, $7, $8::text[]::name[], $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                     $19::xid, $20::text[]::xid[])",
            &[
                b.job.into(),
                b.relation.into(),
                b.table_name.as_str().into(),
                b.assignments.as_str().into(),
                JsonB(targets).into(),
                b.filter.as_deref().into(),
                match b.walk {
                    Walk::Key => "key",
                    Walk::Ctid => "ctid",
                }
                .into(),
                b.key_columns.clone().into(),
                b.key_types.clone().into(),
                b.upper_bound.clone().into(),
                b.manual.into(),
                b.pace.batch_size.into(),
                b.pace.fixed_batch.into(),
                b.pace.batch_time_ms.into(),
                b.pace.sleep_ms.into(),
                b.pace.max_replica_lag_ms.into(),
                b.rows_estimated.into(),
                b.rows_per_page.into(),
                b.start_xmax.as_deref().into(),
                b.start_xip.clone().into(),
            ],
        )
        .expect("insert backfill")
    })
}

const SELECT: &str = "SELECT to_jsonb(b) || jsonb_build_object(
        'state', j.state, 'owner', j.owner::bigint, 'settings', j.settings, 'relation', b.relation::oid::bigint,
        'last_batch_epoch', extract(epoch FROM b.last_batch_at))
   FROM migrate.all_backfills b JOIN migrate.all_jobs j ON j.id = b.job
  WHERE b.job = $1";

fn read(sql: &str, job: i64) -> Option<Backfill> {
    as_extension_owner(|| {
        Spi::get_one_with_args::<JsonB>(sql, &[job.into()])
            .ok()
            .flatten()
            .map(|j| serde_json::from_value(j.0).expect("backfill row deserialises"))
    })
}

/// The backfill, without locking it.
pub fn get(job: i64) -> Option<Backfill> {
    read(SELECT, job)
}

/// The backfill, locked until the end of the transaction: batches of one job run one at a time,
/// whoever runs them (its worker, pg_cron, a client loop), and each sees the cursor the previous
/// one saved.
pub fn lock(job: i64) -> Option<Backfill> {
    read(&format!("{SELECT} FOR UPDATE OF b, j"), job)
}

/// What one batch did, saved in the batch's own transaction.
pub struct Done<'a> {
    pub cursor: Option<&'a [String]>,
    pub updated: i64,
    pub scanned: i64,
    pub next_batch_size: i32,
    pub elapsed_ms: f64,
    pub rows_per_second: Option<f64>,
    pub finished: bool,
}

/// What the backfill waits for now (a replica that lags), or None: shown by migrate.progress.
/// Not recorded while the database still has pg_migrate 0.2.0's tables.
pub fn set_waiting(job: i64, why: Option<&str>) {
    if !crate::catalog::has_0_3_objects() {
        return;
    }
    as_extension_owner(|| {
        Spi::run_with_args("UPDATE migrate.all_backfills SET waiting_for = $2 WHERE job = $1", &[job.into(), why.into()])
            .expect("record what the backfill waits for")
    })
}

pub fn record_batch(job: i64, d: &Done) {
    as_extension_owner(|| {
        Spi::run_with_args(
            "WITH b AS (
                UPDATE migrate.all_backfills
                   SET cursor = coalesce($2, cursor), rows_done = rows_done + $3, rows_scanned = rows_scanned + $4,
                       batch_size = $5, last_batch_ms = $6, rows_per_second = coalesce($7, rows_per_second),
                       batches = batches + 1, last_batch_at = pg_catalog.clock_timestamp()
                 WHERE job = $1)
             UPDATE migrate.all_jobs
                SET state = CASE WHEN $8 THEN 'done' ELSE 'running' END,
                    started_at = coalesce(started_at, pg_catalog.clock_timestamp()),
                    finished_at = CASE WHEN $8 THEN pg_catalog.clock_timestamp() END,
                    heartbeat = pg_catalog.clock_timestamp(), last_error = NULL
              WHERE id = $1",
            &[
                job.into(),
                d.cursor.map(|c| c.to_vec()).into(),
                d.updated.into(),
                d.scanned.into(),
                d.next_batch_size.into(),
                d.elapsed_ms.into(),
                d.rows_per_second.into(),
                d.finished.into(),
            ],
        )
        .expect("record backfill batch")
    })
}

/// The job's progress line (what migrate.wait() prints), as the caller sees migrate.progress.
pub fn progress_line(job: i64) -> Option<String> {
    Spi::get_one_with_args::<String>("SELECT migrate.progress_line($1)", &[job.into()]).ok().flatten()
}
