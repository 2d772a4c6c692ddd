//! `migrate.verify(up, down)` and `migrate.verify(version)`: prove a migration reversible by
//! running it forward, back and forward again (the seeds' "every migration must pass
//! up → down → up") inside a subtransaction that is always rolled back, comparing schema
//! fingerprints at each step. No rows means the round trip is clean.

use super::exec;
use super::fingerprint::{self, Fingerprint};
use crate::ddl::script::{self, Direction, Script};
use crate::ddl::session::as_role_restricted;
use crate::ddl::subxact;
use crate::error::{Failure, OrRaise, Result};
use crate::catalog::history;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Verifies an up/down pair that has not been applied: up, down (must restore the schema as it
/// was before up), up again (must give the schema of the first up).
#[pg_extern(name = "verify")]
fn verify(up: &str, down: &str) -> TableIterator<'static, (name!(step, String), name!(object, String), name!(difference, String))> {
    let up = script::parse_labeled(Direction::Up, "up SQL", up).and_then(|s| transactional("up SQL", s)).or_raise();
    let down = script::parse_labeled(Direction::Down, "down SQL", down).and_then(|s| transactional("down SQL", s)).or_raise();
    rows(round_trip([("up", &up), ("down", &down), ("up again", &up)]))
}

/// Verifies a recorded version with its stored up and down SQL. An applied version is walked
/// down, up, down again (its applied schema must come back); any other one up, down, up again.
#[pg_extern(name = "verify")]
fn verify_version(version: &str) -> TableIterator<'static, (name!(step, String), name!(object, String), name!(difference, String))> {
    rows(verify_recorded(version).or_raise())
}

fn verify_recorded(version: &str) -> Result<Vec<(String, String, String)>> {
    let recorded = history::find(version).ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_NO_DATA_FOUND, format!("unknown migration version \"{version}\""))
            .hint("See SELECT * FROM migrate.status().")
    })?;
    let (Some(up), Some(down)) = (recorded.up.as_deref(), recorded.down.as_deref()) else {
        let missing = if recorded.up.is_none() { "up" } else { "down" };
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot verify version \"{version}\": no {missing} SQL recorded"),
        )
        .hint("Only versions applied with both scripts can be verified (a baseline records none); verify the scripts themselves with migrate.verify(up, down)."));
    };
    let up = transactional("up SQL", script::parse(Direction::Up, version, up)?)?;
    let down = transactional("down SQL", script::parse(Direction::Down, version, down)?)?;
    let owner = owner_for_caller(version)?;
    // The recorded SQL is its owner's: it runs with the owner's rights whoever verifies it, and
    // nothing it sets survives the call (see docs/security.md).
    Ok(as_role_restricted(owner, || {
        if recorded.state == "applied" {
            round_trip([("down", &down), ("up", &up), ("down again", &down)])
        } else {
            round_trip([("up", &up), ("down", &down), ("up again", &up)])
        }
    }))
}

/// The role whose SQL `version` is, if the caller is a member of it. A dry run still runs every
/// statement, and a statement's effects outside the database (COPY … TO PROGRAM, dblink, a
/// sequence's nextval) are not rolled back: only the owner and its members may cause them.
fn owner_for_caller(version: &str) -> Result<pg_sys::Oid> {
    let (owner, name, member) = history::owner(version)
        .map(|(oid, name)| (oid, name.clone(), is_member(oid)))
        .ok_or_else(|| Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("version \"{version}\" has no owner role any more"))
            .hint("Verify its scripts with migrate.verify(up, down) as a role that may run them."))?;
    if member {
        return Ok(owner);
    }
    Err(Failure::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, format!("permission denied to verify version \"{version}\" of role {name}"))
        .detail("verify() runs the version's recorded SQL with its owner's rights.")
        .hint(format!("Verify it as {name} or as a member of that role, or verify the scripts with migrate.verify(up, down).")))
}

fn is_member(role: pg_sys::Oid) -> bool {
    crate::catalog::may_act_as(unsafe { pg_sys::GetUserId() }, role)
}

/// A dry run happens inside a transaction: statements that must run at top level (CREATE INDEX
/// CONCURRENTLY, …) cannot be part of it.
fn transactional(label: &str, script: Script) -> Result<Script> {
    let total = script.statements.len();
    for s in &script.statements {
        if let Some(why) = s.top_level.as_ref().and_then(|t| t.why()) {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
                format!("statement {}/{total} (line {}) of {label} cannot be verified: {why}", s.number, s.line),
            )
            .detail(format!("Statement: {}", s.fragment()))
            .hint("verify() runs the scripts in a transaction that it rolls back; verify the other statements without this one (its plain form, without CONCURRENTLY, behaves the same for the schema)."));
        }
    }
    Ok(script)
}

/// Runs scripts A, B, A in a subtransaction that is always rolled back. After B the schema must
/// equal the schema before A; after the second A it must equal the schema after the first A.
/// Returns (step, object, difference) rows; a failing statement ends the walk with its error.
fn round_trip(steps: [(&str, &Script); 3]) -> Vec<(String, String, String)> {
    let walked = subxact::run_and_roll_back(|| {
        let mut rows = Vec::new();
        let start = fingerprint::take();
        let mut seen: Vec<Fingerprint> = Vec::new();
        for (i, (step, script)) in steps.iter().enumerate() {
            if let Err(row) = run_script(step, script) {
                rows.push(row);
                break;
            }
            let now = fingerprint::take();
            let expected = match i {
                1 => Some(&start),
                2 => seen.first(),
                _ => None,
            };
            if let Some(expected) = expected {
                rows.extend(fingerprint::diff(expected, &now).into_iter().map(|(o, d)| (step.to_string(), o, d)));
            }
            seen.push(now);
        }
        rows
    });
    walked.unwrap_or_else(|caught| pgrx::error!("migrate.verify() failed: {}", caught.message))
}

/// Runs every statement of a script; the first failure becomes a result row.
fn run_script(step: &str, script: &Script) -> std::result::Result<(), (String, String, String)> {
    for stmt in &script.statements {
        if let Err(caught) = exec::run(stmt) {
            return Err((
                step.to_string(),
                format!("statement {} (line {}) of {} SQL", stmt.number, stmt.line, script.direction.as_str()),
                format!("failed: {}", exec::describe_failure(&caught)),
            ));
        }
    }
    Ok(())
}

// (pgrx needs the full TableIterator type in each #[pg_extern] signature; no alias.)
fn rows(rows: Vec<(String, String, String)>) -> TableIterator<'static, (name!(step, String), name!(object, String), name!(difference, String))> {
    TableIterator::new(rows)
}
