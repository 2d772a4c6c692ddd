//! When a backfill should slow down: replicas falling behind, application sessions queueing
//! behind the row locks of a batch, or (for speeding up) whether any other session works. Both are read as the extension owner: other roles' rows of
//! pg_stat_replication and pg_stat_activity are hidden from an ordinary job owner.

use crate::ddl::session::as_extension_owner;
use crate::error::notice;
use pgrx::prelude::*;

/// The largest replay lag of any replica, in milliseconds (0 without replicas).
pub fn worst_replica() -> Lag {
    as_extension_owner(|| {
        Spi::get_two::<f64, String>(
            "SELECT extract(epoch FROM r.replay_lag)::float8 * 1000,
                    coalesce(nullif(r.application_name, ''), r.client_addr::text, 'pid ' || r.pid)
               FROM pg_catalog.pg_stat_replication r
              WHERE r.replay_lag IS NOT NULL
              ORDER BY r.replay_lag DESC
              LIMIT 1",
        )
        .ok()
        .map(|(ms, replica)| Lag { ms: ms.unwrap_or(0.0), replica: replica.unwrap_or_default() })
        .unwrap_or_default()
    })
}

/// The replay lag of the replica furthest behind (pg_stat_replication), and which one it is
/// (its application_name, or its address); 0 ms when there is none.
#[derive(Debug, Default, Clone)]
pub struct Lag {
    pub ms: f64,
    pub replica: String,
}

/// How many sessions wait for a lock this backend holds (the batch's row locks, before commit).
pub fn sessions_waiting_on_me() -> i64 {
    as_extension_owner(|| {
        Spi::get_one::<i64>(
            // pg_blocking_pids is costly: ask only about sessions that wait for a lock at all.
            "SELECT count(*) FROM (SELECT pid FROM pg_catalog.pg_stat_activity
                                     WHERE wait_event_type = 'Lock' AND pid <> pg_catalog.pg_backend_pid()
                                    OFFSET 0) w
              WHERE pg_catalog.pg_backend_pid() = ANY (pg_catalog.pg_blocking_pids(w.pid))",
        )
        .ok()
        .flatten()
        .unwrap_or(0)
    })
}

/// Whether another client session works now or did in the last second: runs a statement that
/// is not just sleeping or waiting for its client, is inside a transaction, or changed state
/// lately. A session that sleeps in CALL migrate.wait() or pg_sleep() is not working.
pub fn other_sessions_working() -> bool {
    as_extension_owner(|| {
        Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity
                             WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()
                               AND (state LIKE 'idle in transaction%'
                                    OR (state = 'active' AND coalesce(wait_event_type, '') NOT IN ('Timeout', 'Extension', 'Client'))
                                    OR (state = 'idle' AND state_change > pg_catalog.clock_timestamp() - interval '1 s')))",
        )
        .ok()
        .flatten()
        .unwrap_or(true)
    })
}

/// Waits while a replica lags more than `max_ms` (0: never waits). `lag_now` reads the lag
/// (None: stop waiting, the job no longer runs); `nap` sleeps; `waiting` is told why it waits
/// (and None once it no longer does), for migrate.progress. All are the caller's: a worker
/// reads and writes in transactions of its own and keeps its heartbeat, a SQL call in its own.
pub fn wait_for_replicas(
    job: i64,
    max_ms: i32,
    mut lag_now: impl FnMut() -> Option<Lag>,
    mut nap: impl FnMut(i32),
    mut waiting: impl FnMut(Option<&str>),
) {
    if max_ms <= 0 {
        return;
    }
    let mut told = false;
    while let Some(lag) = lag_now() {
        if lag.ms <= f64::from(max_ms) {
            break;
        }
        let why = format!("replica \"{}\" is {:.0} ms behind (max_replica_lag_ms is {max_ms})", lag.replica, lag.ms);
        if !told {
            let line = format!("pg_migrate: backfill job {job} waits: {why}");
            notice(&line);
            pgrx::log!("{line}");
            told = true;
        }
        waiting(Some(&why));
        nap(250);
    }
    if told {
        waiting(None);
    }
}
