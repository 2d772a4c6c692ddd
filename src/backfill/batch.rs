//! One batch of a backfill, in the current transaction: the job's worker runs each in a
//! transaction of its own, `migrate.backfill_batch()` in the caller's. The job's row is locked
//! first, so batches of one job never run at the same time (no row is updated twice, no two
//! batches deadlock); the cursor is saved in the same transaction as the rows, so a crash
//! loses or repeats nothing.

use super::spec::{self, MAX_BATCH, MIN_BATCH};
use super::walk::{self, Key, Table};
use crate::catalog::backfills::{self, Backfill, Done, Pace, Walk};
use crate::ddl::retry::{schedule, sleep_ms};
use crate::ddl::session::{as_role_restricted, GucScope};
use crate::ddl::subxact::{self, Caught};
use crate::error::{Failure, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What a call of `run` did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub updated: i64,
    /// This batch reached the end: the job is done.
    pub finished: bool,
    /// Set when the job does not run (done, paused, cancelled, failed): its state. Nothing was done.
    pub idle: Option<String>,
    /// Other sessions waited for this batch's row locks.
    pub contended: bool,
    pub elapsed_ms: f64,
    /// The rows this batch was sized for.
    pub size: i32,
}

/// What the UPDATE of one batch did.
struct Step {
    updated: i64,
    scanned: i64,
    cursor: Vec<String>,
    finished: bool,
}

/// Runs the next batch of `job`: at most `max_rows` rows, or the job's current batch size. A
/// batch whose row locks are not granted within migrate.lock_timeout is undone and tried again,
/// half as large, like a migration statement. The next batch size aims at the job's batch time
/// times `stretch` (1 but while nobody else uses the server, see `worker::Pacer`).
pub fn run(job: i64, max_rows: Option<i32>, stretch: i32) -> Result<Outcome> {
    let Some(b) = backfills::lock(job) else {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("backfill job {job} does not exist"))
            .hint("See SELECT * FROM migrate.progress for the backfills you can see."));
    };
    if !matches!(b.state.as_str(), "queued" | "running") {
        return Ok(Outcome { idle: Some(b.state.clone()), ..Outcome::default() });
    }
    let table = Table::of_job(&b)?;
    let limits = b.settings.limits;
    let mut size = max_rows.map_or(b.pace.batch_size, |m| b.pace.batch_size.min(m.max(1)));
    let retries = limits.lock_retries.max(0) as u32;
    for n in 0..=retries {
        let (lock_timeout, pause) = schedule(limits.lock_timeout_ms.max(1), limits.retry_backoff_ms, n);
        if pause > 0 {
            sleep_ms(pause);
        }
        let started = Instant::now();
        let tried = subxact::run(|| in_job_session(&b, lock_timeout, || one_batch(&b, &table, size)));
        let step = match tried {
            Ok(step) => step,
            Err(caught) if n < retries && is_contention(&caught) => {
                size = (size / 2).max(MIN_BATCH.min(size));
                crate::error::notice(format!(
                    "pg_migrate: backfill job {job}: batch not done ({}); retrying with {size} rows",
                    caught.message
                ));
                continue;
            }
            Err(caught) => return Err(failed(&b, size, caught)),
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let contended = super::throttle::sessions_waiting_on_me() > 0;
        backfills::record_batch(
            job,
            &Done {
                cursor: Some(&step.cursor),
                updated: step.updated,
                scanned: step.scanned,
                next_batch_size: next_size(&stretched(&b.pace, stretch), size, step.scanned, elapsed_ms, contended),
                elapsed_ms,
                rows_per_second: rate(&b, step.scanned, elapsed_ms),
                finished: step.finished,
            },
        );
        return Ok(Outcome {
            updated: step.updated,
            finished: step.finished,
            idle: None,
            contended,
            elapsed_ms,
            size,
        });
    }
    unreachable!("the last try returns")
}

/// Runs `f` the way every batch of the job runs, whoever calls it (the job's worker, pg_cron, a
/// superuser, a member of the owner role): as the job's owner under
/// SECURITY_RESTRICTED_OPERATION with every setting undone at the end (`as_role_restricted`),
/// with the search_path the job was started with, a lock_timeout for row locks, stable text
/// forms for key values, and migrate.backfill_job set so that sync triggers recognise the
/// batch's writes.
pub(super) fn in_job_session<R>(b: &Backfill, lock_timeout_ms: i32, f: impl FnOnce() -> R) -> R {
    as_role_restricted(pg_sys::Oid::from(b.owner), || {
        let guc = GucScope::new();
        if let Some(path) = &b.settings.search_path {
            guc.set("search_path", path);
        }
        guc.set("lock_timeout", &format!("{lock_timeout_ms}ms"));
        guc.set("DateStyle", "ISO, YMD");
        guc.set("IntervalStyle", "postgres");
        guc.set("extra_float_digits", "3");
        let _marked = super::marker::mark(&guc, b.job);
        f()
    })
}

