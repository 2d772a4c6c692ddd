//! SQL functions of expand/contract changes. Those that take SQL text from the user (expressions,
//! type names, index definitions) have no SET search_path clause: the text resolves names with
//! the caller's search_path, as it would in their own migration; pg_migrate's catalog queries
//! pin it (see `facts`). The others pin it.

use super::{abort, add, column, contract, objects};
use crate::error::{Failure, OrRaise, Result};
use pgrx::prelude::*;
use pgrx::{JsonB, PgRelation, PgSqlErrorCode};

pgrx::extension_sql_file!("../../sql/changes.sql", name = "changes", requires = ["backfill", contract_plan]);

/// The relation's OID, with the relation closed again: pgrx opens regclass arguments, and ALTER
/// TABLE refuses a table that the session still has open.
fn oid(rel: Option<PgRelation>, what: &str) -> Result<pg_sys::Oid> {
    let rel = required(rel, what)?;
    let oid = rel.oid();
    drop(rel);
    Ok(oid)
}

fn required<T>(value: Option<T>, what: &str) -> Result<T> {
    value.ok_or_else(|| Failure::new(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, format!("{what} must not be NULL")))
}

/// Renames a column, changes its type, or both, without breaking the application version that
/// still uses the old column. Returns the change id.
#[pg_extern(name = "expand_column")]
fn expand_column(
    tbl: Option<PgRelation>,
    col: Option<&str>,
    new_name: default!(Option<&str>, "NULL"),
    new_type: default!(Option<&str>, "NULL"),
    up: default!(Option<&str>, "NULL"),
    down: default!(Option<&str>, "NULL"),
    backfill: default!(Option<JsonB>, "'{}'"),
) -> i64 {
    (|| {
        column::expand(&column::Request {
            table: oid(tbl, "tbl")?,
            column: required(col, "col")?,
            new_name: new_name.filter(|n| !n.is_empty()),
            new_type: new_type.filter(|t| !t.trim().is_empty()),
            up,
            down,
            backfill: backfill.as_ref().map(|j| &j.0),
        })
    })()
    .or_raise()
}

/// Ends a change once its backfill is done: builds what the old column had on the new one in a
/// job, then swaps in one short transaction. Returns the job id.
#[pg_extern(name = "contract")]
#[search_path(pg_catalog, pg_temp)]
fn contract(change: Option<i64>) -> i64 {
    required(change, "change").and_then(contract::contract).or_raise()
}

/// The contract job's last step (not for direct use).
#[pg_extern(name = "finish_contract")]
#[search_path(pg_catalog, pg_temp)]
fn finish_contract(change: Option<i64>) {
    required(change, "change").and_then(contract::finish).or_raise()
}

/// What `contract(change)` would do now, one clause per step; an error explains why it cannot.
#[pg_extern(name = "contract_plan", stable)]
#[search_path(pg_catalog, pg_temp)]
fn contract_plan(change: Option<i64>) -> String {
    let plan = (|| {
        let c = crate::catalog::changes::get(required(change, "change")?).ok_or_else(|| {
            Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, "change does not exist or belongs to another role")
        })?;
        let table = super::facts::Table::of(c.relation_oid())?;
        contract::plan(&c, &table, &contract::spec_of(&c))
    })();
    match plan {
        Ok(p) if p.said.is_empty() => "close the change".to_string(),
        Ok(p) => p.said.join("; "),
        Err(f) => format!("cannot contract: {}{}", f.message, f.detail.map(|d| format!(" ({d})")).unwrap_or_default()),
    }
}

/// Undoes an open change: the table is as it was before it.
#[pg_extern(name = "abort")]
#[search_path(pg_catalog, pg_temp)]
fn abort_change(change: Option<i64>) -> String {
    required(change, "change").and_then(abort::abort).or_raise()
}

