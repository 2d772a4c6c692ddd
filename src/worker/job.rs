//! A job's worker: connects as the job's owner, waits until the transaction that queued the job
//! has ended, then runs the job's steps in order as top-level statements, saving its cursor after
//! each so that a crash, an immediate shutdown or a killed worker resumes where it stopped.
//! A backfill job runs its batches instead (`backfill::worker`).

use super::executor::{self, transaction};
use super::launch::{self, JobArgs};
use super::slots::Seats;
use crate::catalog::history::{self, JobOutcome};
use crate::catalog::jobs::{self, Claimed, Internal, Step};
use crate::catalog::workers;
use crate::ddl::retry::{run_politely, sleep_ms, Limits, Site};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_migrate_job_main(_arg: pg_sys::Datum) {
    let Some(args) = JobArgs::decode(BackgroundWorker::get_extra()) else {
        pgrx::log!("pg_migrate: job worker started without a job");
        return;
    };
    unsafe {
        // pgrx's handler only sets a flag; Postgres's own `die` interrupts a running statement,
        // so that a fast shutdown does not wait for a long CREATE INDEX CONCURRENTLY.
        // PostgreSQL 18 names the backend's pqsignal pqsignal_be (a macro in C).
        #[cfg(not(feature = "pg18"))]
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(die_soon));
        #[cfg(feature = "pg18")]
        pg_sys::pqsignal_be(pg_sys::SIGTERM as i32, Some(die_soon));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(args.database), Some(args.owner));
    // pg_migrate's own queries in this worker never resolve names on a path the owner's role
    // settings (or anyone who can create in a schema on it) chose: they would run with the
    // owner's rights, a superuser's for a superuser's job. The job's statements get the job's
    // search_path around each of them (`with_job_search_path`).
    crate::ddl::session::set_session("search_path", PINNED_SEARCH_PATH);
    run(args);
}

/// What Postgres's `die` does for a backend: the next CHECK_FOR_INTERRUPTS ends the process,
/// also in the middle of a statement.
unsafe extern "C-unwind" fn die_soon(_signal: std::ffi::c_int) {
    unsafe {
        pg_sys::ProcDiePending = 1;
        pg_sys::InterruptPending = 1;
        pg_sys::SetLatch(pg_sys::MyLatch);
    }
}

fn run(args: JobArgs) {
    let job = args.job;
    if !wait_for_creator(job, args.creator_xid) {
        return;
    }
    let Some((claimed, seats)) = claim(job, args.owner) else {
        return;
    };
    if claimed.kind == "backfill" {
        pgrx::log!("pg_migrate: backfill job {job} running (attempt {})", claimed.attempts);
        crate::backfill::worker::run(job, &seats);
    } else {
        pgrx::log!(
            "pg_migrate: job {job} running (attempt {}), {} of {} steps done",
            claimed.attempts,
            claimed.cursor,
            claimed.steps.len()
        );
        run_steps(job, &claimed, &seats);
    }
    drop(seats);
    // Jobs that waited for a free worker slot, or lost theirs, start now.
    transaction(launch::resume_orphans);
}

/// How long a worker waits for a seat (`Seats::take`): the worker that started it may still be
/// ending.
const TURN_WAIT: Duration = Duration::from_secs(5);

/// What one try to claim the job found.
enum Claim {
    Mine(Claimed, Seats),
    /// The job has ended or is paused: its state.
    Ended(String),
    /// Another live worker runs it (its pid, when known).
    Taken(Option<i32>),
    /// Too many workers run now: why.
    NotYet(String),
}

/// Claims the job for this worker: records this worker in the job row, under the row's lock,
/// when the job is still to be done, no other live worker holds it and the worker limits leave
/// room. None when this worker has nothing to do; a job it could not claim for lack of room
/// stays queued, and the next worker that ends (or the next migrate.* call, or the launcher)
/// starts another worker for it.
fn claim(job: i64, owner: pg_sys::Oid) -> Option<(Claimed, Seats)> {
    let deadline = Instant::now() + TURN_WAIT;
    loop {
        let attempt = transaction(|| {
            let Some(locked) = workers::lock_for_claim(job) else {
                return Claim::Ended("gone".into());
            };
            if !matches!(locked.state.as_str(), "queued" | "running") {
                return Claim::Ended(locked.state);
            }
            if let Some(pid) = locked.taken_by {
                return Claim::Taken(pid);
            }
            match Seats::take(owner) {
                Err(why) => Claim::NotYet(why),
                Ok(seats) => Claim::Mine(workers::claim(job), seats),
            }
        });
        match attempt {
            Claim::Mine(claimed, seats) => return Some((claimed, seats)),
            Claim::Ended(state) => {
                // Cancelled while this worker waited: the versions it carried are settled here.
                if state == "cancelled" {
                    let steps = transaction(|| jobs::steps(job));
                    if !steps.is_empty() {
                        end_cancelled(job, &steps, 0);
                    }
                }
                return None;
            }
            Claim::Taken(pid) => {
                let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                pgrx::log!("pg_migrate: job {job} already has a live worker{pid}; this one stops");
                return None;
            }
            Claim::NotYet(_) if Instant::now() < deadline => sleep_ms(100),
            Claim::NotYet(why) => {
                pgrx::log!("pg_migrate: job {job} stays queued: {why}");
                return None;
            }
        }
    }
}

