//! `migrate.rollback()` and `migrate.rollback_to()`: run recorded down SQL, newest first.

use super::history::{self, Version};
use super::{validate, Running};
use crate::ddl::{retry, script};
use crate::error::{notice, Failure, OrRaise, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::time::Instant;

/// Rolls back `version` (default: the latest applied one), which must be the latest applied.
#[pg_extern(name = "rollback")]
fn rollback(version: default!(Option<&str>, "NULL")) -> String {
    rollback_one(version).or_raise()
}

fn rollback_one(version: Option<&str>) -> Result<String> {
    let _running = Running::enter("migrate.rollback")?;
    if let Some(v) = version {
        validate::version(Some(v))?;
    }
    history::lock();
    let latest = history::latest_applied();
    let target = match version {
        Some(v) => known(v)?,
        None => latest.clone().ok_or_else(|| {
            Failure::new(PgSqlErrorCode::ERRCODE_NO_DATA_FOUND, "there is no applied migration to roll back")
                .hint("See SELECT * FROM migrate.status().")
        })?,
    };
    if target.state != "applied" {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("version \"{}\" is not applied (its state is {})", target.version, target.state),
        )
        .hint("Only applied versions can be rolled back; see SELECT * FROM migrate.status()."));
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
    check_down(std::slice::from_ref(&target))?;
    run_down(&target)?;
    Ok("rolled_back".to_string())
}

/// Rolls back every applied version after `version`, newest first, all or nothing. Returns the
/// versions rolled back, in the order they were.
#[pg_extern(name = "rollback_to")]
fn rollback_to(
    version: Option<&str>,
) -> TableIterator<'static, (name!(version, String), name!(name, Option<String>))> {
    let done = rollback_after(version).or_raise();
    TableIterator::new(done.into_iter().map(|v| (v.version, v.name)))
}

fn rollback_after(version: Option<&str>) -> Result<Vec<Version>> {
    let version = validate::version(version)?;
    let _running = Running::enter("migrate.rollback_to")?;
    history::lock();
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
    check_down(&targets)?;
    for target in &targets {
        run_down(target)?;
    }
    Ok(targets)
}

fn known(version: &str) -> Result<Version> {
    history::find(version).ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("unknown migration version \"{version}\""))
            .hint("See SELECT * FROM migrate.status() for the known versions.")
    })
}

/// Refuses before anything runs if any target has no down SQL, naming all of them.
fn check_down(targets: &[Version]) -> Result<()> {
    let missing: Vec<&str> =
        targets.iter().filter(|v| v.down.is_none()).map(|v| v.version.as_str()).collect();
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

fn run_down(target: &Version) -> Result<()> {
    let down = target.down.as_deref().expect("checked by check_down");
    let parsed = script::parse(script::Direction::Down, &target.version, down)?;
    let started = Instant::now();
    retry::run_script(&target.version, &parsed)?;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    history::record_rolled_back(target, duration_ms);
    notice(format!("pg_migrate: rolled back \"{}\" ({duration_ms:.0} ms)", target.version));
    Ok(())
}

fn quoted_list(items: &[&str]) -> String {
    items.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ")
}

