//! The only code that reads or writes `migrate.all_jobs`. Every access runs as the extension
//! owner with a pinned search_path, like `history`.

use crate::ddl::classify::TopLevel;
use crate::ddl::retry::Limits;
use crate::ddl::script::Statement;
use crate::ddl::session::as_extension_owner;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use serde::{Deserialize, Serialize};

/// One statement of a job, with where it came from for messages and history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub version: Option<String>,
    /// up | down
    pub direction: Option<String>,
    pub number: usize,
    /// How many statements the script has, for "statement 3/5".
    pub total: usize,
    pub line: usize,
    pub sql: String,
    pub top_level: Option<TopLevel>,
    /// Set for work the worker does itself instead of running `sql` (which then only says what
    /// the step does, for migrate.jobs and messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<Internal>,
}

/// Steps a job's worker carries out in Rust: the parts of an index build on a partitioned table
/// that depend on the partitions there are when the step runs (`worker::partitions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Internal {
    /// Lists the partitions of the table of partitioned index `index` (quoted, qualified) and
    /// puts the steps that give each one an index attached to it right after this step. With
    /// `check`, a CheckIndex step (round `check`) follows them.
    IndexPartitions { index: String, check: Option<u32> },
    /// Partitioned index `index` must be valid now; when it is not (a partition came too late for
    /// the listing), its partitions are listed again, at most a few rounds.
    CheckIndex { index: String, round: u32 },
    /// Lists the leaf partitions of partitioned table `table` (quoted, qualified) and puts a
    /// CREATE UNIQUE INDEX CONCURRENTLY `<partition>_<name> ON <partition> <tail>` after this
    /// step for each one that has no such index yet: the indexes a PRIMARY KEY or UNIQUE
    /// constraint of the table is attached to at contract's swap.
    LeafIndexes { table: String, name: String, tail: String },
    /// DROP INDEX of a partitioned index (PostgreSQL has no DROP INDEX CONCURRENTLY for those),
    /// each try bounded as a whole by its lock_timeout.
    DropPartitionedIndex { index: String },
    /// Gives partition `partition` (by OID: it may be renamed or moved meanwhile) of the table of
    /// partitioned index `index` an index attached to it, deciding when the step runs: skipped
    /// (and what the job built on it dropped) once the table is no longer a partition there.
    /// `name`: the name chosen for the index the job builds, saved before it is built, `built`
    /// its OID once it is; `adopted`:
    /// the partition's own index the job attached instead, saved before the ATTACH; `listed`: a
    /// sub-partitioned partition's index has had its partitions listed.
    PartitionIndex {
        index: String,
        partition: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        built: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adopted: Option<Adopted>,
        #[serde(default)]
        listed: bool,
    },
    /// abort of a create_index on a partitioned table: `index` is dropped; the partitions' own
    /// indexes the job had adopted come back under their names (copies built first, so a UNIQUE
    /// one never stops being enforced); indexes the job built and never attached are dropped.
    /// `built` and `adopted` as the build job `job` had recorded them at abort; they are read
    /// from it again when this step runs (it may have recorded more before it stopped).
    UndoPartitionedIndex {
        index: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<i64>,
        built: Vec<Built>,
        adopted: Vec<Adopted>,
    },
    /// contract's swap on a partitioned table (`SELECT migrate.finish_contract(change)`), each
    /// try bounded as a whole by its lock_timeout; when a leaf partition lacks its copy of a
    /// unique index, the leaves are listed again (`LeafIndexes`) first, at most a few rounds.
    FinishContract { change: i64, round: u32 },
}

/// A partition's index that a job attached instead of building one (it existed before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adopted {
    pub oid: u32,
    pub partition: u32,
    pub schema: String,
    pub name: String,
    /// Its definition after `ON table `, and whether it is UNIQUE.
    pub tail: String,
    pub unique: bool,
}

/// An index a job built (or began to build) on a partition: its name, the partition's OID, and
/// its own OID once the build succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Built {
    pub partition: u32,
    pub name: String,
    pub oid: Option<u32>,
}

impl Step {
    /// Statement `s` of a script of `total` statements; `origin` is the migration version and
    /// direction (up | down) it belongs to, if any.
    pub fn of(s: &Statement, total: usize, origin: Option<(&str, &str)>) -> Step {
        Step {
            version: origin.map(|(v, _)| v.to_string()),
            direction: origin.map(|(_, d)| d.to_string()),
            number: s.number,
            total,
            line: s.line,
            sql: s.sql.clone(),
            top_level: s.top_level.clone(),
            internal: None,
        }
    }

