//! Runs SQL in a background worker the way the server runs a client's simple query: parse →
//! analyze → plan → portal run with isTopLevel = true, in a transaction of its own. This is what
//! lets CREATE INDEX CONCURRENTLY, VACUUM and friends run (pg_cron's background-worker mode and
//! pg_background do the same).

use crate::ddl::blockers;
use crate::ddl::session::set_guc;
use crate::ddl::retry::Try;
use crate::ddl::subxact::Caught;
use crate::ddl::watch::Watch;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;
use std::ffi::CString;

/// Runs `f` in a transaction of its own. An error aborts the transaction (pgrx's
/// BackgroundWorker::transaction would leave it open, see DESIGN.md) and is returned.
pub fn in_transaction<R>(f: impl FnOnce() -> R) -> Result<R, Caught> {
    let f = std::panic::AssertUnwindSafe(f);
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        PgTryBuilder::new(move || {
            let f = f;
            let value = (f.0)();
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
            Ok(value)
        })
        .catch_others(|caught| {
            pg_sys::AbortCurrentTransaction();
            Err(Caught::from_caught(&caught))
        })
        .execute()
    }
}

/// Like `in_transaction`, for bookkeeping that must not fail: an error is raised.
pub fn transaction<R>(f: impl FnOnce() -> R) -> R {
    in_transaction(f).unwrap_or_else(|c| crate::error::Failure::from(c).raise())
}

/// One try of a top-level statement. `lock_timeout_ms` 0 means no lock_timeout.
pub fn try_top_level(sql: &str, lock_timeout_ms: i32, statement_timeout_ms: i32) -> Result<(), Try> {
    let c_sql = CString::new(sql).expect("statements have no NUL bytes");
    let watch = Watch::start(statement_timeout_ms);
    let outcome = unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, c_sql.as_ptr());
        let sql_ptr = c_sql.as_ptr();
        PgTryBuilder::new(move || {
            set_guc("lock_timeout", &format!("{lock_timeout_ms}ms"), pg_sys::GucAction::GUC_ACTION_LOCAL);
            run_statements(sql_ptr);
            pg_sys::CommitTransactionCommand();
            Ok(())
        })
        .catch_others(|caught| {
            pg_sys::AbortCurrentTransaction();
            Err(Caught::from_caught(&caught))
        })
        .execute()
    };
    unsafe { pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null()) };
    let timed_out = watch.timed_out();
    let awaited = watch.awaited_lock();
    drop(watch);
    outcome.map_err(|error| Try {
        error,
        timed_out,
        blocker: awaited.and_then(|lock| in_transaction(|| blockers::describe(&lock)).ok()),
    })
}

unsafe fn run_statements(sql: *const std::ffi::c_char) {
    unsafe {
        // Parse trees and plans must outlive the transaction: CREATE INDEX CONCURRENTLY, DROP
        // INDEX CONCURRENTLY and VACUUM commit and start transactions of their own, which resets
        // TopTransactionContext (exec_simple_query keeps them in MessageContext for the same
        // reason).
        let context = pg_sys::AllocSetContextCreateExtended(
            pg_sys::TopMemoryContext,
            c"pg_migrate top-level statement".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let _free = FreeContext(context);
        let previous = pg_sys::MemoryContextSwitchTo(context);
        let parsed = PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(sql));
        for raw in parsed.iter_ptr() {
            let tag = pg_sys::CreateCommandTag((*raw).stmt);
            let snapshot = pg_sys::analyze_requires_snapshot(raw);
            if snapshot {
                pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            }
            let queries = pg_sys::pg_analyze_and_rewrite_fixedparams(raw, sql, std::ptr::null(), 0, std::ptr::null_mut());
            let plans = pg_sys::pg_plan_queries(queries, sql, pg_sys::CURSOR_OPT_PARALLEL_OK as i32, std::ptr::null_mut());
            if snapshot {
                pg_sys::PopActiveSnapshot();
            }
            let portal = pg_sys::CreatePortal(c"".as_ptr(), true, true);
            (*portal).visible = false;
            pg_sys::PortalDefineQuery(portal, std::ptr::null(), sql, tag, plans, std::ptr::null_mut());
            pg_sys::PortalStart(portal, std::ptr::null_mut(), 0, std::ptr::null_mut());
            let mut format: i16 = 0;
            pg_sys::PortalSetResultFormat(portal, 1, &mut format);
            let receiver = pg_sys::CreateDestReceiver(pg_sys::CommandDest::DestNone);
            let mut qc = pg_sys::QueryCompletion::default();
            pg_sys::MemoryContextSwitchTo(previous);
            // PostgreSQL 18 dropped PortalRun's run_once argument (always true here).
            #[cfg(not(feature = "pg18"))]
            pg_sys::PortalRun(portal, i64::MAX as _, true, true, receiver, receiver, &mut qc);
            #[cfg(feature = "pg18")]
            pg_sys::PortalRun(portal, i64::MAX as _, true, receiver, receiver, &mut qc);
            if let Some(destroy) = (*receiver).rDestroy {
                destroy(receiver);
            }
            pg_sys::PortalDrop(portal, false);
            pg_sys::MemoryContextSwitchTo(context);
        }
        pg_sys::MemoryContextSwitchTo(previous);
    }
}

/// Deletes the statement's memory context when the statement is done, also on error.
struct FreeContext(pg_sys::MemoryContext);

impl Drop for FreeContext {
    fn drop(&mut self) {
        unsafe {
            if pg_sys::CurrentMemoryContext == self.0 {
                pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
            }
            pg_sys::MemoryContextDelete(self.0)
        }
    }
}
