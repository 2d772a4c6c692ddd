//! Which worker runs a job. A worker claims its job by writing its pid and its backend_start into
//! the job row, under the row's lock, and only when no live worker is recorded there. A worker is
//! alive while pg_stat_activity shows that pid with that backend_start and pg_migrate's worker
//! backend type (`migrate.job_worker`). Only pg_migrate writes job rows and only pg_migrate starts
//! processes of that type, so no session can pose as a job's worker: the advisory lock of 0.2.0
//! could be taken by any role, keeping jobs from starting and making dead workers look alive.
//! Everything here runs as the extension owner, who sees every backend in pg_stat_activity.
//!
//! A schema not yet updated to 0.3.0 (a new library, ALTER EXTENSION UPDATE still to come) has no
//! `worker_started` column: there a worker still holds its job's advisory lock, and the update
//! records the workers that hold one.

use super::jobs::{Claimed, Settings};
use crate::ddl::session::as_extension_owner;
use pgrx::prelude::*;
use pgrx::JsonB;

/// The backend type of job workers (`bgw_type`), which pg_stat_activity shows. migrate.job_worker
/// (sql/jobs.sql) names it too.
pub const WORKER_TYPE: &str = "pg_migrate job worker";

/// The advisory lock key space ('pmig') in which a 0.2.0 worker locks (space, job id).
const LEGACY_KEY_SPACE: i32 = 1886218599;

/// A job row locked for a claim.
pub struct Locked {
    pub state: String,
    /// Set when another live worker holds the job: its pid (None when only its lock says so).
    pub taken_by: Option<Option<i32>>,
}