fn one_batch(b: &Backfill, table: &Table, size: i32) -> Step {
    let set = spec::set_list(&b.targets);
    let filter = b.filter.as_deref();
    let cursor = b.cursor.as_deref();
    let Some(upper) = b.upper_bound.as_deref() else {
        // The table was empty when the job started.
        return Step { updated: 0, scanned: 0, cursor: vec![], finished: true };
    };
    match Key::of_job(b) {
        Some(key) => {
            let (end, scanned) = match walk::batch_end(&key, table, cursor, upper, size) {
                Some(end) => (end, i64::from(size)),
                None => (upper.to_vec(), walk::rows_left(&key, table, cursor, upper)),
            };
            let finished = end.as_slice() == upper;
            let updated = walk::update_keys(&key, table, &set, filter, cursor, &end);
            Step { updated, scanned, cursor: end, finished }
        }
        None => {
            let pages: i64 = upper[0].parse().unwrap_or(0);
            let from: i64 = cursor.and_then(|c| c[0].parse().ok()).unwrap_or(0);
            let per_page = b.rows_per_page.max(1.0);
            let to = (from + (f64::from(size) / per_page).ceil().max(1.0) as i64).min(pages);
            let xmax = b.start_xmax.as_deref().unwrap_or("0");
            let updated = walk::update_pages(table, &set, filter, from, to, xmax, &b.start_xip);
            let scanned = ((to - from) as f64 * per_page) as i64;
            Step { updated, scanned, cursor: vec![to.to_string()], finished: to >= pages }
        }
    }
}

/// Lock timeouts, deadlocks and serialization failures: the batch is tried again, smaller.
fn is_contention(c: &Caught) -> bool {
    matches!(
        c.code,
        PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
            | PgSqlErrorCode::ERRCODE_T_R_DEADLOCK_DETECTED
            | PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE
    )
}

fn failed(b: &Backfill, size: i32, caught: Caught) -> Failure {
    let at = match (&b.cursor, b.walk) {
        (None, _) => "the first batch".to_string(),
        (Some(c), Walk::Key) => format!("the batch after key ({})", c.join(", ")),
        (Some(c), Walk::Ctid) => format!("the batch from page {}", c[0]),
    };
    let mut detail = format!("{at} of {size} rows; SET {}", crate::ddl::retry::fragment(&b.assignments));
    if let Some(d) = &caught.detail {
        detail = format!("{d}\n{detail}");
    }
    let hint = format!(
        "{}The batch was rolled back; the rows before it stay done and the job resumes at that batch: fix the cause, then SELECT migrate.resume({}) (or migrate.cancel).",
        caught.hint.as_deref().map(|h| format!("{h}\n")).unwrap_or_default(),
        b.job
    );
    Failure::new(caught.code, format!("backfill job {} on {} failed: {}", b.job, b.table_name, caught.message))
        .detail(detail)
        .hint(hint)
}

/// The pace with a batch time `stretch` times the job's, at most a second.
fn stretched(pace: &Pace, stretch: i32) -> Pace {
    let longer = pace.batch_time_ms.saturating_mul(stretch.max(1)).min(1000);
    Pace { batch_time_ms: pace.batch_time_ms.max(longer), ..*pace }
}

/// The next batch size: toward the target batch time (at most doubling or halving per batch),
/// halved when sessions queued behind the batch's row locks.
pub fn next_size(pace: &Pace, used: i32, scanned: i64, elapsed_ms: f64, contended: bool) -> i32 {
    if pace.fixed_batch {
        return pace.batch_size;
    }
    let mut next = f64::from(used);
    // A short last batch says nothing about speed.
    if scanned >= i64::from(used) / 2 {
        next *= (f64::from(pace.batch_time_ms) / elapsed_ms.max(1.0)).clamp(0.5, 2.0);
    }
    if contended {
        next = next.min(f64::from(used) / 2.0);
    }
    (next.round() as i32).clamp(MIN_BATCH, MAX_BATCH)
}

/// Rows per second over the last batch and the pause before it (smoothed), so that the ETA
/// includes the sleeps between batches.
fn rate(b: &Backfill, scanned: i64, elapsed_ms: f64) -> Option<f64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    let seconds = match b.last_batch_epoch {
        Some(last) if now - last < 60.0 && now > last => now - last,
        _ => elapsed_ms / 1000.0,
    };
    if seconds <= 0.0 || scanned <= 0 {
        return None;
    }
    let current = scanned as f64 / seconds;
    Some(b.rows_per_second.map_or(current, |previous| 0.7 * previous + 0.3 * current))
}
