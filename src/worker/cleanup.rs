//! What a job leaves behind when a statement fails or a worker dies, and how it is cleaned up:
//! a failed or interrupted CREATE INDEX CONCURRENTLY (or REINDEX CONCURRENTLY) leaves an INVALID
//! index that still slows every write; it is dropped concurrently. On resume, a step that had
//! finished before the worker died is recognised and skipped.
//!
//! The step's names (`t.relation`, `t.index`) are the user's, resolved with the job's
//! search_path: the worker calls these with that path set (`job::with_job_search_path`), so every
//! function, aggregate and type in the queries here is schema-qualified.

use super::executor::{transaction, try_top_level};
use crate::catalog::jobs::Step;
use pgrx::prelude::*;

/// The table whose indexes a step builds, if it builds any.
fn target_table(step: &Step) -> Option<pg_sys::Oid> {
    let t = step.top_level.as_ref()?;
    if t.kind != "create_index" && t.kind != "reindex" {
        return None;
    }
    let relation = t.relation.as_deref()?;
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT CASE WHEN c.relkind IN ('i', 'I') THEN (SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid = c.oid)
                     ELSE c.oid END
           FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)",
        &[relation.into()],
    )
    .ok()
    .flatten()
}

/// INVALID indexes on the step's table now (call in a transaction).
pub fn invalid_indexes(step: &Step) -> Vec<pg_sys::Oid> {
    let Some(table) = target_table(step) else {
        return vec![];
    };
    Spi::get_one_with_args::<Vec<pg_sys::Oid>>(
        "SELECT coalesce(pg_catalog.array_agg(indexrelid), '{}'::pg_catalog.oid[]) FROM pg_catalog.pg_index WHERE indrelid = $1 AND NOT indisvalid",
        &[table.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Drops INVALID indexes on the step's table that were not there before it ran.
pub fn drop_new_invalid_indexes(step: &Step, before: &[pg_sys::Oid]) {
    let now = transaction(|| invalid_indexes(step));
    for index in now.iter().filter(|i| !before.contains(i)) {
        drop_index_concurrently(*index);
    }
}

fn drop_index_concurrently(index: pg_sys::Oid) {
    let name = transaction(|| {
        Spi::get_one_with_args::<String>("SELECT $1::pg_catalog.regclass::pg_catalog.text", &[index.into()]).ok().flatten()
    });
    if let Some(name) = name {
        match try_top_level(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"), 0, 0) {
            Ok(()) => pgrx::log!("pg_migrate: dropped INVALID index {name} left by a failed build"),
            Err(e) => pgrx::warning!("pg_migrate: could not drop INVALID index {name}: {}", e.error.message),
        }
    }
}

/// On resume: whether the step had already taken effect before its worker stopped. A named
/// index build that left an INVALID index is cleaned up so the step can run again.
pub fn already_done(step: &Step) -> bool {
    let Some(t) = &step.top_level else {
        return false;
    };
    match t.kind.as_str() {
        "create_index" => {
            let Some(index) = t.index.as_deref() else {
                return false;
            };
            let state = transaction(|| {
                Spi::get_two_with_args::<pg_sys::Oid, bool>(
                    "SELECT i.indexrelid, i.indisvalid FROM pg_catalog.pg_index i
                      WHERE i.indexrelid = pg_catalog.to_regclass($1)",
                    &[index.into()],
                )
                .ok()
            });
            match state {
                Some((Some(_), Some(true))) => true,
                Some((Some(oid), Some(false))) => {
                    drop_index_concurrently(oid);
                    false
                }
                _ => false,
            }
        }
        "drop_index" => {
            let Some(index) = t.relation.as_deref() else {
                return false;
            };
            transaction(|| {
                Spi::get_one_with_args::<bool>("SELECT pg_catalog.to_regclass($1) IS NULL", &[index.into()])
                    .ok()
                    .flatten()
                    .unwrap_or(false)
            })
        }
        _ => false,
    }
}