const PINNED_SEARCH_PATH: &str = "pg_catalog, pg_temp";

/// Runs one of the job's statements, or a lookup of the names in it (`cleanup`), with the
/// search_path of the session that queued the job, so that names resolve as the script's did,
/// and pins it again afterwards (also on error).
fn with_job_search_path<R>(path: Option<&str>, f: impl FnOnce() -> R) -> R {
    struct Repin;
    impl Drop for Repin {
        fn drop(&mut self) {
            crate::ddl::session::set_session("search_path", PINNED_SEARCH_PATH);
        }
    }
    let _repin = Repin;
    if let Some(path) = path {
        crate::ddl::session::set_session("search_path", path);
    }
    f()
}

/// Waits until the job row is visible (its transaction committed). False when that transaction
/// rolled back: there is nothing to do.
fn wait_for_creator(job: i64, creator_xid: u64) -> bool {
    let mut committed_before = false;
    loop {
        let (visible, status) = transaction(|| {
            let visible = jobs::state(job).is_some();
            let status = if visible || creator_xid == 0 {
                None
            } else {
                Spi::get_one_with_args::<String>(
                    "SELECT pg_catalog.pg_xact_status($1::text::xid8)",
                    &[creator_xid.to_string().into()],
                )
                .ok()
                .flatten()
            };
            (visible, status)
        });
        if visible {
            return true;
        }
        match status.as_deref() {
            Some("in progress") => sleep_ms(50),
            // It committed between this poll's two reads: the next poll's snapshot sees the row.
            Some("committed") if !committed_before => committed_before = true,
            _ => return false,
        }
    }
}

fn run_steps(job: i64, claimed: &Claimed, seats: &Seats) {
    let s = &claimed.settings;
    // A stored 0 (settings missing) must not turn into "no lock_timeout" for polite steps.
    let limits = Limits { lock_timeout_ms: s.limits.lock_timeout_ms.max(1), ..s.limits };
    // Internal steps can list more steps (the partitions of a partitioned table): the list grows.
    let mut steps = claimed.steps.clone();
    let mut i = claimed.cursor;
    while i < steps.len() {
        let step = steps[i].clone();
        if transaction(|| jobs::state(job)).as_deref() == Some("cancelled") {
            return end_cancelled(job, &steps, i);
        }
        if !seats.keep() {
            return lost_seat(job);
        }
        if let Some(internal) = &step.internal {
            let beat = || transaction(|| jobs::heartbeat(job));
            beat();
            let outcome = match internal {
                Internal::DropPartitionedIndex { index } => super::partitions::drop_politely(index, &limits, &beat).map(|()| None),
                Internal::PartitionIndex { .. } => super::partitions::partition_index(job, &steps, i, &limits, &beat).map(Some),
                Internal::UndoPartitionedIndex { index, job: built_by, built, adopted } => {
                    super::partitions::undo(index, *built_by, built, adopted, &limits, &beat).map(|()| None)
                }
                Internal::FinishContract { change, round } => {
                    super::partitions::finish_contract(job, &steps, i, *change, *round, &limits, &beat)
                }
                _ => super::partitions::run_in_transaction(job, &steps, i, internal),
            };
            match outcome {
                Ok(Some(listed)) => steps = listed,
                Ok(None) => transaction(|| finish_step(job, &steps, i)),
                Err(failure) => return fail(job, &steps, i, failure),
            }
            i += 1;
            continue;
        }
        // A migration's CREATE INDEX CONCURRENTLY on a partitioned table becomes the steps that
        // build it partition by partition (PostgreSQL refuses CONCURRENTLY there).
        match with_job_search_path(s.search_path.as_deref(), || executor::in_transaction(|| super::partitioned_build::split(job, &steps, i))) {
            Ok(Ok(Some(split))) => {
                steps = split;
                continue;
            }
            Ok(Ok(None)) => {}
            Ok(Err(failure)) => return fail(job, &steps, i, failure),
            Err(caught) => return fail(job, &steps, i, crate::error::Failure::new(caught.code, caught.message)),
        }
        let resumed = claimed.attempts > 1 && i == claimed.cursor;
        let path = s.search_path.as_deref();
        if resumed && with_job_search_path(path, || super::cleanup::already_done(&step)) {
            pgrx::log!("pg_migrate: job {job} step {} was done before the worker stopped", i + 1);
            transaction(|| finish_step(job, &steps, i));
            i += 1;
            continue;
        }
        let invalid_before = with_job_search_path(path, || transaction(|| super::cleanup::invalid_indexes(&step)));
        let site = site_of(&step);
        let outcome = run_politely(&site, &limits, step.waits_politely(), |lock_timeout| {
            transaction(|| jobs::heartbeat(job));
            with_job_search_path(path, || executor::try_top_level(&step.sql, lock_timeout, limits.statement_timeout_ms))
        });
        match outcome {
            Ok(()) => transaction(|| finish_step(job, &steps, i)),
            Err(failure) => {
                // A failed or cancelled CREATE INDEX CONCURRENTLY leaves an INVALID index.
                with_job_search_path(path, || super::cleanup::drop_new_invalid_indexes(&step, &invalid_before));
                return fail(job, &steps, i, failure);
            }
        }
        i += 1;
    }
    transaction(|| jobs::finish(job, "done", None));
    pgrx::log!("pg_migrate: job {job} done");
}

