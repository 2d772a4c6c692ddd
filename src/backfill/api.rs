//! SQL functions of backfills: start one, run a batch by hand (pg_cron, a client loop), pause,
//! resume, verify. Cancelling is `migrate.cancel()`, as for every job.
//!
//! `backfill_start` has no SET search_path clause: it tries the assignments and the filter with
//! the caller's search_path and stores it for every batch; its own catalog queries run with a
//! pinned one. The other functions pin it: batches and verify set the job's own (`in_job_session`).

use super::batch::{self, in_job_session};
use super::spec;
use super::throttle;
use super::walk::{self, Key, Table};
use crate::catalog::backfills::{self, Backfill, Target, Walk};
use crate::catalog::jobs;
use crate::ddl::retry::sleep_ms;
use crate::ddl::session::{with_pinned_search_path, GucScope};
use crate::ddl::subxact;
use crate::error::{notice, Failure, OrRaise, Result};
use crate::gucs;
use pgrx::prelude::*;
use pgrx::{JsonB, PgRelation, PgSqlErrorCode};

/// Queues a backfill of `tbl`: `UPDATE tbl SET <assignments> WHERE <filter>` over every row that
/// exists now, in batches that each commit. A worker runs it after the current transaction
/// commits, unless `options` says `"manual": true`. Returns the job id.
#[pg_extern(name = "backfill_start")]
fn backfill_start(
    tbl: Option<PgRelation>,
    assignments: Option<&str>,
    filter: default!(Option<&str>, "NULL"),
    options: default!(Option<JsonB>, "'{}'"),
) -> i64 {
    start(tbl, assignments, filter, options).or_raise()
}

fn start(tbl: Option<PgRelation>, assignments: Option<&str>, filter: Option<&str>, options: Option<JsonB>) -> Result<i64> {
    let rel = tbl.ok_or_else(|| null_argument("tbl"))?;
    start_on(rel.oid(), rel.name(), assignments, filter, options.as_ref().map(|j| &j.0))
}

/// `migrate.backfill_start` on the table `oid` (named `rel_name` in messages), for pg_migrate's
/// own operations (expand_column, add_column) as well.
pub fn start_on(
    oid: pg_sys::Oid,
    rel_name: &str,
    assignments: Option<&str>,
    filter: Option<&str>,
    options: Option<&serde_json::Value>,
) -> Result<i64> {
    let assignments = assignments.filter(|a| !a.trim().is_empty()).ok_or_else(|| {
        null_argument("assignments").hint("Pass what follows SET in an UPDATE, for example 'status = ''active'''.")
    })?;
    let table = with_pinned_search_path(|| Table::find(oid)).filter(|t| matches!(t.kind.as_str(), "r" | "p")).ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE, format!("\"{rel_name}\" is not a table"))
            .hint("A backfill updates the rows of a table or a partitioned table.")
    })?;
    let targets = spec::targets(assignments)?;
    let filter = spec::filter(filter)?;
    let options = spec::options(options)?;
    let key = with_pinned_search_path(|| Key::of(oid));
    with_pinned_search_path(|| check_columns(oid, &table, &targets, key.as_ref()))?;
    try_on_table(&table, &targets, filter.as_deref())?;

    let (walk, upper_bound, rows_estimated, rows_per_page, start_xmax, start_xip) = with_pinned_search_path(|| {
        let (walk, upper_bound) = match &key {
            Some(k) => (Walk::Key, k.last(&table)),
            None => (Walk::Ctid, Some(vec![walk::page_count(oid).to_string()]).filter(|p| p[0] != "0")),
        };
        let (rows_estimated, rows_per_page) = walk::estimate(oid, &table);
        let (start_xmax, start_xip) = match walk {
            Walk::Ctid => {
                let (xmax, xip) = walk::start_snapshot();
                (Some(xmax), xip)
            }
            Walk::Key => (None, vec![]),
        };
        (walk, upper_bound, rows_estimated, rows_per_page, start_xmax, start_xip)
    });
    let job = crate::worker::queue_backfill(!options.manual)?;
    backfills::insert(&backfills::New {
        job,
        relation: oid,
        table_name: table.name.clone(),
        assignments: assignments.trim().to_string(),
        targets,
        filter,
        walk,
        key_columns: key.as_ref().map(|k| k.columns.clone()).unwrap_or_default(),
        key_types: key.as_ref().map(|k| k.types.clone()).unwrap_or_default(),
        upper_bound,
        manual: options.manual,
        pace: options.pace,
        rows_estimated,
        rows_per_page,
        start_xmax,
        start_xip,
    });
    let how = match &key {
        Some(k) => format!("walks it by primary key ({})", k.columns.join(", ")),
        None => "walks it by page ranges (it has no primary key)".to_string(),
    };
    if options.manual {
        notice(format!(
            "pg_migrate: backfill job {job} on {} {how}, ~{rows_estimated} rows; run its batches with SELECT migrate.backfill_batch({job}) (pg_cron or a loop) until it returns 0",
            table.name
        ));
    } else {
        let when = if crate::worker::start(job, unsafe { pg_sys::GetUserId() })? {
            "it starts when this transaction commits"
        } else {
            "it waits in the queue for a worker"
        };
        notice(format!(
            "pg_migrate: backfill job {job} on {} {how}, ~{rows_estimated} rows; {when}: follow it with CALL migrate.wait({job}) or SELECT * FROM migrate.progress",
            table.name
        ));
    }
    Ok(job)
}