    /// A step the worker carries out itself; `said` describes it.
    pub fn internal(what: Internal, said: String) -> Step {
        Step { version: None, direction: None, number: 0, total: 0, line: 1, sql: said, top_level: None, internal: Some(what) }
    }

    /// Whether the step waits for locks with migrate.lock_timeout and retries. Not for
    /// CONCURRENTLY builds and plain VACUUM: their waits block no application traffic, and a
    /// lock_timeout would cancel them while they wait for old transactions to finish.
    pub fn waits_politely(&self) -> bool {
        self.top_level.as_ref().is_none_or(|t| t.kind == "vacuum_full")
    }
}

/// The caller's pg_migrate settings, carried to the worker.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Settings {
    #[serde(flatten)]
    pub limits: Limits,
    /// The caller's search_path: the job's statements name objects as the script did.
    #[serde(default)]
    pub search_path: Option<String>,
}

/// A job as the worker that claimed it runs it (`workers::claim`).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub kind: String,
    pub steps: Vec<Step>,
    pub cursor: usize,
    pub settings: Settings,
    pub attempts: i32,
}

pub fn queue(owner: pg_sys::Oid, steps: &[Step], settings: &Settings) -> i64 {
    insert("sql", owner, steps, settings)
}

/// A backfill job: no steps, its work is described in migrate.all_backfills.
pub fn queue_backfill(owner: pg_sys::Oid, settings: &Settings) -> i64 {
    insert("backfill", owner, &[], settings)
}

fn insert(kind: &str, owner: pg_sys::Oid, steps: &[Step], settings: &Settings) -> i64 {
    let steps = serde_json::to_value(steps).expect("steps serialise");
    let settings = serde_json::to_value(settings).expect("settings serialise");
    as_extension_owner(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO migrate.all_jobs (kind, owner, database, steps, settings)
             VALUES ($1, $2, (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()), $3, $4)
             RETURNING id",
            &[kind.into(), owner.into(), JsonB(steps).into(), JsonB(settings).into()],
        )
        .expect("queue job")
        .expect("job id")
    })
}

pub fn advance(job: i64, cursor: usize) {
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE migrate.all_jobs SET cursor = $2, heartbeat = pg_catalog.clock_timestamp() WHERE id = $1",
            &[job.into(), (cursor as i32).into()],
        )
        .expect("advance job")
    })
}

/// Replaces the steps of a job and saves its cursor, in one statement: a step that lists more
/// steps (`Internal::IndexPartitions`) is done exactly when the steps it listed are saved.
pub fn replace_steps(job: i64, steps: &[Step], cursor: usize) {
    let steps = serde_json::to_value(steps).expect("steps serialise");
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE migrate.all_jobs SET steps = $2, cursor = $3, heartbeat = pg_catalog.clock_timestamp() WHERE id = $1",
            &[job.into(), JsonB(steps).into(), (cursor as i32).into()],
        )
        .expect("replace job steps")
    })
}

pub fn heartbeat(job: i64) {
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE migrate.all_jobs SET heartbeat = pg_catalog.clock_timestamp() WHERE id = $1",
            &[job.into()],
        )
        .expect("job heartbeat")
    })
}

pub fn state(job: i64) -> Option<String> {
    as_extension_owner(|| {
        Spi::get_one_with_args::<String>("SELECT max(state) FROM migrate.all_jobs WHERE id = $1", &[job.into()])
            .expect("job state")
    })
}

/// The job's state once concurrent changes to it have committed: `migrate.cancel()` signals the
/// worker before its own transaction commits, so a worker that sees its statement cancelled
/// waits here for the cancellation to become visible.
pub fn settled_state(job: i64) -> Option<String> {
    as_extension_owner(|| {
        Spi::get_one_with_args::<String>("SELECT state FROM migrate.all_jobs WHERE id = $1 FOR UPDATE", &[job.into()])
            .ok()
            .flatten()
    })
}

/// The assignment that clears a job's last SQLSTATE, when migrate.all_jobs has one (0.3.0): a new
/// library runs against the 0.2.0 schema until ALTER EXTENSION UPDATE, and its workers must go
/// on meanwhile. Only a job that fails sets it, and only putting the job back in the queue
/// clears it (with last_error).
fn forget_sqlstate() -> &'static str {
    if crate::catalog::has_0_3_objects() { "last_sqlstate = NULL," } else { "" }
}

