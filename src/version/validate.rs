//! Input checks that run before anything else, so bad input changes nothing.

use crate::error::{Failure, Result};
use crate::gucs;
use pgrx::PgSqlErrorCode;

pub const MAX_VERSION_LEN: usize = 200;

/// A version is 1–200 characters of letters, digits and `_ . -` (what Flyway, Knex, Alembic,
/// golang-migrate and Sqitch produce); anything else is almost certainly a mistake.
pub fn version(version: Option<&str>) -> Result<&str> {
    let v = version.ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, "migration version must not be NULL")
            .hint("Pass a version such as '20240115143000_add_status'.")
    })?;
    if v.is_empty() {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "migration version must not be empty")
            .hint("Pass a version such as '20240115143000_add_status'."));
    }
    if v.chars().count() > MAX_VERSION_LEN {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migration version is too long ({} characters)", v.chars().count()),
        )
        .detail(format!("Versions are at most {MAX_VERSION_LEN} characters."))
        .hint("Use a timestamp or a number with a short name, such as '20240115143000_add_status'."));
    }
    if let Some(bad) = v.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        // Control characters are shown escaped so the message stays on one line.
        let shown: String = v
            .chars()
            .take(60)
            .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
            .collect();
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migration version \"{shown}\" contains the character {:?}", bad),
        )
        .detail("Versions may contain ASCII letters, digits, '_', '.' and '-'.")
        .hint("Use a timestamp or a number with a short name, such as '20240115143000_add_status'."));
    }
    Ok(v)
}

/// An up or down script: present, not blank, not larger than `migrate.max_script_size`.
pub fn script<'a>(what: &str, version: &str, sql: Option<&'a str>) -> Result<&'a str> {
    let sql = sql.ok_or_else(|| {
        Failure::new(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{what} SQL of version \"{version}\" must not be NULL"),
        )
    })?;
    if sql.trim().is_empty() {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{what} SQL of version \"{version}\" is empty"),
        )
        .hint("Pass the SQL statements of the migration."));
    }
    let max = gucs::max_script_bytes();
    if sql.len() > max {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("{what} SQL of version \"{version}\" is too large ({} bytes)", sql.len()),
        )
        .detail(format!("migrate.max_script_size is {} kB ({max} bytes).", max / 1024))
        .hint("Schema migrations should be small; load bulk data with COPY or a backfill, or raise migrate.max_script_size for this session."));
    }
    Ok(sql)
}

/// A down script is optional; a blank one counts as none.
pub fn optional_script<'a>(what: &str, version: &str, sql: Option<&'a str>) -> Result<Option<&'a str>> {
    match sql {
        Some(s) if !s.trim().is_empty() => script(what, version, Some(s)).map(Some),
        _ => Ok(None),
    }
}

/// Default name of a migration: what follows the first '_' of its version
/// ('20240115143000_add_status' → 'add_status'), else none.
pub fn default_name(version: &str) -> Option<String> {
    version.split_once('_').map(|(_, rest)| rest.trim_start_matches('_').to_string()).filter(|s| !s.is_empty())
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn versions() {
        assert!(version(Some("20240115143000_add_status")).is_ok());
        assert!(version(Some("V1.2-3")).is_ok());
        assert!(version(None).is_err());
        assert!(version(Some("")).is_err());
        assert!(version(Some("1; DROP TABLE x")).is_err());
        assert!(version(Some("café")).is_err());
        assert!(version(Some(&"9".repeat(201))).is_err());
        assert_eq!(default_name("20240115143000_add_status").as_deref(), Some("add_status"));
        assert_eq!(default_name("V2__init").as_deref(), Some("init"));
        assert_eq!(default_name("42"), None);
    }
}
