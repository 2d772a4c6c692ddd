//! Background work: dynamic workers that run a migration's non-transactional statements as
//! top-level statements (job), record failed attempts outside the failing transaction
//! (attempts), resume jobs after crashes (launch, launcher), share the workers fairly between
//! roles (slots), explain a job that holds up other deploys (in_flight), and the SQL functions
//! to follow and steer jobs (api).

pub mod api;
pub mod attempts;
pub mod cleanup;
pub mod executor;
pub mod in_flight;
pub mod job;
pub mod launch;
pub mod launcher;
pub mod partitioned_build;
pub mod partitions;
pub mod slots;

use crate::catalog::jobs::{self, Settings, Step};
use crate::ddl::retry::Limits;
use crate::error::Result;
use pgrx::prelude::*;

/// Queues `steps` as a job owned by the current user and starts its worker, which begins once
/// the current transaction commits. Returns the job id.
pub fn submit(steps: &[Step]) -> Result<i64> {
    let owner = unsafe { pg_sys::GetUserId() };
    launch::check_owner_can_log_in(owner)?;
    let job = jobs::queue(owner, steps, &caller_settings());
    start(job, owner)?;
    Ok(job)
}

/// Queues a backfill job owned by the current user (its row in all_backfills is the caller's to
/// add); `start` then starts its worker, unless the job is run by hand.
pub fn queue_backfill(with_worker: bool) -> Result<i64> {
    let owner = unsafe { pg_sys::GetUserId() };
    if with_worker {
        launch::check_owner_can_log_in(owner)?;
    }
    Ok(jobs::queue_backfill(owner, &caller_settings()))
}

/// Puts a failed job back in the queue with the caller's settings and starts its worker.
pub fn resubmit(job: i64) -> Result<()> {
    launch::check_owner_can_log_in(unsafe { pg_sys::GetUserId() })?;
    jobs::requeue(job, &caller_settings());
    start(job, unsafe { pg_sys::GetUserId() }).map(|_| ())
}

/// Starts a worker for `job`, connecting as `owner`, once the current transaction commits.
/// False when the job waits in the queue for a free worker (a NOTICE said so).
pub fn start(job: i64, owner: pg_sys::Oid) -> Result<bool> {
    let args = launch::JobArgs { job, database: unsafe { pg_sys::MyDatabaseId }, owner, creator_xid: current_xid() };
    launch::start(args)
}

/// The caller's settings, which the job's worker adopts.
fn caller_settings() -> Settings {
    Settings {
        limits: Limits::from_settings(),
        search_path: Spi::get_one::<String>("SELECT pg_catalog.current_setting('search_path')").ok().flatten(),
    }
}

/// This transaction's full id; a job's worker waits until it has ended.
pub fn current_xid() -> u64 {
    Spi::get_one::<String>("SELECT pg_catalog.pg_current_xact_id()::text")
        .ok()
        .flatten()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}
