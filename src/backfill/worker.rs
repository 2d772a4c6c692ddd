//! A backfill job's worker loop: batch after batch, each in a transaction of its own (its row
//! locks last one batch), with the job's pause between batches, until the job is done, paused,
//! cancelled or fails. Stopping anywhere is safe: the cursor is saved with each batch's rows.

use super::{batch, load, throttle};
use crate::catalog::{backfills, jobs};
use crate::ddl::subxact::Caught;
use crate::worker::slots::Seats;
use crate::worker::executor::{in_transaction, transaction};
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// Progress reaches the server log this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub fn run(job: i64, seats: &Seats) {
    yield_cpu(crate::gucs::backfill_nice());
    let mut last_log = Instant::now();
    let mut calm = Calm::default();
    let mut pacer = Pacer::default();
    let mut last_size = 0;
    // Between batches a cancel (migrate.cancel signals the worker) may interrupt any statement:
    // every transaction here is caught, and the job's state says what happened.
    let stopped = |caught: Caught| fail(job, caught.code, &caught.message, caught.detail.as_deref());
    loop {
        let b = match in_transaction(|| backfills::get(job)) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(caught) => return stopped(caught),
        };
        if !matches!(b.state.as_str(), "queued" | "running") {
            pgrx::log!("pg_migrate: backfill job {job} stops: it is {}", b.state);
            return;
        }
        let mut interrupted = None;
        throttle::wait_for_replicas(
            job,
            b.pace.max_replica_lag_ms,
            || match in_transaction(|| {
                jobs::heartbeat(job);
                matches!(jobs::state(job).as_deref(), Some("queued" | "running")).then(throttle::worst_replica)
            }) {
                Ok(lag) => lag,
                Err(caught) => {
                    interrupted = Some(caught);
                    None
                }
            },
            nap,
            |why| {
                // What progress shows; a failure to say it must not stop the job.
                let _ = in_transaction(|| backfills::set_waiting(job, why));
            },
        );
        if let Some(caught) = interrupted {
            return stopped(caught);
        }
        let was_quiet = pacer.quiet;
        pacer.look();
        // Work has come: the next batch is sized for the usual batch time at once.
        let cap = match (was_quiet && !pacer.quiet, calm.cap) {
            (true, cap) => Some((last_size / QUIET_STRETCH).max(1).min(cap.unwrap_or(i32::MAX))),
            (false, cap) => cap,
        };
        let outcome = match in_transaction(|| batch::run(job, cap, pacer.stretch())) {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(failure)) => return fail(job, failure.code, &failure.message, failure.detail.as_deref()),
            Err(caught) => return stopped(caught),
        };
        if !seats.keep() {
            return crate::worker::job::lost_seat(job);
        }
        if let Some(state) = outcome.idle {
            pgrx::log!("pg_migrate: backfill job {job} stops: it is {state}");
            return;
        }
        if outcome.finished || last_log.elapsed() >= LOG_EVERY {
            if let Ok(Some(line)) = in_transaction(|| backfills::progress_line(job)) {
                pgrx::log!("{line}");
            }
            last_log = Instant::now();
        }
        if outcome.finished {
            return;
        }
        calm.after(&outcome);
        last_size = outcome.size;
        // Sessions queued behind the last batch: leave them as long again to catch up.
        let extra = if outcome.contended { outcome.elapsed_ms as i32 } else { 0 };
        // Backfills queued before 0.3.0 may have asked for longer pauses than the bound.
        let asked = b.pace.sleep_ms.min(crate::gucs::BACKFILL_SLEEP_MAX_MS);
        nap(asked + extra.max(pacer.pause_ms(outcome.elapsed_ms)));
    }
}

/// Lowers this worker process's CPU priority to `nice`: the application's backends, at the
/// server's own priority, then take the CPU whenever they need it, and the backfill runs on what
/// they leave. Measured in bench/README.md: with 0.2.0's batch settings, it took the writers'
/// p99 ratio at a 25% load from 13.4x to 3.8-4.9x (one run each). The worker runs only
/// this job and ends with it; nothing else runs at the lower priority. (A batch run by
/// migrate.backfill_batch() runs in the caller's own session, which keeps its priority: an
/// unprivileged process can lower its priority but not raise it back.)
fn yield_cpu(nice: i32) {
    extern "C" {
        fn setpriority(which: std::ffi::c_int, who: std::ffi::c_uint, prio: std::ffi::c_int) -> std::ffi::c_int;
    }
    const PRIO_PROCESS: std::ffi::c_int = 0;
    if nice > 0 && unsafe { setpriority(PRIO_PROCESS, 0, nice) } != 0 {
        pgrx::log!("pg_migrate: could not lower the backfill worker's CPU priority to nice {nice}");
    }
}

/// Batches aim at this many times the batch time while nobody else works.
const QUIET_STRETCH: i32 = 10;
/// "Nobody else works": the rest of the machine uses less than this share of all CPUs ...
const QUIET_SHARE: f64 = 0.05;
/// ... and no other client session works (`throttle::other_sessions_working`).
/// The smallest share of its time a worker spends in batches while the machine is saturated.
const MIN_DUTY: f64 = 0.1;

