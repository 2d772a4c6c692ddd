//! `migrate.rollback()` and `migrate.rollback_to()`: run recorded down SQL, newest first, each
//! version's as its owner (see version::owner).

use super::owner::{self, Act, Owner};
use super::{validate, Running};
use crate::catalog::history::{self, Version};
use crate::catalog::jobs::Step;
use crate::ddl::{retry, script};
use crate::worker::{self, launch};
use crate::error::{notice, Failure, OrRaise, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::time::Instant;

/// Rolls back `version` (default: the latest applied one), which must be the latest applied.
#[pg_extern(name = "rollback")]
fn rollback(version: default!(Option<&str>, "NULL")) -> String {
    rollback_one(version)
        .map_err(|f| super::record_attempt(version, "rollback_failed", f))
        .or_raise()
}

fn rollback_one(version: Option<&str>) -> Result<String> {
    let _running = Running::enter("migrate.rollback")?;
    if let Some(v) = version {
        validate::version(Some(v))?;
    }
    history::lock();
    launch::resume_orphans();
    super::apply::refuse_in_flight("the rollback")?;
    let latest = history::latest_applied();
    let target = match version {
        Some(v) => known(v)?,
        None => latest.clone().ok_or_else(|| {
            Failure::new(PgSqlErrorCode::ERRCODE_NO_DATA_FOUND, "there is no applied migration to roll back")
                .hint("See SELECT * FROM migrate.status().")
        })?,
    };
    let owner = owner::check(&target, Act::RollBack)?;
    if !in_effect(&target) {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("version \"{}\" is not applied (its state is {})", target.version, target.state),
        )
        .hint("Only applied (or failed) versions can be rolled back; see SELECT * FROM migrate.status()."));
    }
    let latest = latest.expect("an applied version exists");
    if latest.version != target.version {
        let newer = history::applied_after(&target.version);
        let names: Vec<&str> = newer.iter().rev().map(|v| v.version.as_str()).collect();
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("version \"{}\" is not the latest applied version", target.version),
        )
        .detail(format!("Applied after it: {}.", names.join(", ")))
        .hint(format!(
            "Roll back the newer versions first, or roll back everything after a version with SELECT * FROM migrate.rollback_to('<version to keep>')."
        )));
    }
    if target.is_baseline {
        return forget_baseline(&target, version.is_some());
    }
    if let Some(job) = failed_rollback_job(&target) {
        owner.run(|| worker::resubmit(job))?;
        history::record_resumed(&target.version, "down", job);
        notice(format!(
            "pg_migrate: resuming the rollback of \"{}\" in job {job} from the statement that failed; follow it with CALL migrate.wait({job})",
            target.version
        ));
        return Ok("rolling_back".to_string());
    }
    let done = run_downs(&[(target, owner)])?;
    Ok(if done.is_some() { "rolling_back" } else { "rolled_back" }.to_string())
}

/// Rolling back a baseline forgets it: it ran nothing, so nothing is undone, and migrate.apply()
/// no longer skips the versions it covered. Only when named: a bare rollback() stops at it, so
/// that a loop of rollback() calls does not forget it by accident.
fn forget_baseline(target: &Version, named: bool) -> Result<String> {
    if !named {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot roll back: \"{}\" is a baseline, which ran nothing", target.version),
        )
        .detail("migrate.rollback() without a version stops at a baseline.")
        .hint(format!(
            "To forget the baseline, name it: SELECT migrate.rollback('{}'); migrate.apply() then no longer skips the versions at or below it.",
            target.version
        )));
    }
    history::record_rolled_back(target, 0.0, None);
    notice(format!(
        "pg_migrate: forgot baseline \"{}\"; nothing was run, and migrate.apply() no longer skips the versions it covered",
        target.version
    ));
    Ok("rolled_back".to_string())
}

/// The job of a rollback that failed part-way: rolling back again resumes it rather than
/// running the down SQL from the start.
fn failed_rollback_job(v: &Version) -> Option<i64> {
    if v.state != "failed" {
        return None;
    }
    history::job_ids(&v.version)
        .last()
        .copied()
        .filter(|j| crate::catalog::jobs::direction_at_cursor(*j).as_deref() == Some("down"))
}

/// Applied versions, and failed ones (part of their up SQL took effect), can be rolled back.
fn in_effect(v: &Version) -> bool {
    v.state == "applied" || v.state == "failed"
}

/// Rolls back every applied version after `version`, newest first, all or nothing. Returns the
/// versions rolled back, in the order they were.
#[pg_extern(name = "rollback_to")]
fn rollback_to(
    version: Option<&str>,
) -> TableIterator<'static, (name!(version, String), name!(name, Option<String>))> {
    let done = rollback_after(version)
        .map_err(|f| super::record_attempt(version, "rollback_failed", f))
        .or_raise();
    TableIterator::new(done.into_iter().map(|v| (v.version, v.name)))
}

