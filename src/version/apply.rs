//! `migrate.apply()`: decide whether a version must run, run it politely, record it.

use super::checksum::checksum_of;
use super::{history, validate, Running};
use crate::ddl::{retry, script};
use crate::error::{notice, Failure, OrRaise, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::time::Instant;

/// Runs `up` (any number of statements) in the caller's transaction, with the caller's
/// privileges, and records the version. Returns the version's state.
#[pg_extern(name = "apply")]
fn apply(
    version: Option<&str>,
    up: Option<&str>,
    down: default!(Option<&str>, "NULL"),
    name: default!(Option<&str>, "NULL"),
) -> String {
    apply_version(version, up, down, name).or_raise()
}

fn apply_version(version: Option<&str>, up: Option<&str>, down: Option<&str>, name: Option<&str>) -> Result<String> {
    let version = validate::version(version)?;
    let up = validate::script("up", version, up)?;
    let down = validate::optional_script("down", version, down)?;
    let _running = Running::enter("migrate.apply")?;
    let checksum = checksum_of(up);

    history::lock();
    let previous = history::find(version);
    if let Some(prev) = &previous {
        match prev.state.as_str() {
            "applied" if prev.is_baseline => {
                notice(format!("pg_migrate: version \"{version}\" is a baseline; nothing to do"));
                return Ok(prev.state.clone());
            }
            "applied" if prev.checksum.as_deref() == Some(checksum.as_str()) => {
                notice(format!("pg_migrate: version \"{version}\" is already applied; nothing to do"));
                return Ok(prev.state.clone());
            }
            "applied" => {
                return Err(Failure::new(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("version \"{version}\" is already applied with a different checksum"),
                )
                .detail(format!(
                    "Recorded checksum {}, checksum of the given up SQL {checksum}.",
                    prev.checksum.as_deref().unwrap_or("(none)")
                ))
                .hint(format!(
                    "An applied migration must not be edited: add a new version for the change. If the edit was deliberate and the schema already matches it, record it with SELECT migrate.repair('{version}', <up SQL>)."
                )));
            }
            "applying" => {
                return Err(Failure::new(
                    PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                    format!("version \"{version}\" is still being applied"),
                )
                .hint("Wait for its background steps to finish; see migrate.status()."));
            }
            _ => {}
        }
    } else if let Some(base) = history::baseline() {
        if version_cmp(version, &base.version).is_le() {
            notice(format!(
                "pg_migrate: version \"{version}\" is covered by baseline \"{}\"; nothing to do",
                base.version
            ));
            return Ok("applied".to_string());
        }
    }
    if let Some(latest) = history::latest_applied() {
        if previous.is_none() && version_cmp(version, &latest.version).is_lt() {
            notice(format!(
                "pg_migrate: version \"{version}\" is older than the latest applied version \"{}\"; applying it out of order",
                latest.version
            ));
        }
    }

    // Parse both scripts before running anything: a typo in down is found now, not at rollback.
    let up_script = script::parse(script::Direction::Up, version, up)?;
    if let Some(d) = down {
        script::parse(script::Direction::Down, version, d)?;
    }
    // Lint before anything runs: dangerous patterns are refused unless the up SQL allows them.
    let lint_accepted = crate::safety::gate::check(version, up)?;

    let started = Instant::now();
    retry::run_script(version, &up_script)?;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;

    let derived = validate::default_name(version);
    history::record_applied(&history::Applied {
        version,
        name: name.or(derived.as_deref()),
        checksum: &checksum,
        up,
        down,
        duration_ms,
        previous: previous.as_ref(),
        lint_accepted: &lint_accepted,
    });
    notice(format!(
        "pg_migrate: applied \"{version}\" ({} statements, {:.0} ms)",
        up_script.statements.len(),
        duration_ms
    ));
    Ok("applied".to_string())
}

/// Version order: byte order (COLLATE "C"), the order every timestamp-prefixed scheme sorts in.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.as_bytes().cmp(b.as_bytes())
}
