//! How many job workers may run at once: migrate.max_workers in the whole cluster and
//! migrate.max_workers_per_role for each role, so that one role's slow jobs cannot take every
//! worker and stall everybody else's.
//!
//! Checked twice: before a worker is started (`Busy`, workers counted in pg_stat_activity as the
//! extension owner, who sees every backend; the job stays queued otherwise and starts when a
//! worker ends), and by the worker itself, which must take a seat (`Seats`) before it claims its
//! job. Only the seats are exact: sessions starting workers at the same moment all pass the
//! first check.

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

/// The seats a worker holds while it runs a job: one of the cluster's migrate.max_workers and
/// one of its owner's migrate.max_workers_per_role. A seat is a session-level lock in the lock
/// manager, taken without waiting, so that two workers deciding at the same moment can never
/// both get the last one (counting workers in pg_stat_activity could: a worker forked earlier
/// shows there only once it has connected). The locks are in the advisory lock space under a
/// key kind (`SEAT_KIND`) that SQL's advisory functions never use, so no role can take a seat or
/// hold one to stop the workers; the server frees them when the worker's process ends, however
/// it ends.
pub struct Seats {
    held: Vec<pg_sys::LOCKTAG>,
    /// How many of `held` this worker still holds: all of them, until `keep` finds one taken by
    /// another worker (then the ones before it). Drop releases only those: releasing a lock
    /// not held makes PostgreSQL log a WARNING.
    kept: std::cell::Cell<usize>,
}

/// The fourth key field of a seat's lock: SQL's advisory locks use 1 (one bigint key) and 2 (two
/// integer keys). pg_locks shows seats as advisory locks of database 0 with this objsubid, the
/// role's oid as classid (0 for the cluster's seats) and the seat's number as objid.
const SEAT_KIND: u16 = 0x504d;

fn seat(role: u32, number: u32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: 0,
        locktag_field2: role,
        locktag_field3: number,
        locktag_field4: SEAT_KIND,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

fn try_lock(tag: &pg_sys::LOCKTAG) -> bool {
    let got = unsafe { pg_sys::LockAcquire(tag, pg_sys::ExclusiveLock as i32, true, true) };
    match got {
        pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL => false,
        pg_sys::LockAcquireResult::LOCKACQUIRE_ALREADY_HELD | pg_sys::LockAcquireResult::LOCKACQUIRE_ALREADY_CLEAR => {
            // held already: give back the count this call added
            unlock(tag);
            true
        }
        _ => true,
    }
}

fn unlock(tag: &pg_sys::LOCKTAG) {
    unsafe { pg_sys::LockRelease(tag, pg_sys::ExclusiveLock as i32, true) };
}

/// The first free seat of `count` under `role`, locked.
fn take_one(role: u32, count: i32) -> Option<pg_sys::LOCKTAG> {
    (0..count.max(0) as u32).map(|n| seat(role, n)).find(try_lock)
}

impl Seats {
    /// Seats for a worker running a job of `owner`, or why there is none now.
    pub fn take(owner: pg_sys::Oid) -> std::result::Result<Seats, String> {
        let (max, per_role) = (gucs::max_workers(), gucs::max_workers_per_role());
        let Some(cluster) = take_one(0, max) else {
            return Err(format!("all migrate.max_workers ({max}) workers are busy"));
        };
        let Some(mine) = take_one(owner.to_u32(), per_role) else {
            unlock(&cluster);
            return Err(format!(
                "role \"{}\" already runs {per_role} workers, its migrate.max_workers_per_role ({per_role})",
                role_name(owner)
            ));
        };
        Ok(Seats { held: vec![cluster, mine], kept: std::cell::Cell::new(2) })
    }

    /// Takes the seats again if SQL the job ran gave them up (`pg_advisory_unlock_all()` and
    /// DISCARD ALL free every session-level advisory lock of the session, seats included).
    /// False when another worker has taken one meanwhile: this worker must stop and leave the
    /// job to be resumed.
    pub fn keep(&self) -> bool {
        match self.held.iter().position(|tag| !try_lock(tag)) {
            None => true,
            Some(lost) => {
                self.kept.set(lost);
                false
            }
        }
    }
}

impl Drop for Seats {
    fn drop(&mut self) {
        for tag in &self.held[..self.kept.get()] {
            unlock(tag);
        }
    }
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
