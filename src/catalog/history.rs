//! The only code that reads or writes `migrate.migrations` and `migrate.events`. Every access
//! runs as the extension owner with a pinned search_path (`ddl::session::as_extension_owner`).

use crate::ddl::session::{as_extension_owner, caller_names};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

/// One row of `migrate.migrations`, as deciding code needs it.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: String,
    pub name: Option<String>,
    pub checksum: Option<String>,
    pub state: String,
    pub is_baseline: bool,
    pub up: Option<String>,
    pub down: Option<String>,
    /// The role the version belongs to: the one that applied it (see version::owner). None for
    /// a row recorded before 0.3.0 whose role was gone when the extension was updated.
    pub owner: Option<pg_sys::Oid>,
    /// The owner's name; None when there is no owner or that role has been dropped since.
    pub owner_name: Option<String>,
    pub applied_by: Option<String>,
}

/// Serialises concurrent deployers until the caller's transaction ends. Waiting here holds no
/// lock that application traffic needs. The lock is the one row of migrate.deploy_lock, which
/// only the extension owner may lock: an advisory lock key could be taken and held by any role,
/// stopping every deploy. A schema not yet updated to 0.3.0 has no such table: it keeps the
/// advisory lock of its release until ALTER EXTENSION pg_migrate UPDATE.
pub fn lock() {
    as_extension_owner(|| {
        if super::has_0_3_objects() {
            Spi::run("SELECT FROM migrate.deploy_lock FOR UPDATE").expect("deploy lock");
        } else {
            // the key of 0.1.0 and 0.2.0: the bytes of "pgmigrat" read as an integer
            Spi::run_with_args("SELECT pg_catalog.pg_advisory_xact_lock($1)", &[0x7067_6d69_6772_6174_i64.into()])
                .expect("advisory lock");
        }
    })
}

/// Whether migrate.migrations has its `owner` column (0.3.0). Before the update, the owner of a
/// row is the role its applied_by names, as the update fills it in, and new rows are written
/// without it.
fn has_owner_column() -> bool {
    super::has_0_3_objects()
}

fn select(condition_and_order: &str, args: Vec<pgrx::datum::DatumWithOid>) -> Vec<Version> {
    let owner = if has_owner_column() {
        "m.owner::oid"
    } else {
        "(SELECT r.oid FROM pg_roles r WHERE r.rolname = m.applied_by)"
    };
    let query = format!(
        "SELECT version, name, checksum, state, is_baseline, up, down, {owner},
                (SELECT r.rolname::text FROM pg_roles r WHERE r.oid = {owner}), applied_by::text
           FROM migrate.migrations m {condition_and_order}"
    );
    as_extension_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(&query, None, &args)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(Version {
                    version: row.get::<String>(1)?.unwrap_or_default(),
                    name: row.get::<String>(2)?,
                    checksum: row.get::<String>(3)?,
                    state: row.get::<String>(4)?.unwrap_or_default(),
                    is_baseline: row.get::<bool>(5)?.unwrap_or(false),
                    up: row.get::<String>(6)?,
                    down: row.get::<String>(7)?,
                    owner: row.get::<pg_sys::Oid>(8)?,
                    owner_name: row.get::<String>(9)?,
                    applied_by: row.get::<String>(10)?,
                });
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
        .expect("read migrate.migrations")
    })
}

/// The role `version` belongs to (its oid and name), if that role still exists.
pub fn owner(version: &str) -> Option<(pg_sys::Oid, String)> {
    find(version).and_then(|v| Some((v.owner?, v.owner_name?)))
}

/// How many versions are recorded, in any state (none: a baseline may begin the history).
pub fn count() -> i64 {
    as_extension_owner(|| {
        Spi::get_one::<i64>("SELECT count(*) FROM migrate.migrations").expect("read migrate.migrations").unwrap_or(0)
    })
}

pub fn find(version: &str) -> Option<Version> {
    select("WHERE version = $1", vec![version.into()]).into_iter().next()
}

/// The newest applied version (by version order), the one `rollback()` undoes by default.
pub fn latest_applied() -> Option<Version> {
    select("WHERE state IN ('applied', 'failed') ORDER BY version COLLATE \"C\" DESC LIMIT 1", vec![])
        .into_iter()
        .next()
}

/// A version whose background job has not ended yet, if any.
pub fn in_flight() -> Option<Version> {
    select("WHERE state IN ('applying', 'rolling_back') ORDER BY version COLLATE \"C\" LIMIT 1", vec![])
        .into_iter()
        .next()
}

/// The jobs recorded for `version`, newest last.
pub fn job_ids(version: &str) -> Vec<i64> {
    as_extension_owner(|| {
        Spi::get_one_with_args::<Vec<i64>>("SELECT job_ids FROM migrate.migrations WHERE version = $1", &[version.into()])
            .ok()
            .flatten()
            .unwrap_or_default()
    })
}

