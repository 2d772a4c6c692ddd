//! How many job workers may run at once: migrate.max_workers in the whole cluster and
//! migrate.max_workers_per_role for each role, so that one role's slow jobs cannot take every
//! worker and stall everybody else's. Workers are counted in pg_stat_activity (pg_migrate's
//! worker backend type; a worker's user is its job's owner), as the extension owner, who sees
//! every backend.
//!
//! Checked twice: before a worker is started (`Busy`; the job stays queued otherwise and starts
//! when a worker ends) and by the worker itself before it claims its job (`turn`). The second
//! check counts only the workers started before this one, so that sessions starting workers at
//! the same moment cannot together go past a limit: a worker's rank only falls as older workers
//! end, and each one runs only while it is within the limits.

use crate::catalog::workers::{fresh_activity, WORKER_TYPE};
use crate::ddl::session::as_extension_owner;
use crate::gucs;
use pgrx::prelude::*;
use std::collections::HashMap;

/// The job workers running now, other than this backend (a worker that is about to end starts
/// the next queued job).
pub struct Busy {
    total: i64,
    per_role: HashMap<u32, i64>,
}

impl Busy {
    pub fn now() -> Busy {
        let rows = as_extension_owner(|| {
            fresh_activity();
            Spi::connect(|client| {
                let mut rows = Vec::new();
                for row in client.select(
                    "SELECT usesysid, count(*) FROM pg_catalog.pg_stat_get_activity(NULL) a
                      WHERE a.backend_type = $1 AND a.pid <> pg_catalog.pg_backend_pid()
                      GROUP BY usesysid",
                    None,
                    &[WORKER_TYPE.into()],
                )? {
                    rows.push((row.get::<pg_sys::Oid>(1)?, row.get::<i64>(2)?.unwrap_or(0)));
                }
                Ok::<_, pgrx::spi::SpiError>(rows)
            })
            .expect("count pg_migrate workers")
        });
        let mut busy = Busy { total: 0, per_role: HashMap::new() };
        for (role, n) in rows {
            busy.total += n;
            if let Some(role) = role {
                *busy.per_role.entry(role.to_u32()).or_default() += n;
            }
        }
        busy
    }

    /// No worker may start, whoever's job it is.
    pub fn full(&self) -> bool {
        self.total >= i64::from(gucs::max_workers())
    }

    /// Why a new worker for a job of `owner` must not start now, if it must not.
    pub fn refusal(&self, owner: pg_sys::Oid) -> Option<String> {
        let mine = self.per_role.get(&owner.to_u32()).copied().unwrap_or(0);
        over_limits(self.total, mine, owner)
    }

    /// Counts a worker just started for `owner` (it shows in pg_stat_activity only once it runs).
    pub fn add(&mut self, owner: pg_sys::Oid) {
        self.total += 1;
        *self.per_role.entry(owner.to_u32()).or_default() += 1;
    }
}

/// None when this worker, running a job of `owner`, may claim it now; otherwise why not. Counts
/// the workers started before this one.
pub fn turn(owner: pg_sys::Oid) -> Option<String> {
    let (older, older_mine) = as_extension_owner(|| {
        fresh_activity();
        Spi::get_two_with_args::<i64, i64>(
            "SELECT count(*), count(*) FILTER (WHERE a.usesysid = $2)
               FROM pg_catalog.pg_stat_get_activity(NULL) a,
                    pg_catalog.pg_stat_get_activity(pg_catalog.pg_backend_pid()) me
              WHERE a.backend_type = $1 AND (a.backend_start, a.pid) < (me.backend_start, me.pid)",
            &[WORKER_TYPE.into(), owner.into()],
        )
        .expect("count older pg_migrate workers")
    });
    over_limits(older.unwrap_or(0), older_mine.unwrap_or(0), owner)
}

fn over_limits(total: i64, mine: i64, owner: pg_sys::Oid) -> Option<String> {
    let (max, per_role) = (gucs::max_workers(), gucs::max_workers_per_role());
    if total >= i64::from(max) {
        return Some(format!("all migrate.max_workers ({max}) workers are busy"));
    }
    if mine >= i64::from(per_role) {
        return Some(format!(
            "role \"{}\" already runs {mine} workers, its migrate.max_workers_per_role ({per_role})",
            role_name(owner)
        ));
    }
    None
}

fn role_name(role: pg_sys::Oid) -> String {
    let name = unsafe { pg_sys::GetUserNameFromId(role, true) };
    if name.is_null() {
        return role.to_u32().to_string();
    }
    unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned()
}
