//! Version history: deciding what to apply or roll back, and remembering it.

mod apply;
mod bookkeeping;
mod checksum;
mod owner;
mod rollback;
pub mod validate;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

use crate::catalog::jobs::Step;
use crate::ddl::script::{Script, Statement};
use crate::error::{Failure, Result};
use pgrx::PgSqlErrorCode;
use std::cell::{Cell, RefCell};

thread_local! {
    static RUNNING: Cell<Option<&'static str>> = const { Cell::new(None) };
    static APPLYING: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The version whose up SQL is running in this backend: changes made by `migrate.*` operations
/// inside it are recorded with it, so that its generated down SQL can undo them.
pub fn applying() -> Option<String> {
    APPLYING.with(|a| a.borrow().clone())
}

/// Marks `version` as the one whose up SQL runs until the guard is dropped.
pub struct Applying;

impl Applying {
    pub fn enter(version: &str) -> Applying {
        APPLYING.with(|a| *a.borrow_mut() = Some(version.to_string()));
        Applying
    }
}

impl Drop for Applying {
    fn drop(&mut self) {
        APPLYING.with(|a| *a.borrow_mut() = None);
    }
}

/// Marks that a pg_migrate call is running migration SQL in this backend. A migration's own SQL
/// calling migrate.apply() or migrate.rollback() again would nest histories; it is refused.
pub struct Running;

impl Running {
    pub fn enter(what: &'static str) -> Result<Running> {
        if let Some(outer) = RUNNING.with(Cell::get) {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("{what}() cannot be called from the SQL of a migration"),
            )
            .detail(format!("{outer}() is already running in this session."))
            .hint("Put the statements in the migration itself, or apply the other version separately."));
        }
        RUNNING.with(|r| r.set(Some(what)));
        Ok(Running)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(None));
    }
}

/// The statements a background job runs for `version`.
pub fn steps_of(version: &str, script: &Script, statements: &[Statement]) -> Vec<Step> {
    let origin = Some((version, script.direction.as_str()));
    statements
        .iter()
        .map(|s| Step::of(s, script.statements.len(), origin))
        .collect()
}

/// Hands a failed attempt to a worker so that migrate.events keeps it after the caller's
/// transaction rolls back (only failures of the migration's own SQL, not refused input).
pub fn record_attempt(version: Option<&str>, action: &str, failure: Failure) -> Failure {
    if let (Some(v), Some(_)) = (version, failure.statement) {
        crate::worker::attempts::record(v, action, &failure);
    }
    failure
}

/// "1 statement", "3 statements".
pub fn count(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}
