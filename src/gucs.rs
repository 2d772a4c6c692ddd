//! Settings a user can change with SET or in postgresql.conf. Defaults follow what GitLab's
//! `with_lock_retries` and pgroll use: a few hundred milliseconds per lock attempt, growing, with a
//! bounded total (about 22 s per statement with the defaults; see `ddl::retry::schedule`).

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static LOCK_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(250);
pub static LOCK_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(10);
pub static RETRY_BACKOFF_MS: GucSetting<i32> = GucSetting::<i32>::new(100);
pub static STATEMENT_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static MAX_SCRIPT_KB: GucSetting<i32> = GucSetting::<i32>::new(1024);
pub static MAX_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(4);
pub static MAX_WORKERS_PER_ROLE: GucSetting<i32> = GucSetting::<i32>::new(2);
pub static BACKFILL_BATCH_TIME_MS: GucSetting<i32> = GucSetting::<i32>::new(10);
pub static BACKFILL_SLEEP_MS: GucSetting<i32> = GucSetting::<i32>::new(0);
/// The longest pause between two batches of a backfill (the setting and the sleep_ms option): a
/// backfill that sleeps for hours would hold its worker, which other jobs wait for, all along.
pub const BACKFILL_SLEEP_MAX_MS: i32 = 60_000;
pub static BACKFILL_NICE: GucSetting<i32> = GucSetting::<i32>::new(19);
pub static BACKFILL_PACE_BY_LOAD: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static COMPILED_SYNC_TRIGGER: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static BACKFILL_MAX_REPLICA_LAG_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
pub static BACKFILL_JOB: GucSetting<Option<std::ffi::CString>> = GucSetting::<Option<std::ffi::CString>>::new(None);
pub static DATABASE_NAMES: GucSetting<Option<std::ffi::CString>> = GucSetting::<Option<std::ffi::CString>>::new(None);

