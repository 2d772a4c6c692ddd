//! What a backfill does, read from what the user passed: the SET list, the filter and the
//! options. The SET list and the filter are SQL that pg_migrate places inside its own UPDATE, so
//! each expression is checked with the server's parser to be exactly one expression: nothing in
//! it can close the UPDATE, add clauses to it or start another statement.

use crate::catalog::backfills::{Pace, Target};
use crate::ddl::script::{first_token, split_after};
use crate::error::{Failure, Result};
use crate::gucs;
use crate::safety::nodes::{self, cast};
use pgrx::pg_sys::{self, NodeTag};
use pgrx::PgSqlErrorCode;

/// Batch sizes adapt within these bounds.
pub const MIN_BATCH: i32 = 10;
pub const MAX_BATCH: i32 = 100_000;
/// The first batch of an adaptive backfill.
pub const FIRST_BATCH: i32 = 100;

/// The SET list as `column = (expression)` pairs. `assignments` is what follows SET in an UPDATE:
/// `status = 'active', full_name = first || ' ' || last`.
pub fn targets(assignments: &str) -> Result<Vec<Target>> {
    const PREFIX: &str = "UPDATE pg_migrate_backfill SET ";
    let parsed = split_after("the backfill's assignments", PREFIX, assignments)?;
    let whole = format!("{PREFIX}{assignments}");
    let bad = |why: &str| {
        Failure::new(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR, format!("the backfill's assignments {why}"))
            .detail(format!("Assignments: {}", crate::ddl::retry::fragment(assignments)))
            .hint("Pass what follows SET in an UPDATE, for example 'status = ''active'', full_name = first || '' '' || last'.")
    };
    let [one] = parsed.as_slice() else {
        return Err(bad("must be one SET list, not several statements"));
    };
    let update = unsafe { cast::<pg_sys::UpdateStmt>(one.node, NodeTag::T_UpdateStmt) }
        .ok_or_else(|| bad("must be a SET list"))?;
    // PostgreSQL 18 keeps RETURNING in a ReturningClause node (returningClause) instead of a list.
    #[cfg(not(feature = "pg18"))]
    let returning = !update.returningList.is_null();
    #[cfg(feature = "pg18")]
    let returning = !update.returningClause.is_null();
    if !update.whereClause.is_null() || !update.fromClause.is_null() || returning || !update.withClause.is_null() {
        return Err(bad("must be only a SET list: the backfill chooses the rows (use the filter argument for WHERE)"));
    }
    let items = unsafe { nodes::list::<pg_sys::ResTarget>(update.targetList) };
    let starts: Vec<usize> = items.iter().map(|t| unsafe { (**t).location.max(0) as usize }).collect();
    let mut targets = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item = unsafe { &**item };
        let column = unsafe { nodes::cstr(item.name) }.unwrap_or_default();
        if !item.indirection.is_null() {
            return Err(bad(&format!("set a part of column \"{column}\" (a subscript or field); set whole columns")));
        }
        match unsafe { nodes::tag(item.val) } {
            NodeTag::T_MultiAssignRef => return Err(bad("use (a, b) = (…); write one column = expression per column")),
            NodeTag::T_SetToDefault => {
                return Err(bad(&format!("set \"{column}\" to DEFAULT; write the default's expression instead")))
            }
            _ => {}
        }
        let end = starts.get(i + 1).copied().unwrap_or(whole.len());
        let expression = expression_after_equals(&whole[starts[i]..end], i + 1 < items.len())
            .ok_or_else(|| bad(&format!("could not be read at column \"{column}\"")))?;
        check_expression("assignment", &format!("of column \"{column}\""), &expression)?;
        if targets.iter().any(|t: &Target| t.column == column) {
            return Err(bad(&format!("set column \"{column}\" twice")));
        }
        targets.push(Target { column, expression });
    }
    Ok(targets)
}

/// The expression of `column = expression [,]`: the column name (maybe quoted) and `=` are
/// skipped, as is the comma before the next assignment.
fn expression_after_equals(item: &str, followed: bool) -> Option<String> {
    let b = item.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'"') {
        i = 1;
        loop {
            match b.get(i)? {
                b'"' if b.get(i + 1) == Some(&b'"') => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        i += 1;
    } else {
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80) {
            i += 1;
        }
    }
    i = first_token(item, i);
    if b.get(i) != Some(&b'=') {
        return None;
    }
    let mut rest = item[i + 1..].trim_end();
    if followed {
        rest = rest.strip_suffix(',')?.trim_end();
    }
    let rest = rest.trim_start();
    (!rest.is_empty()).then(|| rest.to_string())
}

/// The filter: one boolean expression (checked to be one expression here, to be boolean when
/// the backfill is tried on its table).
pub fn filter(filter: Option<&str>) -> Result<Option<String>> {
    let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    check_expression("filter", "", filter)?;
    Ok(Some(filter.to_string()))
}

/// One expression, checked on the parse tree (see `safety::expression`).
fn check_expression(what: &str, of: &str, expression: &str) -> Result<()> {
    let label = format!("the backfill's {what} {of}").trim_end().to_string();
    crate::safety::expression::check_single(&label, expression)
}

/// The SET list pg_migrate runs: every column quoted, every expression in parentheses on lines
/// of its own.
pub fn set_list(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| format!("{} = (\n{}\n)", pgrx::spi::quote_identifier(&t.column), t.expression))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Options of `backfill_start`, with the migrate.backfill_* settings as defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub pace: Pace,
    pub manual: bool,
}

const OPTION_KEYS: &str = "batch_size, batch_time_ms, sleep_ms, max_replica_lag_ms, manual";

pub fn options(json: Option<&serde_json::Value>) -> Result<Options> {
    let mut o = Options {
        pace: Pace {
            batch_size: FIRST_BATCH,
            fixed_batch: false,
            batch_time_ms: gucs::backfill_batch_time_ms(),
            sleep_ms: gucs::backfill_sleep_ms(),
            max_replica_lag_ms: gucs::backfill_max_replica_lag_ms(),
        },
        manual: false,
    };
    let Some(json) = json.filter(|j| !j.is_null()) else {
        return Ok(o);
    };
    let bad = |why: String| {
        Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("invalid backfill options: {why}"))
            .detail(format!("Options: {json}"))
            .hint(format!("Options is a JSON object with any of: {OPTION_KEYS}. Times are in milliseconds."))
    };
    let map = json.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
    for (key, value) in map {
        let int = |min: i64, max: i64| {
            value
                .as_i64()
                .filter(|v| (min..=max).contains(v))
                .map(|v| v as i32)
                .ok_or_else(|| bad(format!("{key} must be a whole number from {min} to {max}, got {value}")))
        };
        match key.as_str() {
            "batch_size" => {
                o.pace.batch_size = int(1, MAX_BATCH.into())?;
                o.pace.fixed_batch = true;
            }
            "batch_time_ms" => o.pace.batch_time_ms = int(10, 60_000)?,
            "sleep_ms" => o.pace.sleep_ms = int(0, gucs::BACKFILL_SLEEP_MAX_MS.into())?,
            "max_replica_lag_ms" => o.pace.max_replica_lag_ms = int(0, i32::MAX.into())?,
            "manual" => o.manual = value.as_bool().ok_or_else(|| bad(format!("manual must be true or false, got {value}")))?,
            _ => return Err(bad(format!("unknown option \"{key}\""))),
        }
    }
    Ok(o)
}