/// Applied versions newer than `version`, newest first.
pub fn applied_after(version: &str) -> Vec<Version> {
    select(
        "WHERE state IN ('applied', 'failed') AND version COLLATE \"C\" > $1 COLLATE \"C\" ORDER BY version COLLATE \"C\" DESC",
        vec![version.into()],
    )
}

/// The newest baseline, if any: versions at or below it are taken as already in the schema.
pub fn baseline() -> Option<Version> {
    select("WHERE is_baseline AND state = 'applied' ORDER BY version COLLATE \"C\" DESC LIMIT 1", vec![])
        .into_iter()
        .next()
}

/// What an apply leaves behind.
pub struct Applied<'a> {
    pub version: &'a str,
    pub name: Option<&'a str>,
    pub checksum: &'a str,
    pub up: &'a str,
    pub down: Option<&'a str>,
    pub duration_ms: f64,
    pub previous: Option<&'a Version>,
    /// The job that runs the rest of the script; the version stays `applying` until it ends.
    pub job: Option<i64>,
    /// Lint rules the migration breaks with permission (`-- migrate:allow`).
    pub lint_accepted: &'a [String],
    /// The role that called apply(): the version's owner from now on.
    pub owner: pg_sys::Oid,
}

pub fn record_applied(a: &Applied) {
    let (actor, _) = caller_names();
    let to_state = if a.job.is_some() { "applying" } else { "applied" };
    let (column, value, update) =
        if has_owner_column() { (", owner", ", $11::regrole", "owner = EXCLUDED.owner,") } else { ("", "", "") };
    let sql = format!(
        "INSERT INTO migrate.migrations AS m
                (version, name, checksum, up, down, applied_by, applied_at, duration_ms, state, job_ids, lint_accepted{column})
         VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp(), round($7::numeric, 3), $8,
                 CASE WHEN $9::bigint IS NULL THEN '{{}}'::bigint[] ELSE ARRAY[$9::bigint] END, $10{value})
         ON CONFLICT (version) DO UPDATE
            SET name = EXCLUDED.name, checksum = EXCLUDED.checksum, up = EXCLUDED.up,
                down = EXCLUDED.down, state = EXCLUDED.state, applied_by = EXCLUDED.applied_by, {update}
                applied_at = EXCLUDED.applied_at, duration_ms = EXCLUDED.duration_ms,
                rolled_back_by = NULL, rolled_back_at = NULL, lint_accepted = EXCLUDED.lint_accepted,
                job_ids = m.job_ids || EXCLUDED.job_ids"
    );
    as_extension_owner(|| {
        Spi::run_with_args(
            &sql,
            &[
                a.version.into(),
                a.name.into(),
                a.checksum.into(),
                a.up.into(),
                a.down.into(),
                actor.as_str().into(),
                a.duration_ms.into(),
                to_state.into(),
                a.job.into(),
                a.lint_accepted.to_vec().into(),
                a.owner.into(),
            ],
        )
        .expect("record apply");
    });
    let mut detail = serde_json::json!({ "checksum": a.checksum, "duration_ms": a.duration_ms, "job": a.job });
    if !a.lint_accepted.is_empty() {
        detail["lint_accepted"] = a.lint_accepted.into();
    }
    if let Some(prev) = a.previous {
        if prev.checksum.as_deref() != Some(a.checksum) {
            detail["previous_checksum"] = prev.checksum.clone().into();
        }
    }
    event(
        a.version,
        if a.previous.is_some() { "reapply" } else { "apply" },
        a.previous.map(|p| p.state.as_str()),
        Some(to_state),
        detail,
    );
}

/// Records a rollback; with a job, the version is `rolling_back` until the job ends.
pub fn record_rolled_back(version: &Version, duration_ms: f64, job: Option<i64>) {
    let (actor, _) = caller_names();
    let to_state = if job.is_some() { "rolling_back" } else { "rolled_back" };
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE migrate.migrations
                SET state = $3, rolled_back_by = $2, rolled_back_at = clock_timestamp(),
                    job_ids = job_ids || CASE WHEN $4::bigint IS NULL THEN '{}'::bigint[] ELSE ARRAY[$4::bigint] END
              WHERE version = $1",
            &[version.version.as_str().into(), actor.as_str().into(), to_state.into(), job.into()],
        )
        .expect("record rollback");
    });
    event(
        &version.version,
        "rollback",
        Some(&version.state),
        Some(to_state),
        // The role whose rights the down SQL ran with, which may not be the actor's.
        serde_json::json!({ "duration_ms": duration_ms, "job": job, "owner": version.owner_name }),
    );
}

