//! `abort`: undoes an open change. It is also the generated down SQL of a migration whose up SQL
//! made changes, so every kind has an inverse here.

use super::contract::{refuse_ended, spec_of};
use super::facts::Table;
use super::rewrite::quote;
use super::trigger;
use crate::catalog::changes::{self, Change};
use crate::ddl::retry::run_generated;
use crate::ddl::session::with_pinned_search_path;
use crate::error::{notice, Result};
use pgrx::prelude::*;

pub fn abort(id: i64) -> Result<String> {
    let change = super::lock_change(id)?;
    super::as_owner_of(&change.clone(), || abort_as_owner(change))
}

fn abort_as_owner(change: Change) -> Result<String> {
    let id = change.change;
    refuse_ended_unless_one_shot(&change)?;
    for job in [change.backfill_job, change.job].into_iter().flatten() {
        if matches!(state_of(&change, job).as_deref(), Some("queued" | "running" | "paused")) {
            crate::worker::api::cancel_job(Some(job))?;
        }
    }
    let table = with_pinned_search_path(|| Table::of(change.relation_oid()));
    let what = format!("abort of change {id}");
    let column = |c: &Option<String>| quote(c.as_deref().unwrap_or_default());
    let mut job = None;
    match change.kind.as_str() {
        "expand_column" => {
            let table = table?;
            let spec = spec_of(&change);
            run_generated(&what, &trigger::drop_sql(&table, id))?;
            let mut alter = format!("ALTER TABLE {} DROP COLUMN IF EXISTS {}", table.name, column(&change.new_column));
            if let Some(d) = &spec.old_default {
                alter.push_str(&format!(", ALTER COLUMN {} SET DEFAULT {d}", column(&change.column_name)));
            }
            run_generated(&what, &alter)?;
        }
        "add_column" => {
            let table = table?;
            run_generated(&what, &format!("ALTER TABLE {} DROP COLUMN IF EXISTS {}", table.name, column(&change.column_name)))?;
        }
        "add_check" | "add_foreign_key" => {
            let table = table?;
            run_generated(&what, &format!("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}", table.name, column(&change.object_name)))?;
        }
        "create_index" => {
            let table = table?;
            let index = format!("{}.{}", quote(&table.schema), column(&change.object_name));
            job = Some(if table.partitioned {
                // Dropping the partitioned index drops every partition's index attached to it,
                // also the ones the job adopted (they were there before): those come back under
                // their names. Of the rest, only what the job recorded as built is dropped.
                let steps = change.job.map(crate::catalog::jobs::steps).unwrap_or_default();
                let (built, adopted) = crate::worker::partitions::built_and_adopted(&steps);
                let kept: Vec<String> = adopted.iter().map(|a| format!("{}.{}", quote(&a.schema), quote(&a.name))).collect();
                if !kept.is_empty() {
                    notice(format!("pg_migrate: the partitions' own indexes {} that the job attached are built again under their names before {index} is dropped", kept.join(", ")));
                }
                let undo = crate::catalog::jobs::Internal::UndoPartitionedIndex { index: index.clone(), job: change.job, built, adopted };
                let said = format!("DROP INDEX IF EXISTS {index} -- partitioned: each try limited to migrate.lock_timeout; the partitions' own indexes it had adopted are kept");
                super::submit_work(&what, &[super::Work::Internal(undo, said)])?
            } else {
                super::submit_steps(&what, &[format!("DROP INDEX CONCURRENTLY IF EXISTS {index}")])?
            });
        }
        "drop_index" => {
            // The index is gone only if its job got to drop it; build it again if so.
            let definition = change.spec.get("definition").and_then(|d| d.as_str()).unwrap_or_default();
            let exists = Spi::get_one_with_args::<bool>(
                "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
                &[change.spec.get("qualified").and_then(|d| d.as_str()).unwrap_or_default().into()],
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            let rebuild = change.spec.get("rebuild").and_then(|d| d.as_str());
            if let (false, Some(rebuild)) = (exists, rebuild) {
                let qualified = change.spec.get("qualified").and_then(|d| d.as_str()).unwrap_or_default();
                job = Some(super::submit_work(&what, &super::partitioned_build(rebuild.to_string(), qualified))?);
            } else if !exists {
                let concurrently = definition.replacen(" INDEX ", " INDEX CONCURRENTLY IF NOT EXISTS ", 1);
                job = Some(super::submit_steps(&what, &[concurrently])?);
            }
        }
        "drop_column" => {
            let table = table?;
            run_generated(
                &what,
                &format!("ALTER TABLE {} RENAME COLUMN {} TO {}", table.name, column(&change.new_column), column(&change.column_name)),
            )?;
            if spec_of(&change).not_null {
                notice(format!(
                    "pg_migrate: column {} of {} is back, without NOT NULL (rows written meanwhile may have NULLs); restore it with SELECT migrate.add_check(...) or a migration",
                    column(&change.column_name),
                    table.name
                ));
            }
        }
        "add_enum_value" => notice(format!(
            "pg_migrate: enum value {} of {} stays: PostgreSQL cannot remove enum values; stop using it",
            change.object_name.as_deref().unwrap_or_default(),
            change.table_name
        )),
        _ => {}
    }
    changes::set_phase(id, "aborted", job);
    notice(format!("pg_migrate: change {id} ({} on {}) is aborted", change.kind, change.table_name));
    if let Some(job) = job {
        notice(format!("pg_migrate: job {job} undoes the index after this transaction commits; follow it with CALL migrate.wait({job})"));
    }
    Ok("aborted".to_string())
}

/// One-shot changes (an index, a constraint) are "done" when their job is; abort still undoes them.
fn refuse_ended_unless_one_shot(change: &Change) -> Result<()> {
    let one_shot = !matches!(change.kind.as_str(), "expand_column" | "add_column" | "drop_column");
    if one_shot && change.phase == "done" {
        return Ok(());
    }
    refuse_ended(change, "abort")
}

fn state_of(change: &Change, job: i64) -> Option<String> {
    if Some(job) == change.backfill_job { change.backfill_state.clone() } else { change.job_state.clone() }
}
