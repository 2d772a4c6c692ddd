//! `add_column`: a new column without a table rewrite or a long lock.
//!
//! A default that is not volatile is stored once in the catalog (PostgreSQL 11+ "fast default"):
//! existing rows read it without being rewritten. A volatile default (random(), a sequence)
//! would make ADD COLUMN rewrite the whole table under an ACCESS EXCLUSIVE lock, so the column
//! is added without it, new rows get it from SET DEFAULT and a backfill fills the rows that
//! exist. NOT NULL comes at contract: CHECK NOT VALID, VALIDATE in a worker, SET NOT NULL.

use super::facts::Table;
use super::rewrite::quote;
use super::spec::ExpandSpec;
use crate::catalog::changes::{self, New};
use crate::ddl::retry::run_generated;
use crate::ddl::session::with_pinned_search_path;
use crate::ddl::subxact;
use crate::error::{notice, Failure, Result};
use pgrx::prelude::*;
use pgrx::{PgList, PgSqlErrorCode};
use std::ffi::CString;

pub struct Request<'a> {
    pub table: pg_sys::Oid,
    pub column: &'a str,
    pub type_name: &'a str,
    pub default: Option<&'a str>,
    pub not_null: bool,
}

pub fn add_column(r: &Request) -> Result<i64> {
    let table = with_pinned_search_path(|| Table::of(r.table))?;
    super::rewrite::check_identifier("column name", r.column)?;
    super::refuse_second_change(&table)?;
    if with_pinned_search_path(|| table.has_column(r.column)) {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN, format!("column {} of table {} already exists", quote(r.column), table.name))
            .hint("Nothing was changed."));
    }
    let type_sql = super::spec::type_name(r.type_name)?;
    let default = match r.default.filter(|d| !d.trim().is_empty()) {
        Some(d) => {
            super::rewrite::referenced(d, "default_value")?;
            Some(d.trim().to_string())
        }
        None => None,
    };
    if r.not_null && default.is_none() && with_pinned_search_path(|| table.has_rows()) {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
            format!("column {} of table {} cannot be NOT NULL without a default: the table has rows", quote(r.column), table.name),
        )
        .hint("Nothing was changed. Pass default_value => an expression for the existing rows, or add the column nullable and fill it with migrate.backfill_start first."));
    }
    let volatile = match &default {
        Some(d) => is_volatile(d, &type_sql)?,
        None => false,
    };
    let column = quote(r.column);
    let add = match (&default, volatile) {
        (Some(d), false) => format!("ALTER TABLE {} ADD COLUMN {column} {type_sql} DEFAULT {d}", table.name),
        (Some(d), true) => format!("ALTER TABLE {} ADD COLUMN {column} {type_sql}, ALTER COLUMN {column} SET DEFAULT {d}", table.name),
        (None, _) => format!("ALTER TABLE {} ADD COLUMN {column} {type_sql}", table.name),
    };
    run_generated(&format!("adding column {column} to {}", table.name), &add)?;
    let backfill_job = match (&default, volatile) {
        (Some(d), true) => Some(crate::backfill::api::start_on(
            table.oid,
            &table.name,
            Some(&format!("{column} = (\n{d}\n)")),
            Some(&format!("{column} IS NULL")),
            None,
        )?),
        _ => None,
    };
    let change = changes::next_id();
    let open = r.not_null || backfill_job.is_some();
    let spec = ExpandSpec {
        new_type: type_sql,
        up: default.clone().unwrap_or_default(),
        not_null: r.not_null,
        final_name: r.column.to_string(),
        ..Default::default()
    };
    changes::insert(change, &New {
        kind: "add_column",
        relation: table.oid,
        table_name: &table.name,
        column_name: Some(r.column),
        new_column: None,
        object_name: None,
        spec: serde_json::to_value(&spec).expect("spec serialises"),
        phase: if open { "open" } else { "done" },
        backfill_job,
        job: None,
    });
    let next = match (backfill_job, r.not_null) {
        (Some(job), true) => format!("backfill job {job} fills the existing rows; then SELECT migrate.contract({change}) makes it NOT NULL"),
        (Some(job), false) => format!("backfill job {job} fills the existing rows; then SELECT migrate.contract({change}) closes the change"),
        (None, true) => format!("SELECT migrate.contract({change}) makes it NOT NULL (validated in a worker, no long lock)"),
        (None, false) => "nothing else to do".to_string(),
    };
    notice(format!("pg_migrate: change {change}: column {column} added to {} without rewriting it; {next}", table.name));
    super::column::say_if_published(&table, r.column);
    Ok(change)
}

/// Whether `expr` cast to `type_sql` calls a volatile function (then ADD COLUMN ... DEFAULT
/// would rewrite the table). Parse analysis only: nothing is evaluated.
fn is_volatile(expr: &str, type_sql: &str) -> Result<bool> {
    let sql = format!("SELECT (\n{expr}\n)::{type_sql}");
    let c_sql = CString::new(sql.as_str()).map_err(|_| Failure::new(PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE, "default_value contains a NUL byte"))?;
    subxact::run(|| unsafe {
        let raw = PgList::<pg_sys::RawStmt>::from_pg(pg_sys::pg_parse_query(c_sql.as_ptr()));
        let Some(stmt) = raw.get_ptr(0) else { return false };
        let query = pg_sys::parse_analyze_fixedparams(stmt, c_sql.as_ptr(), std::ptr::null(), 0, std::ptr::null_mut());
        let targets = PgList::<pg_sys::TargetEntry>::from_pg((*query).targetList);
        targets.get_ptr(0).is_some_and(|te| pg_sys::contain_volatile_functions((*te).expr as *mut pg_sys::Node))
    })
    .map_err(|c| {
        Failure::new(c.code, format!("default_value does not work: {}", c.message))
            .detail(format!("Tried: {}", crate::ddl::retry::fragment(&sql)))
            .hint("Nothing was changed. Pass an expression of the column's type, for example '0', 'now()' or 'gen_random_uuid()'.")
    })
}
