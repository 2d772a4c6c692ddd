//! Starting job workers: checks that the owner can log in (a worker connecting as a NOLOGIN
//! role dies at start), respects migrate.max_workers and migrate.max_workers_per_role (`slots`),
//! and explains max_worker_processes exhaustion. Also finds jobs whose worker is gone or that
//! waited for a free worker and starts workers for them (resume).

use super::slots::Busy;
use crate::catalog::workers::{self, WORKER_TYPE};
use crate::error::{notice, Failure, Result};
use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// What a job worker needs to start; the rest it reads from the catalog (bgw_extra holds at
/// most 127 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobArgs {
    pub job: i64,
    pub database: pg_sys::Oid,
    pub owner: pg_sys::Oid,
    /// The transaction that queued the job (0 when resuming): the worker waits for its end.
    pub creator_xid: u64,
}

impl JobArgs {
    pub fn encode(&self) -> String {
        format!("{} {} {} {}", self.job, self.database.to_u32(), self.owner.to_u32(), self.creator_xid)
    }

    pub fn decode(extra: &str) -> Option<JobArgs> {
        let mut parts = extra.split_whitespace().map(|p| p.parse::<u64>().ok());
        Some(JobArgs {
            job: parts.next()?? as i64,
            database: pg_sys::Oid::from(parts.next()?? as u32),
            owner: pg_sys::Oid::from(parts.next()?? as u32),
            creator_xid: parts.next()??,
        })
    }
}

/// Refuses, before anything is queued, a job whose worker could not connect.
pub fn check_owner_can_log_in(owner: pg_sys::Oid) -> Result<()> {
    let (name, can_login) = Spi::get_two_with_args::<String, bool>(
        "SELECT rolname::text, rolcanlogin FROM pg_catalog.pg_roles WHERE oid = $1",
        &[owner.into()],
    )
    .unwrap_or((None, None));
    if can_login == Some(true) {
        return Ok(());
    }
    let name = name.unwrap_or_else(|| owner.to_u32().to_string());
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("role \"{name}\" cannot log in, so a pg_migrate worker cannot run its job"),
    )
    .detail("Background jobs run as the role that queues them, and PostgreSQL 15 lets a background worker connect only as a role with LOGIN.")
    .hint(format!("Run the migration as a role that can log in (not through SET ROLE to \"{name}\"), or ALTER ROLE \"{name}\" LOGIN.")))
}

/// Starts a worker for `args` unless migrate.max_workers, or migrate.max_workers_per_role of the
/// job's owner, are busy: the job then waits in the queue and starts when a worker finishes or a
/// migrate.* call resumes jobs. Returns whether a worker was started.
pub fn start(args: JobArgs) -> Result<bool> {
    if let Some(why) = Busy::now().refusal(args.owner) {
        notice(format!("pg_migrate: job {} is queued: {why}; it starts when one finishes", args.job));
        return Ok(false);
    }
    launch(args)?;
    Ok(true)
}

fn launch(args: JobArgs) -> Result<()> {
    let started = BackgroundWorkerBuilder::new(&format!("pg_migrate job {}", args.job))
        .set_type(WORKER_TYPE)
        .set_library("pg_migrate")
        .set_function("pg_migrate_job_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .set_extra(&args.encode())
        .load_dynamic();
    if started.is_ok() {
        return Ok(());
    }
    let max_procs = Spi::get_one::<String>("SELECT pg_catalog.current_setting('max_worker_processes')")
        .ok()
        .flatten()
        .unwrap_or_default();
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
        format!("could not start a pg_migrate worker for job {}: no background worker slot is free", args.job),
    )
    .detail(format!(
        "max_worker_processes is {max_procs} and every slot is in use (parallel queries, logical replication, pg_cron, pg_migrate's jobs and launchers all use them)."
    ))
    .hint("Raise max_worker_processes (needs a restart), or lower migrate.max_workers, or retry when other workers have finished."))
}

/// Starts workers for this database's jobs that have none (after a crash, an immediate
/// shutdown, a killed worker, or a full worker pool), oldest first. A role at its
/// migrate.max_workers_per_role is passed over, so that its queue does not hold up other roles'
/// jobs. Returns how many were started.
pub fn resume_orphans() -> i64 {
    let database = unsafe { pg_sys::MyDatabaseId };
    let mut busy = Busy::now();
    let mut started = 0;
    for (job, owner) in workers::orphans() {
        if busy.full() {
            break;
        }
        if busy.refusal(owner).is_some() || check_owner_can_log_in(owner).is_err() {
            continue;
        }
        if let Err(f) = launch(JobArgs { job, database, owner, creator_xid: 0 }) {
            pgrx::warning!("{}", f.message);
            break;
        }
        busy.add(owner);
        started += 1;
    }
    started
}