/// Step `i` failed: the job is failed (or stays cancelled, when that is why it failed).
fn fail(job: i64, steps: &[Step], i: usize, failure: crate::error::Failure) {
    if transaction(|| jobs::settled_state(job)).as_deref() == Some("cancelled") {
        return end_cancelled(job, steps, i);
    }
    let step = &steps[i];
    let error = format!(
        "{}{}",
        failure.message,
        failure.detail.map(|d| format!(" ({d})")).unwrap_or_default()
    );
    pgrx::log!("pg_migrate: job {job} failed: {error}");
    transaction(|| {
        jobs::finish(job, "failed", Some((&error, failure.code)));
        end_versions(job, steps, i, |_| JobOutcome::Failed {
            error: &error,
            sqlstate: failure.code,
            statement: step.number,
            line: step.line,
        });
    });
}

/// A statement of the job gave up the worker's seats and another worker took one: this worker
/// stops, and the job, still running with no live worker, is resumed when a seat is free.
pub fn lost_seat(job: i64) {
    pgrx::log!("pg_migrate: job {job} stops here: its worker gave up its seat (pg_advisory_unlock_all or DISCARD ALL) and another worker took it; the job resumes when a worker is free");
}

fn site_of(step: &Step) -> Site<'_> {
    let mut site = Site::of(
        step.version.as_deref().unwrap_or("-"),
        step.direction.as_deref().unwrap_or("run_async"),
        step.number,
        step.total,
        step.line,
        &step.sql,
    );
    site.aftermath = "The job stopped at this statement; the statements before it stay done.";
    if step.version.is_none() {
        site.what = "the statement of the job".to_string();
    }
    site
}

/// Saves the cursor after step `i`, and closes its version when that was its last step.
fn finish_step(job: i64, steps: &[Step], i: usize) {
    jobs::advance(job, i + 1);
    let step = &steps[i];
    let last_of_version = steps.get(i + 1).is_none_or(|next| next.version != step.version);
    if let (true, Some(version)) = (last_of_version, &step.version) {
        history::record_job_outcome(version, step.direction.as_deref().unwrap_or("up"), job, JobOutcome::Done);
    }
}

fn end_cancelled(job: i64, steps: &[Step], i: usize) {
    pgrx::log!("pg_migrate: job {job} cancelled");
    transaction(|| {
        let by = jobs::cancelled_by(job).unwrap_or_default();
        end_versions(job, steps, i, |_| JobOutcome::Cancelled { by: &by });
    });
}

/// The job stopped at step `i`: that step's version gets `outcome`, versions whose steps had
/// not started stay as they were.
fn end_versions<'a>(job: i64, steps: &[Step], i: usize, outcome: impl Fn(&str) -> JobOutcome<'a>) {
    let current = steps[i].version.clone();
    if let Some(version) = &current {
        history::record_job_outcome(version, steps[i].direction.as_deref().unwrap_or("up"), job, outcome(version));
    }
    let mut seen = vec![current];
    for step in &steps[i + 1..] {
        if seen.contains(&step.version) {
            continue;
        }
        seen.push(step.version.clone());
        if let Some(version) = &step.version {
            history::record_job_outcome(version, step.direction.as_deref().unwrap_or("up"), job, JobOutcome::NotReached);
        }
    }
}
