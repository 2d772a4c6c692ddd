//! Lint as a gate in front of `migrate.apply()`: error-level findings refuse the migration unless
//! its up SQL allows the rule with a `-- migrate:allow <rule>` comment; warnings become NOTICEs.
//! The allowed rules that the migration really breaks are recorded with the version.

use super::allow;
use super::checks::Runner;
use super::context::Finding;
use super::lint::lint;
use super::rules::Severity;
use crate::error::{notice, Failure, Result};
use pgrx::PgSqlErrorCode;

/// Lints the up SQL of `version` before it runs. Returns the names of the rules it breaks with
/// permission (sorted, each once), to be recorded in `migrate.migrations.lint_accepted`.
pub fn check(version: &str, up: &str) -> Result<Vec<String>> {
    let label = format!("up SQL of version \"{version}\"");
    let allowed = allow::allowed(&label, up)?;
    let findings = lint(&label, up, Runner::PgMigrate)?;
    let is_allowed = |f: &Finding| allowed.iter().any(|(rule, _)| *rule == f.rule);

    let refused: Vec<&Finding> =
        findings.iter().filter(|f| f.rule.severity == Severity::Error && !is_allowed(f)).collect();
    if let Some(first) = refused.first() {
        let mut rules: Vec<&str> = Vec::new();
        for f in &refused {
            if !rules.contains(&f.rule.name) {
                rules.push(f.rule.name);
            }
        }
        let more = match refused.len() {
            1 => String::new(),
            n => format!(" (and {} more finding{})", n - 1, if n > 2 { "s" } else { "" }),
        };
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
            format!(
                "{label} breaks lint rule {} at statement {} (line {}){more}",
                first.rule.name, first.statement, first.line
            ),
        )
        .detail(refused.iter().map(|f| describe(f)).collect::<Vec<_>>().join("\n"))
        .hint(format!(
            "{} Nothing was run. To apply it anyway, add the comment line -- migrate:allow {} to the up SQL.",
            first.rule.hint,
            rules.join(", ")
        )));
    }

    for f in findings.iter().filter(|f| !is_allowed(f)) {
        notice(format!("pg_migrate: lint warning for version \"{version}\": {}", describe(f)));
    }
    let mut accepted: Vec<String> = findings.iter().filter(|f| is_allowed(f)).map(|f| f.rule.name.to_string()).collect();
    accepted.sort();
    accepted.dedup();
    if !accepted.is_empty() {
        notice(format!(
            "pg_migrate: version \"{version}\" breaks lint rule(s) {} with permission (-- migrate:allow)",
            accepted.join(", ")
        ));
    }
    Ok(accepted)
}

fn describe(f: &Finding) -> String {
    format!("statement {} (line {}) {}: {}", f.statement, f.line, f.rule.name, f.message)
}
