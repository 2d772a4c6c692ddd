//! Expand/contract changes: each of the seeds' multi-step recipes (rename or retype a column,
//! add a NOT NULL column, add an index or a constraint, drop a column, add an enum value) as one
//! call that does the safe part now, the slow part in a worker and the final swap later, and can
//! be undone until then. `api` has the SQL functions; `column`, `add`, `objects` make changes;
//! `contract` and `abort` end them (`views` carries dependent views and policies to the new
//! column); `trigger`, `rebuild` and `rewrite` generate SQL.

mod abort;
mod add;
pub mod api;
mod carry;
mod column;
mod contract;
mod facts;
mod objects;
mod rebuild;
pub(crate) mod rewrite;
mod spec;
mod sync_row;
mod trigger;
mod views;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

use crate::catalog::changes::{self, Change};
use crate::catalog::jobs::{Internal, Step};
use crate::ddl::script::{self, Direction};
use crate::error::{Failure, Result};
use facts::Table;
use pgrx::PgSqlErrorCode;

/// Runs `f` as the role that made `change`, restricted (see `as_role_restricted`): contract and
/// abort evaluate its expressions (`up` in contract's last check) and run DDL on its table, and a
/// superuser or member contracting someone else's change must not do that with its own rights.
/// The jobs they queue belong to that role too.
fn as_owner_of<R>(change: &Change, f: impl FnOnce() -> R) -> R {
    crate::ddl::session::as_role_restricted(pgrx::pg_sys::Oid::from(change.owner as u32), f)
}

/// The change, locked for this transaction, if the caller may act on it.
fn lock_change(id: i64) -> Result<Change> {
    changes::lock(id).ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("change {id} does not exist or belongs to another role"))
            .hint("See SELECT * FROM migrate.changes for the open changes you can see.")
    })
}

/// One column change per table at a time: two syncs or backfills on one table would step on
/// each other's rows, and a contract could drop what the other one reads.
fn refuse_second_change(table: &Table) -> Result<()> {
    match changes::open_column_change(table.oid) {
        Some((id, kind, column)) => Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!("table {} already has an open change: change {id} ({kind} of column \"{column}\")", table.name),
        )
        .detail("One column change per table at a time.")
        .hint(format!("Nothing was changed. Finish it first: SELECT migrate.contract({id}); or undo it: SELECT migrate.abort({id})."))),
        None => Ok(()),
    }
}

/// Queues `statements` (pg_migrate's own) as one background job; they run after the current
/// transaction commits, each as a top-level statement, with the job's retries.
fn submit_steps(label: &str, statements: &[String]) -> Result<i64> {
    let text: String = statements.iter().map(|s| format!("{s};\n")).collect();
    let script = script::parse_labeled(Direction::Up, label, &text)?;
    let steps: Vec<Step> = script.statements.iter().map(|s| Step::of(s, script.statements.len(), None)).collect();
    crate::worker::submit(&steps)
}

/// One step of a job pg_migrate queues: a statement, or work the worker does itself.
#[derive(Debug, Clone)]
pub enum Work {
    Sql(String),
    /// What, and a line saying it for migrate.jobs.
    Internal(Internal, String),
}

/// `submit_steps` for work that has internal steps too.
fn submit_work(label: &str, work: &[Work]) -> Result<i64> {
    let mut steps = Vec::new();
    for w in work {
        match w {
            Work::Sql(sql) => {
                let script = script::parse_labeled(Direction::Up, label, &format!("{sql};\n"))?;
                steps.extend(script.statements.iter().map(|s| Step::of(s, 1, None)));
            }
            Work::Internal(what, said) => steps.push(Step::internal(what.clone(), said.clone())),
        }
    }
    let total = steps.len();
    for (n, s) in steps.iter_mut().enumerate() {
        s.number = n + 1;
        s.total = total;
    }
    crate::worker::submit(&steps)
}

/// The job steps that build partitioned index `index` (quoted, qualified) without blocking
/// writes: `create_only` (its CREATE INDEX IF NOT EXISTS … ON ONLY), then one concurrent build
/// and ATTACH per partition, listed when the job gets there (`worker::partitions`).
fn partitioned_build(create_only: String, index: &str) -> Vec<Work> {
    vec![
        Work::Sql(create_only),
        Work::Internal(
            Internal::IndexPartitions { index: index.to_string(), check: Some(0) },
            format!("-- pg_migrate: build {index} on each partition concurrently and attach it"),
        ),
    ]
}

/// The job step that drops partitioned index `index` (quoted, qualified).
fn partitioned_drop(index: &str) -> Work {
    Work::Internal(
        Internal::DropPartitionedIndex { index: index.to_string() },
        format!("DROP INDEX IF EXISTS {index} -- partitioned: no CONCURRENTLY; each try limited to migrate.lock_timeout"),
    )
}
