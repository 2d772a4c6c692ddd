//! Run a closure in an internal subtransaction (what a PL/pgSQL EXCEPTION block does), so that a
//! failed try undoes only itself and never the earlier statements of the same migration.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::{CaughtError, ErrorReportWithLevel};
use pgrx::prelude::*;

/// What a failed try raised, enough to decide whether to retry and to re-raise it decorated.
#[derive(Debug, Clone)]
pub struct Caught {
    pub code: pgrx::PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl From<&ErrorReportWithLevel> for Caught {
    fn from(e: &ErrorReportWithLevel) -> Self {
        Caught {
            code: e.sql_error_code(),
            message: e.message().to_string(),
            detail: e.detail().map(str::to_string),
            hint: e.hint().map(str::to_string),
        }
    }
}

impl Caught {
    pub fn from_caught(caught: &CaughtError) -> Caught {
        match caught {
            CaughtError::PostgresError(e) | CaughtError::ErrorReport(e) | CaughtError::RustPanic { ereport: e, .. } => {
                Caught::from(e)
            }
        }
    }
}

impl From<Caught> for crate::error::Failure {
    fn from(c: Caught) -> Self {
        let mut f = crate::error::Failure::new(c.code, c.message);
        f.detail = c.detail;
        f.hint = c.hint;
        f
    }
}

/// Runs `f` inside a subtransaction. On success the subtransaction is released (its work stays
/// part of the caller's transaction); on error it is rolled back and the error returned.
pub fn run<R>(f: impl FnOnce() -> R) -> Result<R, Caught> {
    in_subtransaction(Ending::Keep, f)
}

/// Runs `f` inside a subtransaction that is always rolled back, also when `f` succeeds: a dry
/// run (plan, verify) sees the effects of the user's SQL while it runs and leaves none behind.
/// Values `f` returns must not point into memory of the subtransaction (Rust-owned data is fine).
pub fn run_and_roll_back<R>(f: impl FnOnce() -> R) -> Result<R, Caught> {
    in_subtransaction(Ending::RollBack, f)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Keep,
    RollBack,
}

fn in_subtransaction<R>(ending: Ending, f: impl FnOnce() -> R) -> Result<R, Caught> {
    let f = std::panic::AssertUnwindSafe(f);
    unsafe {
        let memcx = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        // Work inside the subtransaction allocates in the caller's context, as PL/pgSQL does.
        pg_sys::MemoryContextSwitchTo(memcx);

        PgTryBuilder::new(move || {
            let f = f;
            let value = (f.0)();
            match ending {
                Ending::Keep => pg_sys::ReleaseCurrentSubTransaction(),
                Ending::RollBack => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
            }
            pg_sys::MemoryContextSwitchTo(memcx);
            pg_sys::CurrentResourceOwner = owner;
            Ok(value)
        })
        .catch_others(move |caught| {
            pg_sys::MemoryContextSwitchTo(memcx);
            let report = Caught::from_caught(&caught);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(memcx);
            pg_sys::CurrentResourceOwner = owner;
            Err(report)
        })
        .execute()
    }
}
