//! Running the user's statements in a dry run (plan, verify): one statement at a time in its own
//! subtransaction, as the caller and with the caller's search_path, with a single lock attempt
//! bounded by `migrate.lock_timeout`, so that a dry run never queues behind application traffic
//! for long (and never makes traffic queue behind it for long).

use crate::ddl::retry::try_once;
use crate::ddl::script::Statement;
use crate::ddl::subxact::Caught;
use crate::gucs;
use pgrx::PgSqlErrorCode;
use std::time::Instant;

/// Runs one statement; returns how long it took in milliseconds, or what it raised.
pub fn run(stmt: &Statement) -> Result<f64, Caught> {
    let started = Instant::now();
    try_once(&stmt.sql, gucs::lock_timeout_ms())?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// A failed statement, described for a result row.
pub fn describe_failure(caught: &Caught) -> String {
    if caught.code == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE {
        format!("lock not granted within migrate.lock_timeout ({} ms): {}", gucs::lock_timeout_ms(), caught.message)
    } else {
        caught.message.clone()
    }
}