fn rollback_after(version: Option<&str>) -> Result<Vec<Version>> {
    let version = validate::version(version)?;
    let _running = Running::enter("migrate.rollback_to")?;
    history::lock();
    launch::resume_orphans();
    super::apply::refuse_in_flight("the rollback")?;
    let keep = known(version)?;
    if keep.state != "applied" {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("version \"{version}\" is not applied (its state is {}), so it cannot be the version to keep", keep.state),
        )
        .hint("Pass an applied version; see SELECT * FROM migrate.status()."));
    }
    let targets = history::applied_after(version);
    if targets.is_empty() {
        notice(format!("pg_migrate: nothing is applied after \"{version}\"; nothing to do"));
        return Ok(targets);
    }
    // Every version's owner is checked before anything runs: all or nothing.
    let owned = targets
        .into_iter()
        .map(|t| owner::check(&t, Act::RollBack).map(|o| (t, o)))
        .collect::<Result<Vec<_>>>()?;
    run_downs(&owned)?;
    Ok(owned.into_iter().map(|(t, _)| t).collect())
}

fn known(version: &str) -> Result<Version> {
    history::find(version).ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("unknown migration version \"{version}\""))
            .hint("See SELECT * FROM migrate.status() for the known versions.")
    })
}

/// Refuses before anything runs if any target has no down SQL, naming all of them.
fn check_down(targets: &[(Version, Owner)]) -> Result<()> {
    let missing: Vec<&str> =
        targets.iter().filter(|(v, _)| v.down.is_none()).map(|(v, _)| v.version.as_str()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("cannot roll back: no down SQL recorded for {}", quoted_list(&missing)),
    )
    .detail(if targets.len() > 1 { "Nothing was rolled back." } else { "A baseline or a migration applied without down SQL has no way back recorded." })
    .hint("Undo the change with a new forward migration instead."))
}

/// Runs the down SQL of `targets` in order, each as its owner. Once a statement must run in a
/// background job (DROP INDEX CONCURRENTLY, …), it and everything after it, including later
/// versions' down SQL, go to one job so that the order is kept; that job is its versions'
/// owner's, so they must have one owner. Returns that job, if any.
fn run_downs(targets: &[(Version, Owner)]) -> Result<Option<i64>> {
    check_down(targets)?;
    // Parse everything first: a syntax error in any down script stops the rollback before it starts.
    let scripts = targets
        .iter()
        .map(|(t, _)| script::parse(script::Direction::Down, &t.version, t.down.as_deref().expect("checked by check_down")))
        .collect::<Result<Vec<_>>>()?;
    let first_deferred = scripts.iter().position(|s| !s.split().1.is_empty());
    let job_owner = first_deferred.map(|i| one_owner(&targets[i..])).transpose()?;
    if let Some(o) = job_owner {
        launch::check_owner_can_log_in(o.oid)?;
    }
    let mut job_steps: Vec<Step> = Vec::new();
    let mut deferred: Vec<(&Version, f64)> = Vec::new();
    for ((target, owner), parsed) in targets.iter().zip(&scripts) {
        let (now, later) = if job_steps.is_empty() { parsed.split() } else { (&parsed.statements[..0], &parsed.statements[..]) };
        let started = Instant::now();
        owner
            .run(|| retry::run_script(&target.version, parsed, now))
            .map_err(|f| owner.explain(&target.version, f))?;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        if later.is_empty() {
            history::record_rolled_back(target, duration_ms, None);
            notice(format!("pg_migrate: rolled back \"{}\" ({duration_ms:.0} ms)", target.version));
        } else {
            job_steps.extend(super::steps_of(&target.version, parsed, later));
            deferred.push((target, duration_ms));
        }
    }
    let Some(owner) = job_owner else {
        return Ok(None);
    };
    let job = owner.run(|| worker::submit(&job_steps))?;
    for (target, duration_ms) in deferred {
        history::record_rolled_back(target, duration_ms, Some(job));
    }
    notice(format!(
        "pg_migrate: rolling back in background job {job} after this transaction commits; follow it with CALL migrate.wait({job})"
    ));
    Ok(Some(job))
}

/// The one owner of the versions whose down SQL goes to a single background job. A job runs as
/// one role, and running one role's statements as another is what owners prevent.
fn one_owner(deferred: &[(Version, Owner)]) -> Result<&Owner> {
    let (first, owner) = &deferred[0];
    match deferred.iter().find(|(_, o)| o.oid != owner.oid) {
        None => Ok(owner),
        Some((other, o)) => Err(Failure::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "cannot roll back versions of roles \"{}\" and \"{}\" in one background job",
                owner.name, o.name
            ),
        )
        .detail(format!(
            "From version \"{}\" (role \"{}\") on, the down SQL runs in a background job, which runs as one role; version \"{}\" belongs to role \"{}\". Nothing was rolled back.",
            first.version, owner.name, other.version, o.name
        ))
        .hint("Roll back one version at a time, newest first, with SELECT migrate.rollback(), and after each that starts a job CALL migrate.wait_version('<that version>').")),
    }
}

fn quoted_list(items: &[&str]) -> String {
    items.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ")
}