/// Refuses assignments to columns that do not exist, cannot be updated, or are the key the
/// backfill walks by (changing it under the walk would skip or repeat rows).
fn check_columns(oid: pg_sys::Oid, table: &Table, targets: &[Target], key: Option<&Key>) -> Result<()> {
    for t in targets {
        let (exists, generated, identity) = Spi::get_three_with_args::<bool, String, String>(
            "SELECT true, attgenerated::text, attidentity::text FROM pg_catalog.pg_attribute
              WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[oid.into(), t.column.as_str().into()],
        )
        .unwrap_or((None, None, None));
        let column = format!("column \"{}\" of table {}", t.column, table.name);
        if exists != Some(true) {
            return Err(Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, format!("{column} does not exist"))
                .hint("Nothing was queued. Check the column names in the assignments (names are case-folded unless quoted)."));
        }
        if generated.as_deref() == Some("s") || identity.as_deref() == Some("a") {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_GENERATED_ALWAYS,
                format!("{column} is {}, a backfill cannot set it", if identity.as_deref() == Some("a") { "an identity column GENERATED ALWAYS" } else { "a generated column" }),
            )
            .hint("Nothing was queued. Backfill the columns it is computed from, or leave it out of the assignments."));
        }
        if key.is_some_and(|k| k.columns.contains(&t.column)) {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("{column} is part of the primary key, which the backfill walks the table by"),
            )
            .detail("Changing key values during the walk would skip rows or update them twice.")
            .hint("Nothing was queued. Change keys with an expand/contract change (a new column, then a swap), not a backfill."));
        }
    }
    Ok(())
}

/// Runs the backfill's UPDATE on no rows, as the caller: unknown columns, type mismatches, a
/// filter that is not boolean and missing privileges show now rather than in a worker later.
fn try_on_table(table: &Table, targets: &[Target], filter: Option<&str>) -> Result<()> {
    let sql = format!(
        "UPDATE {} SET {} WHERE false AND (\n{}\n)",
        table.target(),
        spec::set_list(targets),
        filter.unwrap_or("true")
    );
    subxact::run(|| {
        let guc = GucScope::new();
        guc.set("lock_timeout", &format!("{}ms", gucs::lock_timeout_ms()));
        if let Err(e) = Spi::run(&sql) {
            pgrx::error!("{e}");
        }
        drop(guc);
    })
    .map_err(|c| {
        let mut f = Failure::new(c.code, format!("the backfill does not work on table {}: {}", table.name, c.message));
        f.detail = Some(c.detail.map(|d| format!("{d}\n")).unwrap_or_default() + &format!("Tried: {}", crate::ddl::retry::fragment(&sql)));
        f.hint(c.hint.unwrap_or_else(|| {
            "Nothing was queued. The assignments and the filter run as you, with your search_path, inside pg_migrate's UPDATE of each batch.".into()
        }))
    })
}

/// Runs the next batch of a backfill now, in the caller's transaction, as the job's owner.
/// Returns how many rows it updated: 0 only once the job is done (or paused, cancelled, failed),
/// so `WHILE migrate.backfill_batch(job) > 0` and pg_cron both stop at the right time. Batches
/// of one job run one at a time, whoever calls them.
#[pg_extern(name = "backfill_batch")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_batch(job: Option<i64>, max_rows: default!(Option<i32>, "NULL")) -> i64 {
    run_batches(job, max_rows).or_raise()
}

