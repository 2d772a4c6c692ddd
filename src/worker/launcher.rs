//! The optional launcher: with pg_migrate in shared_preload_libraries, one background worker per
//! database named in migrate.database_name resumes jobs whose worker is gone (after a crash or an
//! immediate shutdown) without waiting for the next migrate.* call. It connects as the bootstrap
//! superuser but runs no user SQL: job workers still connect as each job's owner.

use super::executor::transaction;
use super::launch;
use crate::gucs;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::prelude::*;
use std::time::Duration;

const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Called from _PG_init while shared_preload_libraries are loaded.
pub fn register() {
    gucs::register_launcher_settings();
    for db in gucs::database_names() {
        BackgroundWorkerBuilder::new(&format!("pg_migrate launcher {db}"))
            .set_type("pg_migrate launcher")
            .set_library("pg_migrate")
            .set_function("pg_migrate_launcher_main")
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(Some(Duration::from_secs(5)))
            .set_extra(&db)
            .load();
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_migrate_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    pgrx::log!("pg_migrate launcher started for database \"{db}\"");
    while BackgroundWorker::wait_latch(Some(CHECK_EVERY)) {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let started = transaction(|| {
            let installed = Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_migrate')",
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            if installed { launch::resume_orphans() } else { 0 }
        });
        if started > 0 {
            pgrx::log!("pg_migrate launcher: resumed {started} job(s) in \"{db}\"");
        }
    }
}
