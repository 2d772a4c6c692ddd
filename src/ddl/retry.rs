//! Runs a migration script statement by statement, politely: each statement runs in its own
//! subtransaction with a short lock_timeout; when its lock is not granted in time only that
//! statement is undone, and it is tried again after a growing pause. Earlier statements of the
//! same migration stay done. After the last try the error names the sessions holding the lock.

use super::blockers;
use super::script::{Script, Statement};
use super::session::GucScope;
use super::subxact::{self, Caught};
use super::watch::Watch;
use crate::error::{notice, Failure, Result};
use crate::gucs;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// The lock_timeout of try `n` (0-based): 50% longer each retry, at most four times the first.
/// And the pause before try `n` (n ≥ 1): doubling from `migrate.retry_backoff`, capped at 2 s.
pub fn schedule(first_timeout_ms: i32, backoff_ms: i32, n: u32) -> (i32, i32) {
    let timeout = (f64::from(first_timeout_ms) * 1.5f64.powi(n as i32))
        .min(f64::from(first_timeout_ms) * 4.0) as i32;
    let pause = if n == 0 {
        0
    } else {
        (i64::from(backoff_ms) << (n - 1).min(20)).min(2_000) as i32
    };
    (timeout, pause)
}

/// Runs every statement of `script` for `version`, in order, in the caller's transaction.
pub fn run_script(version: &str, script: &Script) -> Result<()> {
    let total = script.statements.len();
    for stmt in &script.statements {
        run_statement(version, script, stmt, total)?;
    }
    Ok(())
}

fn run_statement(version: &str, script: &Script, stmt: &Statement, total: usize) -> Result<()> {
    let retries = gucs::lock_retries().max(0) as u32;
    let first_timeout = gucs::lock_timeout_ms();
    let backoff = gucs::retry_backoff_ms();
    let where_ = format!(
        "statement {}/{} (line {}) of {} SQL of version \"{version}\"",
        stmt.number,
        total,
        stmt.line,
        script.direction.as_str()
    );

    let mut last_blocker = String::new();
    for attempt in 0..=retries {
        let (timeout, pause) = schedule(first_timeout, backoff, attempt);
        if pause > 0 {
            sleep_ms(jitter(pause));
        }
        let watch = Watch::start(gucs::statement_timeout_ms());
        let outcome = try_once(&stmt.sql, timeout);
        let timed_out = watch.timed_out();
        let awaited = watch.awaited_lock();
        drop(watch);

        let caught = match outcome {
            Ok(()) => return Ok(()),
            Err(caught) => caught,
        };
        if timed_out && caught.code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                format!("{where_} exceeded migrate.statement_timeout ({} ms)", gucs::statement_timeout_ms()),
            )
            .detail(format!("Statement: {}", stmt.fragment()))
            .hint("Nothing was applied. Raise migrate.statement_timeout, or split the work (long data changes belong in a backfill)."));
        }
        if caught.code != PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE {
            return Err(decorate(&where_, stmt, caught));
        }
        last_blocker = awaited
            .map(|lock| blockers::describe(&lock))
            .unwrap_or_else(|| "the blocking session could not be identified".to_string());
        if attempt < retries {
            let (_, next_pause) = schedule(first_timeout, backoff, attempt + 1);
            notice(format!(
                "pg_migrate: lock not granted within {timeout} ms for {where_} (try {}/{}); retrying in about {next_pause} ms. Waiting for {last_blocker}",
                attempt + 1,
                retries + 1
            ));
        }
    }
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
        format!("{where_} could not get its lock after {} tries", retries + 1),
    )
    .detail(format!("Waited for {last_blocker}. Statement: {}", stmt.fragment()))
    .hint("Nothing was applied. End or wait for the blocking session, then call again; migrate.lock_timeout, migrate.lock_retries and migrate.retry_backoff set how long pg_migrate keeps trying."))
}

/// One try of one statement in its own subtransaction with `lock_timeout` set: on error only
/// this statement is undone and the error is returned.
pub fn try_once(sql: &str, lock_timeout_ms: i32) -> std::result::Result<(), Caught> {
    subxact::run(|| {
        let guc = GucScope::new();
        guc.set("lock_timeout", &format!("{lock_timeout_ms}ms"));
        if let Err(e) = Spi::run(sql) {
            pgrx::error!("{e}");
        }
        drop(guc);
    })
}

/// The original error, with where it happened in the script. The SQLSTATE is kept so that
/// clients can still react to it (a unique violation stays 23505).
fn decorate(where_: &str, stmt: &Statement, caught: Caught) -> Failure {
    let mut detail = format!("Statement: {}", stmt.fragment());
    if let Some(d) = caught.detail {
        detail = format!("{d}\n{detail}");
    }
    let hint = match caught.hint {
        Some(h) => format!("{h}\nNothing was applied: the migration's statements were rolled back."),
        None => "Nothing was applied: the migration's statements were rolled back.".to_string(),
    };
    Failure::new(caught.code, format!("{where_} failed: {}", caught.message))
        .detail(detail)
        .hint(hint)
}

/// Up to 25% random jitter so that several deployers do not retry in lockstep.
fn jitter(ms: i32) -> i32 {
    let r = unsafe { pg_sys::pg_prng_uint32(&raw mut pg_sys::pg_global_prng_state) };
    ms + (r % (ms as u32 / 4 + 1)) as i32
}

/// Sleeps without ignoring cancel requests or postmaster death.
fn sleep_ms(ms: i32) {
    unsafe {
        let events = (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms as u64);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now()).as_millis() as i64;
            if left <= 0 {
                break;
            }
            pg_sys::WaitLatch(pg_sys::MyLatch, events, left, pg_sys::PG_WAIT_EXTENSION);
            pg_sys::ResetLatch(pg_sys::MyLatch);
            pg_sys::check_for_interrupts!();
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::schedule;
    use pgrx::prelude::*;

    #[pg_test]
    fn schedule_grows_and_is_bounded() {
        assert_eq!(schedule(250, 100, 0), (250, 0));
        assert_eq!(schedule(250, 100, 1), (375, 100));
        assert_eq!(schedule(250, 100, 2), (562, 200));
        assert_eq!(schedule(250, 100, 10), (1000, 2000));
        assert_eq!(schedule(250, 100, 60).1, 2000);
    }
}
