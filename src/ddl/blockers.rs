//! Who holds the lock a migration statement waited for: other backends with a granted lock on
//! the same lock tag in a mode that conflicts with the one requested (Postgres's conflict table).

use super::watch::AwaitedLock;
use pgrx::prelude::*;

/// Postgres's lock mode names as `pg_locks.mode` shows them, index = LOCKMODE.
pub const MODES: [&str; 9] = [
    "NoLock",
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

/// Modes that conflict with `mode` (LockConflicts in src/backend/storage/lmgr/lock.c).
fn conflicting(mode: i32) -> Vec<&'static str> {
    let bits: &[usize] = match mode {
        1 => &[8],
        2 => &[7, 8],
        3 => &[5, 6, 7, 8],
        4 => &[4, 5, 6, 7, 8],
        5 => &[3, 4, 6, 7, 8],
        6 => &[3, 4, 5, 6, 7, 8],
        7 => &[2, 3, 4, 5, 6, 7, 8],
        _ => &[1, 2, 3, 4, 5, 6, 7, 8],
    };
    bits.iter().map(|&b| MODES[b]).collect()
}

pub fn mode_name(mode: i32) -> &'static str {
    MODES.get(mode as usize).copied().filter(|_| mode > 0).unwrap_or("lock")
}

/// A readable description of the awaited lock and the sessions holding it, e.g.
/// `AccessExclusiveLock on relation users, held by pid 4242 (role app, idle in
/// transaction, transaction open 12 s, holds AccessShareLock): SELECT * FROM users`.
pub fn describe(lock: &AwaitedLock) -> String {
    // LOCKTAG fields per type (src/include/storage/lock.h), matched against pg_locks columns.
    let (what, condition) = match lock.locktype {
        0 => (
            format!("relation {}", regclass_name(lock.field2)),
            format!("l.locktype = 'relation' AND l.database = {} AND l.relation = {}", lock.field1, lock.field2),
        ),
        4 => (
            format!("a row of relation {}", regclass_name(lock.field2)),
            format!(
                "l.locktype = 'tuple' AND l.database = {} AND l.relation = {} AND l.page = {} AND l.tuple = {}",
                lock.field1, lock.field2, lock.field3, lock.field4
            ),
        ),
        5 => (
            format!("transaction {}", lock.field1),
            format!("l.locktype = 'transactionid' AND l.transactionid::text = '{}'", lock.field1),
        ),
        6 => (
            format!("virtual transaction {}/{}", lock.field1, lock.field2),
            format!("l.locktype = 'virtualxid' AND l.virtualxid = '{}/{}'", lock.field1, lock.field2),
        ),
        8 => (
            format!("object {} of class {}", lock.field3, lock.field2),
            format!(
                "l.locktype = 'object' AND l.database = {} AND l.classid = {} AND l.objid = {} AND l.objsubid = {}",
                lock.field1, lock.field2, lock.field3, lock.field4
            ),
        ),
        _ => (format!("lock of type {}", lock.locktype), "false".to_string()),
    };
    let modes = conflicting(lock.mode)
        .iter()
        .map(|m| format!("'{m}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let query = format!(
        "SELECT string_agg(format('pid %s (role %s, %s, transaction open %s s, holds %s): %s',
                    l.pid, coalesce(a.usename::text, '?'), coalesce(a.state, '?'),
                    coalesce(round(extract(epoch FROM clock_timestamp() - a.xact_start))::text, '?'),
                    l.mode, coalesce(left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200), '?')),
                    '; ' ORDER BY l.pid)
           FROM pg_catalog.pg_locks l
           LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
          WHERE l.granted AND l.pid <> pg_catalog.pg_backend_pid()
            AND l.mode IN ({modes}) AND {condition}"
    );
    // Pinned: this runs on the search_path the migration set, and format() or string_agg()
    // from a schema on it would run with the migrating role's rights.
    let holders = super::session::with_pinned_search_path(|| Spi::get_one::<String>(&query).ok().flatten());
    match holders {
        Some(h) => format!("{} on {what}, held by {h}", mode_name(lock.mode)),
        None => format!("{} on {what} (its holder has released it since)", mode_name(lock.mode)),
    }
}

fn regclass_name(oid: u32) -> String {
    super::session::with_pinned_search_path(|| Spi::get_one::<String>(&format!("SELECT {oid}::pg_catalog.regclass::pg_catalog.text")).ok().flatten())
        .unwrap_or_else(|| format!("with OID {oid}"))
}
