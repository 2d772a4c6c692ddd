//! `expand_column`: a rename, a type change or both, as an expand now and a contract later.
//!
//! The expand adds the new column (nullable, no default: no table rewrite), installs the sync
//! trigger and starts a backfill of the rows that exist. The old column's default moves into the
//! trigger while the change is open: with a default on the old column, an INSERT that sets only
//! the new column would arrive with both set, and the trigger could not tell which one the
//! application wrote. Abort puts it back; contract puts it on the new column.

use super::facts::{Column, Table};
use super::rewrite::quote;
use super::spec::ExpandSpec;
use super::trigger::{self, Sync};
use crate::catalog::changes::{self, New};
use crate::ddl::retry::run_generated;
use crate::ddl::session::with_pinned_search_path;
use crate::ddl::subxact;
use crate::error::{notice, Failure, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

pub struct Request<'a> {
    pub table: pg_sys::Oid,
    pub column: &'a str,
    pub new_name: Option<&'a str>,
    pub new_type: Option<&'a str>,
    pub up: Option<&'a str>,
    pub down: Option<&'a str>,
    pub backfill: Option<&'a serde_json::Value>,
}

pub fn expand(r: &Request) -> Result<i64> {
    let (table, old) = with_pinned_search_path(|| -> Result<(Table, Column)> {
        let table = Table::of(r.table)?;
        let old = table.column(r.column)?;
        Ok((table, old))
    })?;
    old.refuse_computed(&table, "expand_column cannot sync it")?;
    with_pinned_search_path(|| super::facts::refuse_partition_key(&table, &old))?;
    super::refuse_second_change(&table)?;
    if r.new_name.is_none() && r.new_type.is_none() {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "expand_column needs new_name, new_type or both")
            .hint("Pass new_name => 'new name' to rename the column, new_type => 'bigint' to change its type."));
    }
    let new_type = match r.new_type {
        Some(t) => keep_collation(&table, &old, super::spec::type_name(t)?),
        None => old.type_sql.clone(),
    };
    // A type change alone still needs a second column while both versions run; it takes the
    // old column's name at contract.
    let new = r.new_name.map(str::to_string).unwrap_or_else(|| format!("{}_new", r.column));
    super::rewrite::check_identifier(if r.new_name.is_some() { "new_name" } else { "the new column's name" }, &new)?;
    if new == r.column {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("new_name is the column's current name {}", quote(&new)))
            .hint("Pass a different new_name, or leave it NULL to change only the type."));
    }
    if with_pinned_search_path(|| table.has_column(&new)) {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN, format!("column {} of table {} already exists", quote(&new), table.name))
            .hint("Nothing was changed. Pick another new_name (or drop the leftover column)."));
    }
    let same_type = r.new_type.is_none();
    let up = given_or(r.up, "up", || if same_type { quote(r.column) } else { format!("{}::{new_type}", quote(r.column)) })?;
    let down = given_or(r.down, "down", || if same_type { quote(&new) } else { format!("{}::{}", quote(&new), old.type_sql) })?;

    // Checked before anything changes: the cast (or the user's up) must work on this table.
    try_expression(&table, &up, "up", &old, &new_type, r.up.is_none())?;

    let mut add = format!("ALTER TABLE {} ADD COLUMN {} {new_type}", table.name, quote(&new));
    if old.default.is_some() {
        add.push_str(&format!(", ALTER COLUMN {} DROP DEFAULT", quote(r.column)));
    }
    run_generated(&format!("adding column {} to {}", quote(&new), table.name), &add)?;
    // Roles with privileges on the old column only get them on the new one, for the application
    // version that uses it; abort drops them with the column.
    for grant in with_pinned_search_path(|| super::carry::grant_sql(&table, old.attnum, &new)) {
        run_generated(&format!("granting the privileges of {} on {}", quote(r.column), quote(&new)), &grant)?;
    }
    try_expression(&table, &down, "down", &old, &old.type_sql, r.down.is_none())?;

    let job = crate::backfill::api::start_on(
        table.oid,
        &table.name,
        Some(&format!("{} = (\n{up}\n)", quote(&new))),
        None,
        r.backfill,
    )?;
    let change = changes::next_id();
    let made = trigger::create(&Sync {
        change,
        table: &table,
        old: r.column,
        new: &new,
        up: &up,
        down: &down,
        old_default: old.default.as_deref(),
        backfill_job: job,
    })?;
    if let Some(function) = &made.function {
        run_generated("creating the sync trigger's function", function)?;
    }
    run_generated(&format!("creating the sync trigger on {}", table.name), &made.triggers)?;

    let spec = ExpandSpec {
        old_type: old.type_sql.clone(),
        new_type: new_type.clone(),
        up: up.clone(),
        down: down.clone(),
        old_default: old.default.clone(),
        not_null: old.not_null,
        final_name: r.new_name.unwrap_or(r.column).to_string(),
        search_path: Spi::get_one::<String>("SELECT pg_catalog.current_setting('search_path')").ok().flatten(),
        contract: None,
    };
    changes::insert(change, &New {
        kind: "expand_column",
        relation: table.oid,
        table_name: &table.name,
        column_name: Some(r.column),
        new_column: Some(&new),
        object_name: None,
        spec: serde_json::to_value(&spec).expect("spec serialises"),
        phase: "open",
        backfill_job: Some(job),
        job: None,
    });
    notice(format!(
        "pg_migrate: change {change}: column {} of {} is kept in step with {} by trigger {}; backfill job {job} fills it. When the backfill is done: SELECT migrate.contract({change}); to undo: SELECT migrate.abort({change})",
        quote(&new),
        table.name,
        quote(r.column),
        quote(&trigger::trigger_name(change))
    ));
    say_if_published(&table, &new);
    Ok(change)
}

