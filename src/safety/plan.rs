//! `migrate.plan(sql)`: a dry run that measures instead of guessing. Every statement runs, in
//! order, inside one subtransaction that is always rolled back; after each statement pg_migrate
//! reads its own backend's `pg_locks` (which relation locks the statement added) and compares
//! every user relation's relfilenode with the value before the statement (a changed relfilenode
//! means the table or index was rewritten). Statements that cannot run inside a transaction
//! block are reported with the locks Postgres documents for them, not executed.

use super::exec;
use super::facts::{self, lock_mode, lock_name};
use crate::ddl::script::{self, Parsed};
use crate::ddl::session::with_pinned_search_path;
use crate::ddl::subxact;
use crate::error::OrRaise;
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use std::collections::{BTreeMap, BTreeSet};

/// statement, relation, lock mode, rewritten, duration in ms, note.
type Row = (i32, Option<String>, Option<String>, Option<bool>, Option<f64>, String);

#[pg_extern(name = "plan")]
fn plan(
    sql: &str,
) -> TableIterator<
    'static,
    (
        name!(statement, i32),
        name!(relation, Option<String>),
        name!(lock_mode, Option<String>),
        name!(rewrites, Option<bool>),
        name!(duration_ms, Option<AnyNumeric>),
        name!(note, String),
    ),
> {
    let parsed = script::split("planned SQL", sql).or_raise();
    let rows = subxact::run_and_roll_back(|| plan_statements(&parsed)).unwrap_or_else(|caught| {
        // Only pg_migrate's own queries can fail here (user statements are caught one by one).
        pgrx::error!("migrate.plan() failed: {}", caught.message)
    });
    // Durations become numeric only after the rollback, in this function's memory.
    TableIterator::new(rows.into_iter().map(|(n, rel, mode, rewrites, ms, note)| {
        let ms = ms.and_then(|d| AnyNumeric::try_from((d * 1000.0).round() / 1000.0).ok());
        (n, rel, mode, rewrites, ms, note)
    }))
}

/// A user relation as the catalog shows it: name (schema-qualified) and relfilenode.
struct Relation {
    name: String,
    filenode: u32,
}

fn plan_statements(parsed: &[Parsed]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, p) in parsed.iter().enumerate() {
        let number = p.statement.number as i32;
        if let Some(reason) = not_executable(p) {
            rows.extend(documented(number, p, &reason));
            continue;
        }
        let before_relations = relations();
        let before_locks = locks();
        let outcome = exec::run(&p.statement);
        let after_relations = relations();
        let after_locks = locks();
        let duration = match outcome {
            Ok(ms) => ms,
            Err(caught) => {
                let later = parsed.len() - i - 1;
                let rest = if later > 0 { format!("; the {later} later statement(s) were not run") } else { String::new() };
                rows.push((number, None, None, None, None, format!("failed: {}{rest}", exec::describe_failure(&caught))));
                break;
            }
        };
        let statement_rows =
            measured(number, duration, changes(&before_relations, &after_relations, &before_locks, &after_locks));
        if statement_rows.is_empty() {
            rows.push((number, None, None, Some(false), Some(duration), "no new relation locks".to_string()));
        }
        rows.extend(statement_rows);
    }
    rows
}

/// Why a statement is reported instead of run, if it cannot run inside the dry run.
fn not_executable(p: &Parsed) -> Option<String> {
    unsafe {
        if let Some(what) = crate::ddl::classify::non_transactional(p.node) {
            return Some(format!("not executed: {what}"));
        }
        if pgrx::nodes::is_a(p.node, pg_sys::NodeTag::T_TransactionStmt) {
            return Some("not executed: transaction control (plan runs the whole script in one rolled-back subtransaction)".to_string());
        }
    }
    None
}

/// Rows for a statement that was not run: the relation locks Postgres documents for it.
fn documented(number: i32, p: &Parsed, reason: &str) -> Vec<Row> {
    let locks = unsafe { facts::locks(p.node) };
    if locks.is_empty() {
        return vec![(number, None, None, None, None, reason.to_string())];
    }
    locks
        .into_iter()
        .map(|(name, mode)| {
            (number, Some(name.to_string()), Some(lock_name(mode).to_string()), None, None, format!("{reason}; documented lock, not measured"))
        })
        .collect()
}

/// What a statement did to one user relation, from the snapshots before and after it.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    Kept { rewritten: bool },
    Created,
    Dropped,
    /// Dropped and created again under the same name (an index whose column changed type).
    Rebuilt,
}

struct Change<'a> {
    name: &'a str,
    /// The strongest lock mode the statement added on the relation.
    mode: Option<i32>,
    fate: Fate,
}