fn run_batches(job: Option<i64>, max_rows: Option<i32>) -> Result<i64> {
    let b = visible_backfill(job)?;
    if max_rows.is_some_and(|m| m <= 0) {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "max_rows must be positive")
            .hint("Pass NULL for the job's own batch size."));
    }
    // In the caller's transaction: nothing it writes about waiting would be seen before its end.
    throttle::wait_for_replicas(b.job, b.pace.max_replica_lag_ms, || Some(throttle::worst_replica()), sleep_ms, |_| {});
    let mut updated = 0;
    loop {
        let outcome = batch::run(b.job, max_rows, 1)?;
        updated += outcome.updated;
        if let Some(state) = &outcome.idle {
            if state != "done" {
                notice(format!("pg_migrate: backfill job {} is {state}; no batch ran{}", b.job, next_step(b.job, state)));
                return Ok(updated);
            }
        }
        // A batch whose rows the filter all left out goes on to the next: 0 means done.
        if outcome.idle.is_some() || outcome.finished || outcome.updated > 0 {
            break;
        }
    }
    if let Some(line) = backfills::progress_line(b.job) {
        notice(line);
    }
    Ok(updated)
}

fn next_step(job: i64, state: &str) -> String {
    match state {
        "paused" | "failed" => format!(" (SELECT migrate.resume({job}) to go on)"),
        _ => String::new(),
    }
}

/// Pauses a backfill after its current batch. Returns the job's state.
#[pg_extern(name = "pause")]
#[search_path(pg_catalog, pg_temp)]
fn pause(job: Option<i64>) -> String {
    let b = visible_backfill(job).or_raise();
    if jobs::pause(b.job) {
        notice(format!("pg_migrate: backfill job {} pauses after its current batch; SELECT migrate.resume({}) goes on", b.job, b.job));
        return "paused".into();
    }
    notice(format!("pg_migrate: backfill job {} is {}; nothing to pause", b.job, b.state));
    b.state
}

/// Resumes a paused or failed backfill from its cursor (a worker starts when the transaction
/// commits, unless the job is run by hand). Returns the job's state.
#[pg_extern(name = "resume")]
#[search_path(pg_catalog, pg_temp)]
fn resume(job: Option<i64>) -> String {
    resume_job(job).or_raise()
}

fn resume_job(job: Option<i64>) -> Result<String> {
    let b = visible_backfill(job)?;
    let owner = pg_sys::Oid::from(b.owner);
    match b.state.as_str() {
        "paused" | "failed" => {
            if !b.manual {
                crate::worker::launch::check_owner_can_log_in(owner)?;
            }
            jobs::unpause(b.job);
            if !b.manual {
                crate::worker::start(b.job, owner)?;
            }
            notice(format!("pg_migrate: backfill job {} goes on from where it stopped", b.job));
            Ok("queued".into())
        }
        "queued" | "running" => {
            // Its worker may be gone (crash, restart without the launcher).
            crate::worker::launch::resume_orphans();
            notice(format!("pg_migrate: backfill job {} is already {}", b.job, b.state));
            Ok(b.state)
        }
        _ => Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("backfill job {} is {} and cannot be resumed", b.job, b.state),
        )
        .hint("Start a new backfill with migrate.backfill_start().")),
    }
}

/// How many rows in the job's range match its filter and still differ from what the assignments
/// would produce: 0 for a finished backfill with deterministic assignments.
#[pg_extern(name = "backfill_verify")]
#[search_path(pg_catalog, pg_temp)]
fn backfill_verify(job: Option<i64>) -> i64 {
    let b = visible_backfill(job).or_raise();
    let table = Table::of_job(&b).or_raise();
    // Without a key (rows move between pages when updated) the whole table is checked.
    let key = Key::of_job(&b);
    let Some(upper) = b.upper_bound.as_deref() else {
        return 0;
    };
    in_job_session(&b, gucs::lock_timeout_ms(), || walk::count_differing(&table, key.as_ref(), upper, &b.targets, b.filter.as_deref()))
}

/// The backfill `job` as the caller may see it (a member of its owner role).
fn visible_backfill(job: Option<i64>) -> Result<Backfill> {
    let job = job.ok_or_else(|| null_argument("job"))?;
    let unknown = || {
        Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("job {job} does not exist or belongs to another role"))
            .hint("See SELECT * FROM migrate.progress for the backfills you can see.")
    };
    let kind = jobs::visible_kind(job).ok_or_else(unknown)?;
    if kind != "backfill" {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE, format!("job {job} is not a backfill"))
            .hint("Only backfills run in batches that can be paused and resumed; migrate.cancel() stops any job."));
    }
    backfills::get(job).ok_or_else(unknown)
}

fn null_argument(name: &str) -> Failure {
    Failure::new(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, format!("{name} must not be NULL"))
}