/// Logical replication does not carry DDL: a subscriber must get the new column before the
/// publisher sends it (docs/ha.md). Said, not refused: pg_migrate cannot reach the subscribers.
pub fn say_if_published(table: &Table, column: &str) {
    let publications = crate::safety::lookup::publications(table.oid);
    if !publications.is_empty() {
        notice(format!(
            "pg_migrate: {} is in publication {}: logical replication does not carry DDL, so add column {} on every subscriber of it too (see docs/ha.md, Logical replication)",
            table.name,
            publications.join(", "),
            quote(column)
        ));
    }
}

/// `new_type` with the old column's collation when the old one had a collation other than its
/// type's default, the new type is collatable and names no collation itself: changing the type
/// must not change how the column sorts and compares (a later ALTER to fix it would rewrite).
fn keep_collation(table: &Table, old: &Column, new_type: String) -> String {
    if super::spec::has_collate(&new_type) {
        return new_type;
    }
    let collate = Spi::get_one_with_args::<String>(
        "SELECT ' COLLATE ' || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(co.collname)
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
           JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
           JOIN pg_catalog.pg_namespace n ON n.oid = co.collnamespace
          WHERE a.attrelid = $1 AND a.attnum = $2 AND a.attcollation <> t.typcollation
            AND (SELECT nt.typcollation FROM pg_catalog.pg_type nt WHERE nt.oid = pg_catalog.to_regtype($3)) <> 0",
        &[table.oid.into(), old.attnum.into(), new_type.as_str().into()],
    )
    .ok()
    .flatten();
    match collate {
        Some(c) => format!("{new_type}{c}"),
        None => new_type,
    }
}

/// The user's expression, checked to be exactly one expression, or the default one.
fn given_or(given: Option<&str>, label: &str, default: impl FnOnce() -> String) -> Result<String> {
    match given.filter(|g| !g.trim().is_empty()) {
        Some(g) => {
            super::rewrite::referenced(g, label)?;
            Ok(g.trim().to_string())
        }
        None => Ok(default()),
    }
}

/// Evaluates `expr` (cast to `to`) over no rows of the table, as the caller: a missing cast, an
/// unknown column or function, or a missing privilege shows now.
fn try_expression(table: &Table, expr: &str, label: &str, old: &Column, to: &str, defaulted: bool) -> Result<()> {
    let sql = format!("SELECT (\n{expr}\n)::{to} FROM {} WHERE false", table.name);
    subxact::run(|| {
        if let Err(e) = Spi::run(&sql) {
            pgrx::error!("{e}");
        }
    })
    .map(|_| ())
    .map_err(|c| {
        let message = if defaulted {
            format!("column {} of table {} ({}) cannot be converted to {to} by a cast: {}", quote(&old.name), table.name, old.type_sql, c.message)
        } else {
            format!("the {label} expression does not work on table {}: {}", table.name, c.message)
        };
        Failure::new(c.code, message).detail(format!("Tried: {}", crate::ddl::retry::fragment(&sql))).hint(if defaulted {
            "Nothing was changed. Pass up => an expression that computes the new value from the old column, and down => one that computes the old value from the new column."
        } else {
            "Nothing was changed. up is evaluated over the table's columns and must give a value of the new type; down one of the old type."
        })
    })
}
