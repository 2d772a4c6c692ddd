//! SQL functions to start, follow and steer background jobs.

use super::launch;
use crate::catalog::history::{self, JobOutcome};
use crate::catalog::jobs::{self, Step};
use crate::catalog::workers;
use crate::ddl::session::caller_names;
use crate::error::{notice, Failure, OrRaise, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Runs one statement (typically CREATE INDEX CONCURRENTLY, VACUUM, REINDEX CONCURRENTLY) as a
/// background job of its own, after the current transaction commits. Returns the job id.
/// No SET search_path here: the job runs the statement with the caller's search_path, which a
/// SET clause would hide; pg_migrate's own SQL is pinned inside (see ddl::session).
#[pg_extern(name = "run_async")]
fn run_async(sql: Option<&str>) -> i64 {
    queue_statement(sql).or_raise()
}

fn queue_statement(sql: Option<&str>) -> Result<i64> {
    let sql = sql.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "migrate.run_async() needs a statement")
            .hint("Pass one statement, for example 'CREATE INDEX CONCURRENTLY …'.")
    })?;
    let script = crate::ddl::script::parse(crate::ddl::script::Direction::Up, "run_async", sql)?;
    if script.statements.len() != 1 {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migrate.run_async() runs exactly one statement, got {}", script.statements.len()),
        )
        .hint("Call migrate.run_async() once per statement, or use migrate.apply() for a script."));
    }
    launch::resume_orphans();
    let step = Step::of(&script.statements[0], 1, None);
    let job = super::submit(&[step])?;
    notice(format!("pg_migrate: job {job} starts when this transaction commits; follow it with CALL migrate.wait({job})"));
    Ok(job)
}

/// Cancels a job: a queued job never starts, a running statement is interrupted, and an index
/// it was building is dropped. Returns the job's state.
#[pg_extern(name = "cancel")]
#[search_path(pg_catalog, pg_temp)]
fn cancel(job: Option<i64>) -> String {
    cancel_job(job).or_raise()
}

pub fn cancel_job(job: Option<i64>) -> Result<String> {
    let job = job.ok_or_else(|| Failure::new(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, "job must not be NULL"))?;
    // As the caller: migrate.jobs shows the jobs of the roles the caller is a member of.
    let Some(state) = Spi::get_one_with_args::<String>("SELECT state FROM migrate.jobs WHERE job = $1", &[job.into()])
        .ok()
        .flatten()
    else {
        return Err(unknown_job(job));
    };
    if !matches!(state.as_str(), "queued" | "running" | "paused") {
        notice(format!("pg_migrate: job {job} has already ended ({state}); nothing to cancel"));
        return Ok(state);
    }
    let (by, _) = caller_names();
    jobs::cancel(job, &by);
    // Only the job's verified live worker is signalled (as the extension owner: the caller may be
    // a member of the job's owner role and still not be allowed to signal its backend).
    if !workers::signal(job) {
        // No worker will see the cancellation: settle the versions the job carried now.
        for step in jobs::steps(job) {
            if let Some(version) = &step.version {
                history::record_job_outcome(version, step.direction.as_deref().unwrap_or("up"), job, JobOutcome::Cancelled { by: &by });
            }
        }
    }
    Ok("cancelled".to_string())
}

fn unknown_job(job: i64) -> Failure {
    Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("job {job} does not exist or belongs to another role"))
        .hint("See SELECT * FROM migrate.jobs for the jobs you can see.")
}

/// Starts workers for this database's jobs that lost theirs (crash, immediate shutdown, killed
/// worker) or waited for a free slot. Returns how many were started.
#[pg_extern(name = "resume_jobs")]
#[search_path(pg_catalog, pg_temp)]
fn resume_jobs() -> i64 {
    launch::resume_orphans()
}

/// Used by CALL migrate.wait(): waiting inside a transaction block would hold a snapshot that
/// CREATE INDEX CONCURRENTLY waits for, and the job would never end.
#[pg_extern(name = "assert_can_wait")]
#[search_path(pg_catalog, pg_temp)]
fn assert_can_wait() {
    if unsafe { pg_sys::IsTransactionBlock() } {
        // also the check of wait_version() and wait_change(), which call it first
        Failure::new(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "migrate.wait(), wait_version() and wait_change() cannot run inside a transaction block",
        )
        .detail("They commit between polls so that they never hold a snapshot a concurrent index build would wait for.")
        .hint("COMMIT first, then CALL the procedure on its own (autocommit); in a migration tool, in a migration that runs without a transaction.")
            .raise();
    }
}
