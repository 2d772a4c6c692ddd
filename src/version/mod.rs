//! Version history: deciding what to apply or roll back, and remembering it.

mod apply;
mod bookkeeping;
mod checksum;
pub(crate) mod history;
mod rollback;
mod validate;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

use crate::error::{Failure, Result};
use pgrx::PgSqlErrorCode;
use std::cell::Cell;

thread_local! {
    static RUNNING: Cell<Option<&'static str>> = const { Cell::new(None) };
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