fn changes<'a>(
    before: &'a BTreeMap<u32, Relation>,
    after: &'a BTreeMap<u32, Relation>,
    before_locks: &BTreeSet<(u32, String)>,
    after_locks: &BTreeSet<(u32, String)>,
) -> Vec<Change<'a>> {
    let mut strongest: BTreeMap<u32, i32> = BTreeMap::new();
    // Only the eight table lock modes count (not, say, SIReadLock under SERIALIZABLE).
    for (oid, mode) in after_locks.difference(before_locks).filter(|(_, m)| lock_mode(m) > 0) {
        let entry = strongest.entry(*oid).or_insert(0);
        *entry = (*entry).max(lock_mode(mode));
    }
    let gone: BTreeSet<&str> =
        before.iter().filter(|(oid, _)| !after.contains_key(oid)).map(|(_, r)| r.name.as_str()).collect();
    let came: BTreeSet<&str> =
        after.iter().filter(|(oid, _)| !before.contains_key(oid)).map(|(_, r)| r.name.as_str()).collect();

    let mut out = Vec::new();
    for (oid, b) in before {
        let fate = match after.get(oid) {
            Some(a) => Fate::Kept { rewritten: a.filenode != b.filenode },
            None if came.contains(b.name.as_str()) => continue, // reported as rebuilt below
            None => Fate::Dropped,
        };
        let mode = strongest.get(oid).copied();
        if mode.is_some() || fate != (Fate::Kept { rewritten: false }) {
            out.push(Change { name: &b.name, mode, fate });
        }
    }
    for (oid, a) in after.iter().filter(|(oid, _)| !before.contains_key(oid)) {
        let fate = if gone.contains(a.name.as_str()) { Fate::Rebuilt } else { Fate::Created };
        out.push(Change { name: &a.name, mode: strongest.get(oid).copied(), fate });
    }
    // Locks on relations outside the user's schemas (system catalogs) are left out: they are
    // in neither snapshot.
    out.sort_by(|x, y| x.name.cmp(y.name));
    out
}

/// Rows for a statement that ran: per relation, the strongest lock it added and whether it was
/// rewritten.
fn measured(number: i32, duration: f64, changes: Vec<Change>) -> Vec<Row> {
    changes
        .into_iter()
        .map(|c| {
            let mut notes = Vec::new();
            match (&c.fate, c.mode) {
                (Fate::Created, _) => notes.push("created by this statement: invisible to other sessions until commit"),
                (_, Some(mode)) => notes.push(effect(mode)),
                _ => {}
            }
            match c.fate {
                Fate::Kept { rewritten: true } => notes.push("rewritten: relfilenode changed, every row was copied"),
                Fate::Dropped => notes.push("dropped by this statement"),
                Fate::Rebuilt => notes.push("rebuilt: dropped and created again under the same name"),
                _ => {}
            }
            let rewrites = matches!(c.fate, Fate::Kept { rewritten: true } | Fate::Rebuilt);
            (number, Some(c.name.to_string()), c.mode.map(|m| lock_name(m).to_string()), Some(rewrites), Some(duration), notes.join("; "))
        })
        .collect()
}

/// What holding a lock of this mode until commit means for application traffic.
fn effect(mode: i32) -> &'static str {
    match mode {
        8 => "blocks all reads and writes until the migration commits",
        6 | 7 => "blocks writes until the migration commits; reads continue",
        5 => "blocks writes until the migration commits; reads continue",
        4 => "blocks other DDL, VACUUM and ANALYZE; reads and writes continue",
        _ => "ordinary read/write lock: conflicts only with DDL",
    }
}

/// Every relation (tables, indexes, materialized views) in user schemas, with its relfilenode.
fn relations() -> BTreeMap<u32, Relation> {
    with_pinned_search_path(|| {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT c.oid::int8, c.oid::regclass::text, c.relfilenode::int8
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'p', 'i', 'I', 'm', 'S', 't', 'f', 'v')
                    AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
                None,
                &[],
            )?;
            let mut out = BTreeMap::new();
            for row in rows {
                let oid = row.get::<i64>(1)?.unwrap_or_default() as u32;
                out.insert(
                    oid,
                    Relation {
                        name: row.get::<String>(2)?.unwrap_or_default(),
                        filenode: row.get::<i64>(3)?.unwrap_or_default() as u32,
                    },
                );
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
        .expect("read pg_class")
    })
}

/// The relation locks this backend holds: (relation oid, mode).
fn locks() -> BTreeSet<(u32, String)> {
    with_pinned_search_path(|| {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT relation::int8, mode FROM pg_locks
                  WHERE locktype = 'relation' AND pid = pg_backend_pid() AND granted
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                None,
                &[],
            )?;
            let mut out = BTreeSet::new();
            for row in rows {
                out.insert((row.get::<i64>(1)?.unwrap_or_default() as u32, row.get::<String>(2)?.unwrap_or_default()));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
        .expect("read pg_locks")
    })
}