/// A failed version's job was queued again: the version is `applying` (or `rolling_back`) until
/// the job ends.
pub fn record_resumed(version: &str, direction: &str, job: i64) {
    let to = if direction == "down" { "rolling_back" } else { "applying" };
    as_extension_owner(|| {
        Spi::run_with_args("UPDATE migrate.migrations SET state = $2 WHERE version = $1", &[version.into(), to.into()])
            .expect("record resume");
    });
    event(version, "resume", Some("failed"), Some(to), serde_json::json!({ "job": job }));
}

/// How a job ended for one version it carried.
pub enum JobOutcome<'a> {
    Done,
    Failed { error: &'a str, sqlstate: pgrx::PgSqlErrorCode, statement: usize, line: usize },
    Cancelled { by: &'a str },
    /// The job stopped before reaching this version's statements: it stays as it was.
    NotReached,
}

/// Moves `version` out of `applying` / `rolling_back` once its job has ended.
pub fn record_job_outcome(version: &str, direction: &str, job: i64, outcome: JobOutcome) {
    let from = if direction == "down" { "rolling_back" } else { "applying" };
    let (to, action, error, detail) = match outcome {
        JobOutcome::Done => (
            if direction == "down" { "rolled_back" } else { "applied" },
            if direction == "down" { "rollback_done" } else { "apply_done" },
            None,
            serde_json::json!({ "job": job }),
        ),
        JobOutcome::Failed { error, sqlstate, statement, line } => (
            "failed",
            if direction == "down" { "rollback_failed" } else { "apply_failed" },
            Some(error),
            serde_json::json!({ "job": job, "statement": statement, "line": line, "sqlstate": crate::error::sqlstate(sqlstate) }),
        ),
        JobOutcome::Cancelled { by } => (
            "failed",
            "cancelled",
            Some("the job was cancelled"),
            serde_json::json!({ "job": job, "cancelled_by": by }),
        ),
        JobOutcome::NotReached => ("applied", "rollback_abandoned", None, serde_json::json!({ "job": job })),
    };
    let changed = as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(
            "UPDATE migrate.migrations SET state = $3 WHERE version = $1 AND state = $2 RETURNING true",
            &[version.into(), from.into(), to.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    });
    if changed {
        event_with_error(version, action, Some(from), Some(to), detail, error);
    }
}

/// A failed attempt whose transaction was rolled back, written by a worker (see
/// worker::attempts) so that it outlives the rollback.
pub fn record_failed_attempt(version: &str, action: &str, detail: Value, error: &str, actor: &str, session_role: &str) {
    event_as(actor, session_role, version, action, None, None, detail, Some(error));
}

pub fn record_baseline(version: &str, name: Option<&str>, owner: pg_sys::Oid) {
    let (actor, _) = caller_names();
    let (column, value) = if has_owner_column() { (", owner", ", $4::regrole") } else { ("", "") };
    let sql = format!(
        "INSERT INTO migrate.migrations (version, name, state, is_baseline, applied_by, applied_at, duration_ms{column})
         VALUES ($1, $2, 'applied', true, $3, clock_timestamp(), 0{value})"
    );
    as_extension_owner(|| {
        Spi::run_with_args(&sql, &[version.into(), name.into(), actor.as_str().into(), owner.into()])
            .expect("record baseline");
    });
    event(version, "baseline", None, Some("applied"), serde_json::json!({}));
}

pub fn record_repair(previous: &Version, checksum: &str, up: &str) {
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE migrate.migrations SET checksum = $2, up = $3 WHERE version = $1",
            &[previous.version.as_str().into(), checksum.into(), up.into()],
        )
        .expect("record repair");
    });
    event(
        &previous.version,
        "repair",
        Some(&previous.state),
        Some(&previous.state),
        serde_json::json!({ "previous_checksum": previous.checksum, "checksum": checksum }),
    );
}

fn event(version: &str, action: &str, from: Option<&str>, to: Option<&str>, detail: Value) {
    event_with_error(version, action, from, to, detail, None)
}

fn event_with_error(version: &str, action: &str, from: Option<&str>, to: Option<&str>, detail: Value, error: Option<&str>) {
    let (actor, session_role) = caller_names();
    event_as(&actor, &session_role, version, action, from, to, detail, error)
}

#[allow(clippy::too_many_arguments)]
fn event_as(
    actor: &str,
    session_role: &str,
    version: &str,
    action: &str,
    from: Option<&str>,
    to: Option<&str>,
    detail: Value,
    error: Option<&str>,
) {
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO migrate.events (version, action, from_state, to_state, actor, session_role, detail, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                version.into(),
                action.into(),
                from.into(),
                to.into(),
                actor.into(),
                session_role.into(),
                JsonB(detail).into(),
                error.into(),
            ],
        )
        .expect("append event");
    });
}