/// Locks the job's row until the transaction ends and says whether a live worker holds the job.
/// None when there is no such job.
pub fn lock_for_claim(job: i64) -> Option<Locked> {
    as_extension_owner(|| {
        let (state, pid) = Spi::get_two_with_args::<String, i32>(
            "SELECT state, worker_pid FROM migrate.all_jobs WHERE id = $1 FOR UPDATE",
            &[job.into()],
        )
        .ok()?;
        let state = state?;
        let taken_by = if recorded() {
            // Read after the row lock: a worker that claimed the job meanwhile is in the row now.
            alive(job).then_some(pid)
        } else {
            let mine = Spi::get_one_with_args::<bool>(
                "SELECT pg_catalog.pg_try_advisory_lock($2, ($1 % 2147483647)::int)",
                &[job.into(), LEGACY_KEY_SPACE.into()],
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            (!mine).then_some(None)
        };
        Some(Locked { state, taken_by })
    })
}

/// Marks the job (locked by `lock_for_claim`) running in this worker.
pub fn claim(job: i64) -> Claimed {
    as_extension_owner(|| {
        let started = if recorded() {
            ", worker_started = (SELECT backend_start FROM pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()))"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE migrate.all_jobs
                SET state = 'running', worker_pid = pg_catalog.pg_backend_pid(){started},
                    attempts = attempts + 1, heartbeat = pg_catalog.clock_timestamp(),
                    started_at = coalesce(started_at, pg_catalog.clock_timestamp())
              WHERE id = $1
          RETURNING steps, cursor, settings, attempts, kind"
        );
        Spi::connect_mut(|client| {
            let row = client.update(&sql, None, &[job.into()])?.first();
            let steps: JsonB = row.get(1)?.expect("steps");
            let settings: JsonB = row.get(3)?.expect("settings");
            Ok::<_, pgrx::spi::SpiError>(Claimed {
                kind: row.get::<String>(5)?.unwrap_or_default(),
                steps: serde_json::from_value(steps.0).expect("steps deserialise"),
                cursor: row.get::<i32>(2)?.unwrap_or(0) as usize,
                settings: serde_json::from_value::<Settings>(settings.0).unwrap_or_default(),
                attempts: row.get::<i32>(4)?.unwrap_or(1),
            })
        })
        .expect("claim job")
    })
}

/// Interrupts the statement of the job's live worker; false when it has none. Only a process
/// verified to be that worker is signalled, never a pid that the row merely remembers (it may
/// belong to any backend by now).
pub fn signal(job: i64) -> bool {
    as_extension_owner(|| {
        fresh_activity();
        Spi::get_one_with_args::<bool>(
            &format!("SELECT pg_catalog.pg_cancel_backend(j.worker_pid) FROM migrate.all_jobs j WHERE j.id = $1 AND {}", alive_condition()),
            &[job.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    })
}

/// Unfinished jobs of this database without a live worker: (job, owner), oldest first.
pub fn orphans() -> Vec<(i64, pg_sys::Oid)> {
    as_extension_owner(|| {
        let sql = format!(
            "SELECT j.id, j.owner FROM migrate.all_jobs j
              WHERE j.state IN ('queued', 'running')
                AND j.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
                AND NOT {}
                -- backfills run by hand (pg_cron, a client loop) have no worker
                AND NOT EXISTS (SELECT 1 FROM migrate.all_backfills b WHERE b.job = j.id AND b.manual)
              ORDER BY j.id",
            alive_condition()
        );
        fresh_activity();
        Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select(&sql, None, &[])? {
                out.push((row.get::<i64>(1)?.expect("id"), row.get::<pg_sys::Oid>(2)?.expect("owner")));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
        .expect("find orphaned jobs")
    })
}

fn alive(job: i64) -> bool {
    fresh_activity();
    Spi::get_one_with_args::<bool>(
        &format!("SELECT {} FROM migrate.all_jobs j WHERE j.id = $1", alive_condition()),
        &[job.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Whether the worker of job row `j` is alive, as SQL (run it as the extension owner).
fn alive_condition() -> String {
    if recorded() {
        "EXISTS (SELECT FROM migrate.job_worker(j.worker_pid, j.worker_started))".into()
    } else {
        format!(
            "EXISTS (SELECT FROM pg_catalog.pg_locks l
                      WHERE l.locktype = 'advisory' AND l.granted AND l.database = j.database
                        AND l.classid = {LEGACY_KEY_SPACE}::oid AND l.objid = (j.id % 2147483647)::oid AND l.objsubid = 2)"
        )
    }
}

/// Whether job rows record their worker's backend_start (a 0.3.0 schema).
fn recorded() -> bool {
    super::has_0_3_objects()
}

/// pg_stat_activity is read once per transaction and then cached: a check made after waiting for
/// a row lock must see the workers that started meanwhile.
pub fn fresh_activity() {
    Spi::run("SELECT pg_catalog.pg_stat_clear_snapshot()").expect("clear the statistics snapshot");
}

/// What holds a job up, as migrate.workers shows it to a superuser.
pub struct Holdup {
    pub owner: String,
    pub state: String,
    pub pid: Option<i32>,
    pub since: Option<String>,
    pub waiting_for: Option<String>,
}

/// The job's owner and state, and (once the schema has migrate.workers) its worker, since when,
/// and what it waits for. None when there is no such job.
pub fn holdup(job: i64) -> Option<Holdup> {
    as_extension_owner(|| {
        let sql = if super::has_0_3_objects() {
            "SELECT pg_catalog.pg_get_userbyid(j.owner)::text, j.state, w.pid, w.since::text, w.waiting_for
               FROM migrate.all_jobs j LEFT JOIN migrate.workers w ON w.job = j.id WHERE j.id = $1"
        } else {
            "SELECT pg_catalog.pg_get_userbyid(j.owner)::text, j.state, NULL::int, NULL::text, NULL::text
               FROM migrate.all_jobs j WHERE j.id = $1"
        };
        fresh_activity();
        Spi::connect(|client| {
            let row = client.select(sql, None, &[job.into()])?.first();
            if row.is_empty() {
                return Ok(None);
            }
            Ok::<_, pgrx::spi::SpiError>(Some(Holdup {
                owner: row.get::<String>(1)?.unwrap_or_default(),
                state: row.get::<String>(2)?.unwrap_or_default(),
                pid: row.get::<i32>(3)?,
                since: row.get::<String>(4)?,
                waiting_for: row.get::<String>(5)?,
            }))
        })
        .ok()
        .flatten()
    })
}
