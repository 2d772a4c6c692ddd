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

/// How hard to try: the migrate.* settings of the caller (or of the job's creator, stored with
/// the job).
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub lock_timeout_ms: i32,
    pub lock_retries: i32,
    pub retry_backoff_ms: i32,
    pub statement_timeout_ms: i32,
}

impl Limits {
    pub fn from_settings() -> Limits {
        Limits {
            lock_timeout_ms: gucs::lock_timeout_ms(),
            lock_retries: gucs::lock_retries(),
            retry_backoff_ms: gucs::retry_backoff_ms(),
            statement_timeout_ms: gucs::statement_timeout_ms(),
        }
    }
}

/// Where a statement comes from, for messages: "statement 2/3 (line 4) of up SQL of version "7"".
pub struct Site<'a> {
    pub what: String,
    pub sql: &'a str,
    /// What the user should know happened to the rest when this statement failed.
    pub aftermath: &'static str,
}

impl<'a> Site<'a> {
    pub fn of(version: &str, direction: &str, number: usize, total: usize, line: usize, sql: &'a str) -> Site<'a> {
        Site {
            what: format!("statement {number}/{total} (line {line}) of {direction} SQL of version \"{version}\""),
            sql,
            aftermath: if direction == "down" {
                "Nothing was rolled back: the down script's statements were undone and the version stays as it was."
            } else {
                "Nothing was applied: the migration's statements were rolled back."
            },
        }
    }
}

/// The outcome of one try of a statement.
pub struct Try {
    pub error: Caught,
    /// Whether migrate.statement_timeout cancelled it.
    pub timed_out: bool,
    /// Who held the lock it waited for, when it waited.
    pub blocker: Option<String>,
}

/// Runs every statement of `script` for `version`, in order, in the caller's transaction.
pub fn run_script(version: &str, script: &Script, statements: &[Statement]) -> Result<()> {
    let limits = Limits::from_settings();
    let total = script.statements.len();
    for stmt in statements {
        let site = Site::of(version, script.direction.as_str(), stmt.number, total, stmt.line, &stmt.sql);
        run_politely(&site, &limits, true, |lock_timeout| in_subtransaction(&stmt.sql, lock_timeout, &limits))
            .map_err(|f| f.at(stmt.number, stmt.line))?;
    }
    Ok(())
}

/// One try in the caller's transaction: a subtransaction, so that a failed try undoes only itself.
fn in_subtransaction(sql: &str, lock_timeout_ms: i32, limits: &Limits) -> std::result::Result<(), Try> {
    let watch = Watch::start(limits.statement_timeout_ms);
    let outcome = try_once(sql, lock_timeout_ms);
    let timed_out = watch.timed_out();
    let awaited = watch.awaited_lock();
    drop(watch);
    outcome.map_err(|error| Try { error, timed_out, blocker: awaited.map(|lock| blockers::describe(&lock)) })
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

/// Runs `attempt` until it succeeds, retrying lock timeouts on the schedule of `limits` when
/// `polite_locks` (otherwise a single try without lock_timeout: for top-level statements such
/// as CREATE INDEX CONCURRENTLY, whose waits block no application traffic).
pub fn run_politely(
    site: &Site,
    limits: &Limits,
    polite_locks: bool,
    mut attempt: impl FnMut(i32) -> std::result::Result<(), Try>,
) -> Result<()> {
    let retries = if polite_locks { limits.lock_retries.max(0) as u32 } else { 0 };
    let where_ = &site.what;
    let mut last_blocker = String::new();
    for n in 0..=retries {
        let (timeout, pause) = schedule(limits.lock_timeout_ms, limits.retry_backoff_ms, n);
        if pause > 0 {
            sleep_ms(jitter(pause));
        }
        let failed = match attempt(if polite_locks { timeout } else { 0 }) {
            Ok(()) => return Ok(()),
            Err(failed) => failed,
        };
        if failed.timed_out && failed.error.code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                format!("{where_} exceeded migrate.statement_timeout ({} ms)", limits.statement_timeout_ms),
            )
            .detail(format!("Statement: {}", fragment(site.sql)))
            .hint(format!("{} Raise migrate.statement_timeout, or split the work (long data changes belong in a backfill).", site.aftermath)));
        }
        if failed.error.code != PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE || !polite_locks {
            return Err(decorate(site, failed.error));
        }
        last_blocker = failed.blocker.unwrap_or_else(|| "the blocking session could not be identified".to_string());
        if n < retries {
            let (_, next_pause) = schedule(limits.lock_timeout_ms, limits.retry_backoff_ms, n + 1);
            notice(format!(
                "pg_migrate: lock not granted within {timeout} ms for {where_} (try {}/{}); retrying in about {next_pause} ms. Waiting for {last_blocker}",
                n + 1,
                retries + 1
            ));
        }
    }
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
        format!("{where_} could not get its lock after {} tries", retries + 1),
    )
    .detail(format!("Waited for {last_blocker}. Statement: {}", fragment(site.sql)))
    .hint(format!("{} End or wait for the blocking session, then call again; migrate.lock_timeout, migrate.lock_retries and migrate.retry_backoff set how long pg_migrate keeps trying.", site.aftermath)))
}

/// The first 200 characters of a statement on one line, for error messages.
pub fn fragment(sql: &str) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// The original error, with where it happened in the script. The SQLSTATE is kept so that
/// clients can still react to it (a unique violation stays 23505).
fn decorate(site: &Site, caught: Caught) -> Failure {
    let mut detail = format!("Statement: {}", fragment(site.sql));
    if let Some(d) = caught.detail {
        detail = format!("{d}\n{detail}");
    }
    let hint = match caught.hint {
        Some(h) => format!("{h}\n{}", site.aftermath),
        None => site.aftermath.to_string(),
    };
    Failure::new(caught.code, format!("{} failed: {}", site.what, caught.message))
        .detail(detail)
        .hint(hint)
}

/// Up to 25% random jitter so that several deployers do not retry in lockstep.
fn jitter(ms: i32) -> i32 {
    let r = unsafe { pg_sys::pg_prng_uint32(&raw mut pg_sys::pg_global_prng_state) };
    ms + (r % (ms as u32 / 4 + 1)) as i32
}

/// Sleeps without ignoring cancel requests or postmaster death.
pub fn sleep_ms(ms: i32) {
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

/// Runs one statement pg_migrate generated, in the caller's transaction, politely: a short
/// lock_timeout and retries, as for a migration's statements. `what` names it in messages.
pub fn run_generated(what: &str, sql: &str) -> Result<()> {
    let limits = Limits::from_settings();
    let site = Site { what: what.to_string(), sql, aftermath: "Nothing was changed: the call's statements were rolled back." };
    run_politely(&site, &limits, true, |lock_timeout| in_subtransaction(sql, lock_timeout, &limits))
}
