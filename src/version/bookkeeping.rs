//! `migrate.baseline()` and `migrate.repair()`: change the record without running SQL.

use super::checksum::checksum_of;
use super::owner::{self, Act};
use super::validate;
use crate::catalog::history;
use crate::error::{notice, Failure, OrRaise, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Records an existing schema as being at `version` without running anything. Versions at or
/// below a baseline are then skipped by migrate.apply(), whoever applies them: so only the first
/// record of a database, or the extension owner, may be a baseline (owner::may_baseline).
#[pg_extern(name = "baseline")]
#[search_path(pg_catalog, pg_temp)]
fn baseline(version: Option<&str>, name: default!(Option<&str>, "NULL")) -> String {
    record_baseline(version, name).or_raise()
}

fn record_baseline(version: Option<&str>, name: Option<&str>) -> Result<String> {
    let version = validate::version(version)?;
    history::lock();
    owner::may_baseline(version)?;
    if let Some(existing) = history::find(version) {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("version \"{version}\" is already recorded (state {})", existing.state),
        )
        .hint("A baseline marks a version that was never applied through pg_migrate; pick that version."));
    }
    if let Some(latest) = history::latest_applied() {
        if super::apply::version_cmp(version, &latest.version).is_lt() {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("cannot baseline \"{version}\": version \"{}\" is already applied after it", latest.version),
            )
            .hint("A baseline must be newer than every applied version."));
        }
    }
    let derived = validate::default_name(version);
    history::record_baseline(version, name.or(derived.as_deref()), unsafe { pg_sys::GetUserId() });
    notice(format!("pg_migrate: recorded baseline \"{version}\"; nothing was run"));
    Ok("applied".to_string())
}

/// Realigns the recorded checksum of `version` with an edited up text, after a deliberate edit.
/// Nothing is run; the event log keeps both checksums. Only the version's owner and its members
/// may: verify(version) runs the recorded up SQL with the owner's rights.
#[pg_extern(name = "repair")]
#[search_path(pg_catalog, pg_temp)]
fn repair(version: Option<&str>, up: Option<&str>) -> String {
    repair_version(version, up).or_raise()
}

fn repair_version(version: Option<&str>, up: Option<&str>) -> Result<String> {
    let version = validate::version(version)?;
    let up = validate::script("up", version, up)?;
    history::lock();
    let existing = history::find(version).ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("unknown migration version \"{version}\""))
            .hint("repair() realigns a recorded version; apply new versions with migrate.apply().")
    })?;
    owner::check(&existing, Act::Repair)?;
    if existing.is_baseline {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("version \"{version}\" is a baseline and has no up SQL to repair"),
        ));
    }
    let checksum = checksum_of(up);
    if existing.checksum.as_deref() == Some(checksum.as_str()) {
        notice(format!("pg_migrate: checksum of \"{version}\" already matches; nothing to do"));
        return Ok(existing.state);
    }
    history::record_repair(&existing, &checksum, up);
    notice(format!(
        "pg_migrate: repaired \"{version}\": checksum {} -> {checksum}",
        existing.checksum.as_deref().unwrap_or("(none)")
    ));
    Ok(existing.state)
}
