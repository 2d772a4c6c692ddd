//! Which backfill is writing in this backend right now. A change's sync trigger must leave the
//! writes of its own backfill alone (the backfill sets the new column from the old one; syncing
//! back could rewrite the old column from a lossy new value), and only those: a session that
//! could pass itself off as the backfill would silence the trigger, and its update of the old
//! column would be lost at contract.
//!
//! So the mark lives in this library's memory, where no SQL can write it, and the trigger reads
//! it through `migrate.backfill_writing()`. Calling that function also loads the library, so the
//! mark is trustworthy even in a backend that never called pg_migrate before. The setting
//! `migrate.backfill_job` (PGC_INTERNAL) is kept in step for the triggers of changes opened by
//! pg_migrate 0.2.0 and earlier, which read it.

use crate::ddl::session::GucScope;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicI64, Ordering};

/// 0: no backfill is writing.
static WRITING: AtomicI64 = AtomicI64::new(0);

/// The backfill job whose batch is writing in this backend, or NULL.
#[pg_extern(stable, parallel_restricted)]
fn backfill_writing() -> Option<i64> {
    Some(WRITING.load(Ordering::Relaxed)).filter(|&j| j != 0)
}

/// The backfill job whose batch is writing in this backend, or 0 (for the compiled sync trigger).
pub fn writing() -> i64 {
    WRITING.load(Ordering::Relaxed)
}

/// Marks the writes made until the returned guard drops (also on error) as `job`'s.
pub fn mark(scope: &GucScope, job: i64) -> Marked {
    scope.set_internal("migrate.backfill_job", &job.to_string());
    Marked { previous: WRITING.swap(job, Ordering::Relaxed) }
}

pub struct Marked {
    previous: i64,
}

impl Drop for Marked {
    fn drop(&mut self) {
        WRITING.store(self.previous, Ordering::Relaxed);
    }
}