/// Paces the worker by what else the machine does (`load::CpuMeter`, a reading every 250 ms):
/// - While nobody else works, batches aim at QUIET_STRETCH times the batch time (at most 1 s):
///   fewer, larger transactions, so the fixed cost of each (catalog reads, the cursor's update,
///   the commit) weighs less, and the backfill goes about as fast as one UPDATE. The first
///   batch after other work shows up is sized for the usual batch time again.
/// - While the rest of the machine leaves less than one CPU unused, the worker's own CPU would
///   saturate it and the application's transactions would queue for CPU time, whatever the
///   worker's nice value (locks and buffers a descheduled worker holds still block them): the
///   worker pauses after each batch so that batches take at most `duty` of its time, `duty`
///   shrinking by 30% for each reading that finds the machine that busy (down to MIN_DUTY) and
///   growing by 0.1 for each that does not.
/// Where /proc cannot be read (not Linux), or with migrate.backfill_pace_by_load off (as a
/// worker started: background workers ignore SIGHUP, like migrate.backfill_nice), neither
/// applies.
struct Pacer {
    meter: load::CpuMeter,
    duty: f64,
    quiet: bool,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer { meter: load::CpuMeter::default(), duty: 1.0, quiet: false }
    }
}

impl Pacer {
    fn look(&mut self) {
        if !crate::gucs::backfill_pace_by_load() {
            (self.duty, self.quiet) = (1.0, false);
            return;
        }
        let Some(load) = self.meter.read() else {
            return;
        };
        self.duty = if load.spare_cpus < 1.0 { (self.duty * 0.7).max(MIN_DUTY) } else { (self.duty + 0.1).min(1.0) };
        self.quiet = load.others < QUIET_SHARE && matches!(in_transaction(throttle::other_sessions_working), Ok(false));
    }

    fn stretch(&self) -> i32 {
        if self.quiet {
            QUIET_STRETCH
        } else {
            1
        }
    }

    /// The pause after a batch that took `elapsed_ms`, for the duty cycle.
    fn pause_ms(&self, elapsed_ms: f64) -> i32 {
        (elapsed_ms * (1.0 / self.duty - 1.0)).round().min(f64::from(crate::gucs::BACKFILL_SLEEP_MAX_MS)) as i32
    }
}

/// How many batches stay small after application sessions queued behind one.
const CALM_BATCHES: u32 = 20;

/// After a batch that application sessions had to wait for, the next batches stay at half its
/// size for a while instead of growing back toward the target batch time at once: a workload
/// that touched the batch's rows once is likely to again, and a size that halves and doubles in
/// turn makes every other batch a queue.
#[derive(Default)]
struct Calm {
    cap: Option<i32>,
    left: u32,
}

impl Calm {
    fn after(&mut self, outcome: &batch::Outcome) {
        if outcome.contended {
            self.cap = Some((outcome.size / 2).max(1));
            self.left = CALM_BATCHES;
        } else if self.left > 0 {
            self.left -= 1;
            if self.left == 0 {
                self.cap = None;
            }
        }
    }
}

/// Ends the job as failed, unless it was cancelled (a cancel interrupts the running batch) or
/// paused meanwhile.
fn fail(job: i64, code: pgrx::PgSqlErrorCode, message: &str, detail: Option<&str>) {
    // A second cancel request must not interrupt this check.
    clear_cancel_request();
    let state = transaction(|| jobs::settled_state(job));
    if matches!(state.as_deref(), Some("cancelled" | "paused")) {
        pgrx::log!("pg_migrate: backfill job {job} stops: it is {}", state.unwrap_or_default());
        return;
    }
    let error = match detail {
        Some(d) => format!("{message} ({d})"),
        None => message.to_string(),
    };
    pgrx::log!("pg_migrate: backfill job {job} failed: {error}");
    transaction(|| jobs::finish(job, "failed", Some((&error, code))));
}

/// Sleeps between batches. A cancel request (migrate.cancel signals the worker) ends the sleep
/// instead of raising an error outside any transaction: the next batch sees the job's state.
fn nap(ms: i32) {
    let deadline = Instant::now() + Duration::from_millis(ms.max(0) as u64);
    unsafe {
        let events = (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32;
        loop {
            if clear_cancel_request() {
                return;
            }
            pg_sys::check_for_interrupts!();
            let left = deadline.saturating_duration_since(Instant::now()).as_millis() as i64;
            if left <= 0 {
                return;
            }
            pg_sys::WaitLatch(pg_sys::MyLatch, events, left, pg_sys::PG_WAIT_EXTENSION);
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
    }
}

/// Forgets a pending cancel request; true when there was one.
fn clear_cancel_request() -> bool {
    unsafe {
        let pending = pg_sys::QueryCancelPending != 0;
        pg_sys::QueryCancelPending = 0;
        pending
    }
}