/// Adds a column without rewriting the table; NOT NULL comes at contract. Returns the change id.
#[pg_extern(name = "add_column")]
fn add_column(
    tbl: Option<PgRelation>,
    col: Option<&str>,
    r#type: Option<&str>,
    default_value: default!(Option<&str>, "NULL"),
    not_null: default!(Option<bool>, "false"),
) -> i64 {
    (|| {
        add::add_column(&add::Request {
            table: oid(tbl, "tbl")?,
            column: required(col.filter(|c| !c.is_empty()), "col")?,
            type_name: required(r#type, "type")?,
            default: default_value,
            not_null: not_null.unwrap_or(false),
        })
    })()
    .or_raise()
}

/// Adds a CHECK constraint NOT VALID now and validates it in a job. Returns the change id.
#[pg_extern(name = "add_check")]
fn add_check(tbl: Option<PgRelation>, name: Option<&str>, expression: Option<&str>) -> i64 {
    oid(tbl, "tbl").and_then(|t| objects::add_check(t, name, expression)).or_raise()
}

/// Adds a foreign key NOT VALID now and validates it in a job. Returns the change id.
#[pg_extern(name = "add_foreign_key")]
#[search_path(pg_catalog, pg_temp)]
fn add_foreign_key(
    tbl: Option<PgRelation>,
    cols: Option<Vec<String>>,
    ref_tbl: Option<PgRelation>,
    ref_cols: default!(Option<Vec<String>>, "NULL"),
    name: default!(Option<&str>, "NULL"),
    on_delete: default!(Option<&str>, "NULL"),
) -> i64 {
    (|| {
        objects::add_foreign_key(&objects::ForeignKey {
            table: oid(tbl, "tbl")?,
            columns: required(cols, "cols")?,
            references: oid(ref_tbl, "ref_tbl")?,
            ref_columns: ref_cols,
            name: name.filter(|n| !n.is_empty()),
            on_delete,
        })
    })()
    .or_raise()
}

/// Builds an index concurrently in a job. `definition` is what follows `ON table`.
#[pg_extern(name = "create_index")]
fn create_index(
    tbl: Option<PgRelation>,
    definition: Option<&str>,
    name: default!(Option<&str>, "NULL"),
    is_unique: default!(Option<bool>, "false"),
) -> i64 {
    oid(tbl, "tbl").and_then(|t| objects::create_index(t, definition, name, is_unique.unwrap_or(false))).or_raise()
}

/// Drops an index concurrently in a job.
#[pg_extern(name = "drop_index")]
#[search_path(pg_catalog, pg_temp)]
fn drop_index(idx: Option<PgRelation>) -> i64 {
    oid(idx, "idx").and_then(objects::drop_index).or_raise()
}

/// Soft-drops a column: renamed to `<col>_deprecated` with its data, until purge_deprecated.
#[pg_extern(name = "drop_column")]
#[search_path(pg_catalog, pg_temp)]
fn drop_column(tbl: Option<PgRelation>, col: Option<&str>) -> i64 {
    oid(tbl, "tbl").and_then(|t| objects::drop_column(t, col)).or_raise()
}

/// Drops soft-dropped columns for real (of `tbl`, or of every table). Returns them.
#[pg_extern(name = "purge_deprecated")]
#[search_path(pg_catalog, pg_temp)]
fn purge_deprecated(tbl: default!(Option<PgRelation>, "NULL")) -> SetOfIterator<'static, String> {
    let table = tbl.map(|t| oid(Some(t), "tbl")).transpose();
    SetOfIterator::new(table.and_then(objects::purge_deprecated).or_raise())
}

/// Appends a value to an enum type (enum values are append-only).
#[pg_extern(name = "add_enum_value")]
fn add_enum_value(
    typ: Option<&str>,
    value: Option<&str>,
    before: default!(Option<&str>, "NULL"),
    after: default!(Option<&str>, "NULL"),
) -> i64 {
    (|| {
        let typ = required(typ, "typ")?;
        let oid = Spi::get_one_with_args::<pg_sys::Oid>("SELECT pg_catalog.to_regtype($1)::oid", &[typ.into()]).ok().flatten().ok_or_else(|| {
            Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("type \"{typ}\" does not exist")).hint("Pass the enum type's name, schema-qualified if it is not on your search_path.")
        })?;
        objects::add_enum_value(oid, value, before, after)
    })()
    .or_raise()
}
