//! Timers that run while one migration statement executes:
//! - a lock-wait sampler: every few milliseconds it copies the lock this backend is waiting for
//!   (PGPROC.waitLock) so that, after a lock timeout, pg_migrate can name who held it. Postgres
//!   forgets the awaited lock before it raises the lock_timeout error, and a backend cannot run a
//!   query while it waits, so sampling from a timer is the only way to know.
//! - `migrate.statement_timeout`: the server's own statement_timeout is armed once per client
//!   statement, so a per-migration-statement limit needs its own timer; it cancels the statement
//!   like a query cancel and pg_migrate reports it as a timeout.

use pgrx::pg_sys;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

const SAMPLE_EVERY_MS: i32 = 10;

// utils/timeout.h is not part of pgrx's bindings. These are the server's exported functions.
type TimeoutId = std::ffi::c_int;
unsafe extern "C-unwind" {
    fn RegisterTimeout(id: TimeoutId, handler: Option<unsafe extern "C-unwind" fn()>) -> TimeoutId;
    fn enable_timeout_every(id: TimeoutId, fin_time: pg_sys::TimestampTz, delay_ms: std::ffi::c_int);
    fn enable_timeout_after(id: TimeoutId, delay_ms: std::ffi::c_int);
    fn disable_timeout(id: TimeoutId, keep_indicator: bool);
}
/// RegisterTimeout() hands out the first free user-defined slot for any id at or above
/// USER_TIMEOUT, whose value differs between major versions; 64 is above it in all of them.
const ANY_USER_TIMEOUT: TimeoutId = 64;

/// The lock this backend last waited for: (LOCKTAG fields, lock type, lock mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AwaitedLock {
    pub field1: u32,
    pub field2: u32,
    pub field3: u32,
    pub field4: u16,
    pub locktype: u8,
    pub mode: i32,
}

// Written by the signal handler, read after the statement: atomics, not locks.
static WAITED: AtomicBool = AtomicBool::new(false);
static F1: AtomicU32 = AtomicU32::new(0);
static F2: AtomicU32 = AtomicU32::new(0);
static F3: AtomicU32 = AtomicU32::new(0);
static F4: AtomicU32 = AtomicU32::new(0);
static TYPE_AND_MODE: AtomicI32 = AtomicI32::new(0);
static TIMED_OUT: AtomicBool = AtomicBool::new(false);

thread_local! {
    static TIMERS: Cell<Option<(TimeoutId, TimeoutId)>> = const { Cell::new(None) };
}

unsafe extern "C-unwind" fn sample_lock_wait() {
    unsafe {
        let proc_ = pg_sys::MyProc;
        if proc_.is_null() {
            return;
        }
        let lock = (*proc_).waitLock;
        if lock.is_null() {
            return;
        }
        let tag = (*lock).tag;
        F1.store(tag.locktag_field1, Ordering::Relaxed);
        F2.store(tag.locktag_field2, Ordering::Relaxed);
        F3.store(tag.locktag_field3, Ordering::Relaxed);
        F4.store(tag.locktag_field4 as u32, Ordering::Relaxed);
        TYPE_AND_MODE.store(((tag.locktag_type as i32) << 8) | (*proc_).waitLockMode, Ordering::Relaxed);
        WAITED.store(true, Ordering::Release);
    }
}

unsafe extern "C-unwind" fn statement_timed_out() {
    unsafe {
        TIMED_OUT.store(true, Ordering::Release);
        pg_sys::QueryCancelPending = 1;
        pg_sys::InterruptPending = 1;
        pg_sys::SetLatch(pg_sys::MyLatch);
    }
}

fn timers() -> (TimeoutId, TimeoutId) {
    TIMERS.with(|t| {
        if let Some(ids) = t.get() {
            return ids;
        }
        let ids = unsafe {
            (
                RegisterTimeout(ANY_USER_TIMEOUT, Some(sample_lock_wait)),
                RegisterTimeout(ANY_USER_TIMEOUT, Some(statement_timed_out)),
            )
        };
        t.set(Some(ids));
        ids
    })
}

/// Arms both timers for one statement; they are disarmed when the returned guard drops.
pub struct Watch {
    sampler: TimeoutId,
    deadline: TimeoutId,
}

impl Watch {
    pub fn start(statement_timeout_ms: i32) -> Watch {
        let (sampler, deadline) = timers();
        WAITED.store(false, Ordering::Release);
        TIMED_OUT.store(false, Ordering::Release);
        unsafe {
            let first = pg_sys::GetCurrentTimestamp() + i64::from(SAMPLE_EVERY_MS) * 1000;
            enable_timeout_every(sampler, first, SAMPLE_EVERY_MS);
            if statement_timeout_ms > 0 {
                enable_timeout_after(deadline, statement_timeout_ms);
            }
        }
        Watch { sampler, deadline }
    }

    /// Whether `migrate.statement_timeout` cancelled the statement.
    pub fn timed_out(&self) -> bool {
        TIMED_OUT.load(Ordering::Acquire)
    }

    /// The last lock the statement waited for, if it waited at all.
    pub fn awaited_lock(&self) -> Option<AwaitedLock> {
        if !WAITED.load(Ordering::Acquire) {
            return None;
        }
        let tm = TYPE_AND_MODE.load(Ordering::Relaxed);
        Some(AwaitedLock {
            field1: F1.load(Ordering::Relaxed),
            field2: F2.load(Ordering::Relaxed),
            field3: F3.load(Ordering::Relaxed),
            field4: F4.load(Ordering::Relaxed) as u16,
            locktype: (tm >> 8) as u8,
            mode: tm & 0xff,
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        unsafe {
            disable_timeout(self.sampler, false);
            disable_timeout(self.deadline, false);
        }
    }
}
