//! `migrate.apply()`: decide whether a version must run, run it politely, record it.

use super::checksum::checksum_of;
use super::owner::{self, Act};
use super::{validate, Running};
use crate::catalog::history;
use crate::catalog::jobs;
use crate::ddl::{retry, script};
use crate::worker::{self, launch};
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
    apply_version(version, up, down, name)
        .map_err(|f| super::record_attempt(version, "apply_failed", f))
        .or_raise()
}

fn apply_version(version: Option<&str>, up: Option<&str>, down: Option<&str>, name: Option<&str>) -> Result<String> {
    let version = validate::version(version)?;
    let up = validate::script("up", version, up)?;
    let down = validate::optional_script("down", version, down)?;
    let _running = Running::enter("migrate.apply")?;
    let checksum = checksum_of(up);
    // The caller owns what it applies; taken now, before the up SQL could SET ROLE.
    let caller = unsafe { pg_sys::GetUserId() };

    history::lock();
    launch::resume_orphans();
    refuse_in_flight(&format!("version \"{version}\""))?;
    let previous = history::find(version);
    if let Some(prev) = &previous {
        match prev.state.as_str() {
            "applied" if prev.is_baseline => {
                notice(format!("pg_migrate: version \"{version}\" is a baseline; nothing to do"));
                return Ok(prev.state.clone());
            }
            "applied" if prev.checksum.as_deref() == Some(checksum.as_str()) => {
                super::owner::check_reapply(prev)?;
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
            "failed" if prev.checksum.as_deref() == Some(checksum.as_str()) => {
                return resume_failed(prev);
            }
            "failed" => {
                return Err(Failure::new(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("version \"{version}\" failed in its background job and its up SQL has changed since"),
                )
                .detail("The statements before the failed one were committed; running the edited script again could repeat them.")
                .hint(format!("Apply the original SQL again to resume from the failed statement, or roll the version back with SELECT migrate.rollback('{version}')."))); 
            }
            _ => {}
        }
    } else if let Some(base) = history::baseline() {
        if version_cmp(version, &base.version).is_le() {
            // Naming who recorded it: a baseline decides for every role what apply skips.
            notice(format!(
                "pg_migrate: version \"{version}\" is covered by baseline \"{}\" of role \"{}\"; nothing to do",
                base.version,
                base.owner_name.as_deref().or(base.applied_by.as_deref()).unwrap_or("(unknown)")
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

    let (now, later) = up_script.split();
    if !later.is_empty() {
        launch::check_owner_can_log_in(unsafe { pg_sys::GetUserId() })?;
    }
    let started = Instant::now();
    let applying = super::Applying::enter(version);
    retry::run_script(version, &up_script, now)?;
    drop(applying);
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Without down SQL, the pg_migrate operations the up SQL called are the way back.
    let generated = if down.is_none() { crate::catalog::changes::undo_script(version) } else { None };
    let down = down.or(generated.as_deref());
    let job = if later.is_empty() {
        None
    } else {
        Some(worker::submit(&super::steps_of(version, &up_script, later))?)
    };

    let derived = validate::default_name(version);
    history::record_applied(&history::Applied {
        version,
        name: name.or(derived.as_deref()),
        checksum: &checksum,
        up,
        down,
        duration_ms,
        previous: previous.as_ref(),
        job,
        lint_accepted: &lint_accepted,
        owner: caller,
    });
    if let Some(job) = job {
        notice(format!(
            "pg_migrate: version \"{version}\" is applying: {} in background job {job} after this transaction commits; follow it with CALL migrate.wait({job})",
            statement_range(later[0].number, up_script.statements.len())
        ));
        return Ok("applying".to_string());
    }
    notice(format!("pg_migrate: applied \"{version}\" ({}, {duration_ms:.0} ms)", super::count(now.len(), "statement")));
    Ok("applied".to_string())
}

/// "statement 3 runs", "statements 3-5 run".
fn statement_range(first: usize, last: usize) -> String {
    if first == last { format!("statement {first} runs") } else { format!("statements {first}-{last} run") }
}

/// Only one migration at a time may have background work in flight: the next one could depend
/// on it, and waiting for it here would hold a snapshot its CREATE INDEX CONCURRENTLY waits for.
/// `waiting` says what has to wait, for the DETAIL ("version \"8\"", "the rollback").
pub fn refuse_in_flight(waiting: &str) -> Result<()> {
    match history::in_flight() {
        Some(busy) => {
            let job = history::job_ids(&busy.version).last().copied().unwrap_or_default();
            Err(crate::worker::in_flight::refusal(&busy.version, &busy.state, job, waiting))
        }
        None => Ok(()),
    }
}

/// The failed version's job starts again at the statement that failed, as the version's owner:
/// its up SQL is the owner's, whoever resumes it.
fn resume_failed(prev: &history::Version) -> Result<String> {
    let job = history::job_ids(&prev.version).last().copied();
    let Some(job) = job.filter(|j| jobs::direction_at_cursor(*j).as_deref() == Some("up")) else {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("version \"{}\" failed while it was being rolled back", prev.version),
        )
        .detail("Part of its down SQL took effect; applying its up SQL now could repeat or contradict it.")
        .hint(format!("Finish the rollback with SELECT migrate.rollback('{}'), which resumes at the statement that failed.", prev.version)));
    };
    owner::check(prev, Act::Resume)?.run(|| worker::resubmit(job))?;
    history::record_resumed(&prev.version, "up", job);
    notice(format!(
        "pg_migrate: resuming version \"{}\" in job {job} from the statement that failed; follow it with CALL migrate.wait({job})",
        prev.version
    ));
    Ok("applying".to_string())
}

/// Version order: byte order (COLLATE "C"), the order every timestamp-prefixed scheme sorts in.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.as_bytes().cmp(b.as_bytes())
}
