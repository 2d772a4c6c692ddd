//! The lint rules' checks, one module per family. Statement checks look at one parse tree with
//! what the script did before it; script checks look at the facts of all statements together
//! (transaction structure, lock order, DDL mixed with data).

mod columns;
mod constraints;
mod data;
mod destructive;
mod indexes;
mod locking;
mod maintenance;

use super::context::Script;
use super::facts::Facts;
use crate::ddl::script::Statement;
use pgrx::pg_sys;

/// Runs every statement-level check on one statement.
pub unsafe fn statement(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        indexes::check(script, node);
        maintenance::check(script, node);
        constraints::check(script, node);
        columns::check(script, node);
        destructive::check(script, node);
        data::check(script, node);
    }
}

/// Whether the script runs under `migrate.apply()` (which sets its own lock_timeout and refuses
/// non-transactional statements before lint) or in some other tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    PgMigrate,
    Unknown,
}

/// Runs the script-wide checks over every statement's facts.
pub fn script(script: &mut Script, statements: &[(&Statement, Facts)], runner: Runner) {
    locking::statement_after_access_exclusive(script, statements);
    // migrate.apply() runs CONCURRENTLY statements in a background job and sets lock_timeout
    // itself: these two only matter to other runners.
    if runner != Runner::PgMigrate {
        locking::concurrently_in_transaction(script, statements);
        locking::missing_lock_timeout(script, statements);
    }
    data::mixed_ddl_and_data(script, statements);
}