pub fn register() {
    GucRegistry::define_int_guc(
        c"migrate.lock_timeout",
        c"lock_timeout for the first try of each migration statement.",
        c"Each retry waits 50% longer, up to four times this value.",
        &LOCK_TIMEOUT_MS,
        1,
        60_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"migrate.lock_retries",
        c"How many times a statement whose lock was not granted is retried.",
        c"0 means a single try. The error after the last try names the blocking sessions.",
        &LOCK_RETRIES,
        0,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"migrate.retry_backoff",
        c"Pause before the first retry of a statement whose lock was not granted.",
        c"The pause doubles with every retry, capped at 2 s, with up to 25% random jitter.",
        &RETRY_BACKOFF_MS,
        0,
        60_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"migrate.statement_timeout",
        c"Maximum run time of each migration statement (0 disables).",
        c"Applies to each statement of an up or down script, on top of the session's statement_timeout.",
        &STATEMENT_TIMEOUT_MS,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"migrate.max_script_size",
        c"Largest up or down script migrate.apply() accepts.",
        c"Migrations are DDL; bulk data belongs in COPY or a backfill job.",
        &MAX_SCRIPT_KB,
        1,
        1024 * 1024,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"migrate.max_workers",
        c"Most pg_migrate job workers running at once in the cluster.",
        c"More jobs wait in the queue. Each worker also takes a max_worker_processes slot.",
        &MAX_WORKERS,
        1,
        1024,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"migrate.max_workers_per_role",
        c"Most pg_migrate job workers of one role running at once in the cluster.",
        c"A role's further jobs wait in the queue, so that one role's slow jobs cannot take every worker from the others.",
        &MAX_WORKERS_PER_ROLE,
        1,
        1024,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"migrate.backfill_batch_time",
        c"The duration backfill batches aim at; batch sizes adapt to it.",
        c"Each batch holds its row locks this long at most (about). Used for new backfills without a batch_size option.",
        &BACKFILL_BATCH_TIME_MS,
        10,
        60_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"migrate.backfill_sleep",
        c"Pause between two batches of a backfill worker.",
        c"0 (the default) runs batches back to back: the worker runs at migrate.backfill_nice, on the CPU time the application leaves.",
        &BACKFILL_SLEEP_MS,
        0,
        BACKFILL_SLEEP_MAX_MS,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"migrate.backfill_nice",
        c"CPU priority (nice value) of backfill workers: 0 is the server's own, 19 the lowest.",
        c"A backfill worker then runs on the CPU time the application's sessions leave over. Read when a worker starts.",
        &BACKFILL_NICE,
        0,
        19,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"migrate.backfill_pace_by_load",
        c"Whether backfill workers pace themselves by the machine's load.",
        c"On: longer batches while nobody else works, and a duty cycle while the rest of the machine leaves less than one CPU unused (Linux). Off: batches of migrate.backfill_batch_time back to back, whatever else runs. Read when a worker starts.",
        &BACKFILL_PACE_BY_LOAD,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"migrate.compiled_sync_trigger",
        c"Whether expand_column's sync trigger is the compiled migrate.sync_row() (else generated PL/pgSQL).",
        c"On: up, down and the default are analysed once and run as analysed, with no per-row interpreter or search_path switch. Expressions with subqueries or set-returning functions get PL/pgSQL either way. Read when a change is made.",
        &COMPILED_SYNC_TRIGGER,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"migrate.backfill_max_replica_lag",
        c"Backfill batches wait while a replica's replay lag is above this (0 disables).",
        c"Read from pg_stat_replication.replay_lag.",
        &BACKFILL_MAX_REPLICA_LAG_MS,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_string_guc(
        c"migrate.backfill_job",
        c"Set by pg_migrate while a backfill batch writes: the job's id.",
        c"Sync triggers read it to tell a backfill's writes from the application's. Only pg_migrate can set it.",
        &BACKFILL_JOB,
        // Internal: a session that could set it would silence a change's sync trigger and lose
        // its writes at contract. pg_migrate sets it in `backfill::marker`.
        GucContext::Internal,
        GucFlags::NO_SHOW_ALL,
    );
}

/// Settings of the optional launcher (pg_migrate in shared_preload_libraries).
pub fn register_launcher_settings() {
    GucRegistry::define_string_guc(
        c"migrate.database_name",
        c"Databases whose pg_migrate jobs the launcher resumes (comma-separated).",
        c"Only read when pg_migrate is in shared_preload_libraries. Like pg_cron's cron.database_name.",
        &DATABASE_NAMES,
        GucContext::Postmaster,
        GucFlags::default(),
    );
}

pub fn database_names() -> Vec<String> {
    DATABASE_NAMES
        .get()
        .map(|c| c.to_string_lossy().split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

pub fn max_workers() -> i32 {
    MAX_WORKERS.get()
}
pub fn max_workers_per_role() -> i32 {
    MAX_WORKERS_PER_ROLE.get()
}

pub fn lock_timeout_ms() -> i32 {
    LOCK_TIMEOUT_MS.get()
}
pub fn lock_retries() -> i32 {
    LOCK_RETRIES.get()
}
pub fn retry_backoff_ms() -> i32 {
    RETRY_BACKOFF_MS.get()
}
pub fn statement_timeout_ms() -> i32 {
    STATEMENT_TIMEOUT_MS.get()
}
pub fn max_script_bytes() -> usize {
    MAX_SCRIPT_KB.get() as usize * 1024
}

pub fn backfill_batch_time_ms() -> i32 {
    BACKFILL_BATCH_TIME_MS.get()
}
pub fn backfill_sleep_ms() -> i32 {
    BACKFILL_SLEEP_MS.get()
}
pub fn backfill_pace_by_load() -> bool {
    BACKFILL_PACE_BY_LOAD.get()
}

pub fn compiled_sync_trigger() -> bool {
    COMPILED_SYNC_TRIGGER.get()
}

pub fn backfill_nice() -> i32 {
    BACKFILL_NICE.get()
}
pub fn backfill_max_replica_lag_ms() -> i32 {
    BACKFILL_MAX_REPLICA_LAG_MS.get()
}
