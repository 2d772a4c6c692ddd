//! `migrate.lint(sql)`: parse a migration with the server's own raw parser and report the
//! patterns that take production down (see `rules`), without running anything.

use super::allow;
use super::checks::{self, Runner};
use super::context::{Finding, Script};
use super::facts;
use crate::ddl::script;
use crate::error::{OrRaise, Result};
use pgrx::prelude::*;

/// Lints `sql`; `label` names the script in syntax error messages.
pub fn lint(label: &str, sql: &str, runner: Runner) -> Result<Vec<Finding>> {
    let parsed = script::split(label, sql)?;
    let mut script = Script::new(sql);
    let mut statement_facts = Vec::with_capacity(parsed.len());
    for p in &parsed {
        script.enter(&p.statement);
        unsafe {
            checks::statement(&mut script, p.node);
            statement_facts.push((&p.statement, facts::of(&script, p.node)));
            script.remember(p.node);
        }
    }
    checks::script(&mut script, &statement_facts, runner);
    let mut findings = script.into_findings();
    findings.sort_by_key(|f| (f.statement, f.line));
    Ok(findings)
}

/// One row per finding: where, which rule, how bad, why, and what to do instead. Findings a
/// `-- migrate:allow` comment in the SQL accepts are still listed, marked as allowed.
#[pg_extern(name = "lint")]
fn lint_sql(
    sql: &str,
) -> TableIterator<
    'static,
    (
        name!(statement, i32),
        name!(line, i32),
        name!(rule, String),
        name!(severity, String),
        name!(message, String),
        name!(hint, String),
    ),
> {
    let label = "linted SQL";
    let allowed = allow::allowed(label, sql).or_raise();
    let findings = lint(label, sql, Runner::Unknown).or_raise();
    TableIterator::new(findings.into_iter().map(move |f| {
        let mut message = f.message;
        if let Some((_, line)) = allowed.iter().find(|(r, _)| *r == f.rule) {
            message.push_str(&format!(" (allowed by the -- migrate:allow comment at line {line})"));
        }
        (
            f.statement as i32,
            f.line as i32,
            f.rule.name.to_string(),
            f.rule.severity.as_str().to_string(),
            message,
            f.rule.hint.to_string(),
        )
    }))
}
