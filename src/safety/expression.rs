//! One SQL expression that pg_migrate will place inside a statement of its own (a backfill's
//! UPDATE, contract's last check, a sync trigger, a CHECK constraint).
//!
//! Checking `SELECT (<expr>)` is not enough: `true) OR (true` makes `SELECT (true) OR (true)`, one
//! expression, yet inside `WHERE <range> AND (<expr>)` it becomes `(<range> AND (true)) OR (true)`
//! and escapes the range. So the text must parse *on its own*, as the whole target list of a bare
//! `SELECT`: then every token of it belongs to one grammatical expression, whose parentheses are
//! balanced, and wherever pg_migrate writes `(\n<expr>\n)` that is exactly one parenthesised
//! sub-node of its statement. The newlines end a trailing `--` comment the same way in both.

use crate::ddl::script::split_after;
use crate::error::{Failure, Result};
use crate::safety::nodes::{self, cast};
use pgrx::pg_sys::{self, NodeTag};
use pgrx::PgSqlErrorCode;

const PREFIX: &str = "SELECT\n";

/// Refuses anything but one expression: `SELECT\n<expr>\n` must be a SELECT of exactly one
/// unnamed column and nothing else. `label` names it in errors ("the backfill's filter").
pub fn check_single(label: &str, expression: &str) -> Result<()> {
    let parsed = split_after(label, PREFIX, &format!("{expression}\n"))?;
    let ok = match parsed.as_slice() {
        [one] => unsafe { cast::<pg_sys::SelectStmt>(one.node, NodeTag::T_SelectStmt) }.is_some_and(|s| unsafe { only_one_target(s) }),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(Failure::new(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR, format!("{label} is not a single SQL expression"))
        .detail(format!("Expression: {}", crate::ddl::retry::fragment(expression)))
        .hint("Pass one expression such as lower(email) or status IS NULL, with balanced parentheses; subqueries go in parentheses. Nothing was changed."))
}

unsafe fn only_one_target(s: &pg_sys::SelectStmt) -> bool {
    unsafe {
        let targets = nodes::list::<pg_sys::ResTarget>(s.targetList);
        targets.len() == 1
            && (*targets[0]).name.is_null()
            && s.distinctClause.is_null()
            && s.intoClause.is_null()
            && s.fromClause.is_null()
            && s.whereClause.is_null()
            && s.groupClause.is_null()
            && s.havingClause.is_null()
            && s.windowClause.is_null()
            && s.valuesLists.is_null()
            && s.sortClause.is_null()
            && s.limitOffset.is_null()
            && s.limitCount.is_null()
            && s.lockingClause.is_null()
            && s.withClause.is_null()
            && s.op == pg_sys::SetOperation::SETOP_NONE
    }
}
