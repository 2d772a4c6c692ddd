//! Failed attempts outlive their transaction: when migrate.apply() or migrate.rollback() fails,
//! the caller's transaction rolls back and would take any event row with it. The event is handed
//! to a short-lived background worker through a dynamic shared memory segment, and the worker
//! writes it in a transaction of its own.

use crate::catalog::history;
use crate::error::Failure;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::prelude::*;
use serde_json::json;

/// Hands the failed attempt to a worker. Best effort: if no worker can start, a WARNING says so
/// and the caller's error is raised as usual.
pub fn record(version: &str, action: &str, failure: &Failure) {
    let (actor, session_role) = crate::ddl::session::caller_names();
    let payload = json!({
        "version": version,
        "action": action,
        "actor": actor,
        "session_role": session_role,
        "error": failure.message,
        "detail": {
            "sqlstate": crate::error::sqlstate(failure.code),
            "statement": failure.statement.map(|s| s.0),
            "line": failure.statement.map(|s| s.1),
            "detail": failure.detail,
        }
    })
    .to_string();
    unsafe {
        let seg = pg_sys::dsm_create(payload.len() + 8, 0);
        let base = pg_sys::dsm_segment_address(seg) as *mut u8;
        std::ptr::write_unaligned(base as *mut u64, payload.len() as u64);
        std::ptr::copy_nonoverlapping(payload.as_ptr(), base.add(8), payload.len());
        // Pinned, the segment survives this backend's transaction abort until the worker reads it.
        pg_sys::dsm_pin_segment(seg);
        let handle = pg_sys::dsm_segment_handle(seg);
        let extra = format!("{} {} {}", handle, pg_sys::MyDatabaseId.to_u32(), pg_sys::GetSessionUserId().to_u32());
        let started = BackgroundWorkerBuilder::new("pg_migrate event writer")
            .set_type("pg_migrate event writer")
            .set_library("pg_migrate")
            .set_function("pg_migrate_attempt_main")
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(None)
            .set_extra(&extra)
            .load_dynamic();
        if started.is_err() {
            pg_sys::dsm_unpin_segment(handle);
            pgrx::warning!("pg_migrate: could not start a worker to record the failed attempt of \"{version}\" in migrate.events (no free background worker slot)");
        }
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_migrate_attempt_main(_arg: pg_sys::Datum) {
    let parts: Vec<u32> = BackgroundWorker::get_extra().split_whitespace().filter_map(|p| p.parse().ok()).collect();
    let [handle, database, role] = parts[..] else {
        return;
    };
    unsafe { pg_sys::BackgroundWorkerUnblockSignals() };
    // The session user, not the extension owner: it could log in, and the event is written as
    // the extension owner only through pg_migrate's own code, as in the caller's backend.
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(database)), Some(pg_sys::Oid::from(role)));
    let payload = unsafe {
        let seg = pg_sys::dsm_attach(handle);
        if seg.is_null() {
            return;
        }
        let base = pg_sys::dsm_segment_address(seg) as *const u8;
        let len = std::ptr::read_unaligned(base as *const u64) as usize;
        let bytes = std::slice::from_raw_parts(base.add(8), len).to_vec();
        pg_sys::dsm_unpin_segment(handle);
        pg_sys::dsm_detach(seg);
        bytes
    };
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&payload) else {
        return;
    };
    let text = |k: &str| event[k].as_str().unwrap_or_default().to_string();
    super::executor::transaction(|| {
        history::record_failed_attempt(
            &text("version"),
            &text("action"),
            event["detail"].clone(),
            &text("error"),
            &text("actor"),
            &text("session_role"),
        )
    });
}