/// Ends a job (a job cancelled meanwhile stays cancelled); a failed one keeps its error and the failed statement's own SQLSTATE (a duplicate
/// key stays 23505), which `migrate.wait()` raises again.
pub fn finish(job: i64, state: &str, error: Option<(&str, PgSqlErrorCode)>) {
    let (error, code) = error.map_or((None, None), |(e, c)| (Some(e), Some(crate::error::sqlstate(c))));
    let keep = if crate::catalog::has_0_3_objects() { "last_sqlstate = coalesce($4, last_sqlstate)," } else { "" };
    as_extension_owner(|| {
        Spi::run_with_args(
            &format!(
                "UPDATE migrate.all_jobs
                    SET state = $2, last_error = coalesce($3, last_error), {keep}
                        finished_at = pg_catalog.clock_timestamp(), heartbeat = pg_catalog.clock_timestamp()
                  WHERE id = $1 AND state IN ('queued', 'running')"
            ),
            &[job.into(), state.into(), error.into(), code.into()],
        )
        .expect("finish job")
    })
}

/// Ends a job that no worker has claimed yet as done, without running it. Whether it was still
/// queued.
pub fn skip_queued(job: i64) -> bool {
    as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "UPDATE migrate.all_jobs SET state = 'done', finished_at = pg_catalog.clock_timestamp()
              WHERE id = $1 AND state = 'queued' RETURNING true",
            &[job.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}

pub fn steps(job: i64) -> Vec<Step> {
    as_extension_owner(|| {
        Spi::get_one_with_args::<JsonB>("SELECT steps FROM migrate.all_jobs WHERE id = $1", &[job.into()])
            .ok()
            .flatten()
            .and_then(|j| serde_json::from_value(j.0).ok())
            .unwrap_or_default()
    })
}

pub fn cancelled_by(job: i64) -> Option<String> {
    as_extension_owner(|| {
        Spi::get_one_with_args::<String>("SELECT cancelled_by::text FROM migrate.all_jobs WHERE id = $1", &[job.into()])
            .ok()
            .flatten()
    })
}

/// Puts a failed job back in the queue with the caller's current settings; it resumes at its
/// cursor.
pub fn requeue(job: i64, settings: &Settings) {
    let settings = serde_json::to_value(settings).expect("settings serialise");
    as_extension_owner(|| {
        Spi::run_with_args(
            &format!(
                "UPDATE migrate.all_jobs
                    SET state = 'queued', last_error = NULL, {} finished_at = NULL, cancelled_by = NULL,
                        created_xid = pg_catalog.pg_current_xact_id(), settings = $2
                  WHERE id = $1",
                forget_sqlstate()
            ),
            &[job.into(), JsonB(settings).into()],
        )
        .expect("requeue job")
    })
}

/// The direction (up | down) of the step a job stopped at.
pub fn direction_at_cursor(job: i64) -> Option<String> {
    as_extension_owner(|| {
        Spi::get_one_with_args::<String>(
            "SELECT steps -> LEAST(cursor, jsonb_array_length(steps) - 1) ->> 'direction' FROM migrate.all_jobs WHERE id = $1",
            &[job.into()],
        )
        .ok()
        .flatten()
    })
}

/// Marks a job cancelled; false when it had ended already. Its worker, if it has one, is
/// signalled by `workers::signal`.
pub fn cancel(job: i64, by: &str) -> bool {
    as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "UPDATE migrate.all_jobs SET state = 'cancelled', cancelled_by = $2,
                    finished_at = pg_catalog.clock_timestamp()
              WHERE id = $1 AND state IN ('queued', 'running', 'paused')
          RETURNING true",
            &[job.into(), by.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}

/// Pauses a queued or running job; its worker stops after its current batch. Returns whether
/// the job was paused.
pub fn pause(job: i64) -> bool {
    as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "UPDATE migrate.all_jobs SET state = 'paused', heartbeat = pg_catalog.clock_timestamp()
              WHERE id = $1 AND state IN ('queued', 'running') RETURNING true",
            &[job.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}

/// Puts a paused or failed job back in the queue, to go on from its cursor. Returns whether it
/// was.
pub fn unpause(job: i64) -> bool {
    as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            &format!(
                "UPDATE migrate.all_jobs
                    SET state = 'queued', last_error = NULL, {} finished_at = NULL,
                        created_xid = pg_catalog.pg_current_xact_id()
                  WHERE id = $1 AND state IN ('paused', 'failed') RETURNING true",
                forget_sqlstate()
            ),
            &[job.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}

/// The kind of a job the caller may see (migrate.jobs shows the jobs of the roles it is a
/// member of); None for any other job.
pub fn visible_kind(job: i64) -> Option<String> {
    Spi::get_one_with_args::<String>("SELECT max(kind) FROM migrate.jobs WHERE job = $1", &[job.into()]).ok().flatten()
}
