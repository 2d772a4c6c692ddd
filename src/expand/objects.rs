//! One-shot changes: constraints added NOT VALID and validated in a worker, indexes built and
//! dropped concurrently in a worker, soft column drops, enum values. Each is recorded so that
//! `abort` (and a migration's generated down SQL) can undo it.

use super::facts::{self, Table};
use super::rewrite::{quote, shorten, MAX_IDENTIFIER};
use crate::catalog::changes::{self, New};
use crate::ddl::retry::run_generated;
use crate::ddl::script;
use crate::ddl::session::with_pinned_search_path;
use crate::error::{notice, Failure, Result};
use crate::safety::nodes;
use pgrx::pg_sys::{self, NodeTag};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::json;

struct Made<'a> {
    kind: &'a str,
    table: &'a Table,
    column: Option<&'a str>,
    new_column: Option<&'a str>,
    object: Option<&'a str>,
    spec: serde_json::Value,
    phase: &'a str,
    job: Option<i64>,
}

fn record(m: Made) -> i64 {
    let change = changes::next_id();
    changes::insert(change, &New {
        kind: m.kind,
        relation: m.table.oid,
        table_name: &m.table.name,
        column_name: m.column,
        new_column: m.new_column,
        object_name: m.object,
        spec: m.spec,
        phase: m.phase,
        backfill_job: None,
        job: m.job,
    });
    change
}

fn required<'a>(value: Option<&'a str>, what: &str, example: &str) -> Result<&'a str> {
    value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED, format!("{what} must not be NULL or empty")).hint(format!("For example {example}."))
    })
}

/// Adds a constraint NOT VALID now (a brief lock, no scan) and validates it in a job (a scan
/// that blocks no writes).
fn constraint(kind: &str, table: &Table, name: &str, definition: &str) -> Result<i64> {
    super::rewrite::check_identifier("constraint name", name)?;
    let constraint = quote(name);
    run_generated(
        &format!("adding constraint {constraint} to {}", table.name),
        &format!("ALTER TABLE {} ADD CONSTRAINT {constraint} {definition} NOT VALID", table.name),
    )?;
    let job = super::submit_steps(
        &format!("validation of {constraint}"),
        &[format!("ALTER TABLE {} VALIDATE CONSTRAINT {constraint}", table.name)],
    )?;
    let change = record(Made { kind, table, column: None, new_column: None, object: Some(name), spec: json!({"definition": definition}), phase: "open", job: Some(job) });
    notice(format!(
        "pg_migrate: change {change}: constraint {constraint} on {} holds for new rows now; job {job} validates the existing rows after this transaction commits; follow it with CALL migrate.wait({job})",
        table.name
    ));
    Ok(change)
}

pub fn add_check(oid: pg_sys::Oid, name: Option<&str>, expression: Option<&str>) -> Result<i64> {
    let table = with_pinned_search_path(|| Table::of(oid))?;
    let name = required(name, "name", "'orders_amount_positive'")?;
    let expression = required(expression, "expression", "'amount > 0'")?;
    super::rewrite::referenced(expression, "expression")?;
    constraint("add_check", &table, name, &format!("CHECK (\n{}\n)", expression.trim()))
}

pub struct ForeignKey<'a> {
    pub table: pg_sys::Oid,
    pub columns: Vec<String>,
    pub references: pg_sys::Oid,
    pub ref_columns: Option<Vec<String>>,
    pub name: Option<&'a str>,
    pub on_delete: Option<&'a str>,
}

pub fn add_foreign_key(fk: &ForeignKey) -> Result<i64> {
    let (table, referenced) = with_pinned_search_path(|| -> Result<(Table, Table)> { Ok((Table::of(fk.table)?, Table::of(fk.references)?)) })?;
    if fk.columns.is_empty() {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "cols must name at least one column").hint("For example ARRAY['customer_id']."));
    }
    for c in fk.columns.iter().chain(fk.ref_columns.iter().flatten()) {
        if c.is_empty() {
            return Err(Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "column names must not be empty"));
        }
    }
    if table.partitioned {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{} is partitioned: PostgreSQL 15 cannot add a foreign key to it as NOT VALID", table.name),
        )
        .hint("Nothing was changed. Add the foreign key to each partition with migrate.add_foreign_key, or with ALTER TABLE in a quiet period."));
    }
    let on_delete = match fk.on_delete.map(|a| a.trim().to_ascii_uppercase()) {
        None => String::new(),
        Some(a) if ["NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"].contains(&a.as_str()) => format!(" ON DELETE {a}"),
        Some(a) => {
            return Err(Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("unknown ON DELETE action \"{a}\""))
                .hint("Use NO ACTION, RESTRICT, CASCADE, SET NULL or SET DEFAULT."))
        }
    };
    let list = |cols: &[String]| cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let name = fk.name.map(str::to_string).unwrap_or_else(|| shorten(&format!("{}_{}_fkey", table.relname, fk.columns.join("_")), MAX_IDENTIFIER).to_string());
    let refs = fk.ref_columns.as_ref().map(|c| format!(" ({})", list(c))).unwrap_or_default();
    if !has_leading_index(&table, &fk.columns) {
        notice(format!(
            "pg_migrate: no index of {} starts with ({}): deletes and key updates on {} will scan {} for each row; add one with SELECT migrate.create_index(...)",
            table.name,
            list(&fk.columns),
            referenced.name,
            table.name
        ));
    }
    constraint(
        "add_foreign_key",
        &table,
        &name,
        &format!("FOREIGN KEY ({}) REFERENCES {}{refs}{on_delete}", list(&fk.columns), referenced.name),
    )
}

fn has_leading_index(table: &Table, columns: &[String]) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (
            SELECT FROM pg_catalog.pg_index i
             WHERE i.indrelid = $1 AND i.indpred IS NULL
               AND (SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.n)
                      FROM pg_catalog.unnest((i.indkey::int2[])[0:pg_catalog.cardinality($2::text[]) - 1]) WITH ORDINALITY k(attnum, n)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
                   OPERATOR(pg_catalog.@>) $2::text[])",
        &[table.oid.into(), columns.to_vec().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(true)
}

pub fn create_index(oid: pg_sys::Oid, definition: Option<&str>, name: Option<&str>, unique: bool) -> Result<i64> {
    let table = with_pinned_search_path(|| Table::of(oid))?;
    with_pinned_search_path(|| table.require_owner("create an index on it"))?;
    let definition = required(definition, "definition", "'(email)' or 'USING gin (tags)' or '(created_at) WHERE deleted_at IS NULL'")?.trim();
    let probe = format!("CREATE INDEX ON {} {definition}", table.name);
    let columns = index_columns(&probe)?;
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => {
            super::rewrite::check_identifier("index name", n)?;
            n.to_string()
        }
        None => shorten(&format!("{}_{}_idx", table.relname, columns.join("_")), MAX_IDENTIFIER).to_string(),
    };
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_class WHERE relname = $1 AND relnamespace = $2::regnamespace)",
        &[name.as_str().into(), quote(&table.schema).into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if exists {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE, format!("relation {}.{} already exists", quote(&table.schema), quote(&name)))
            .hint("Nothing was changed. Pass another name => ..., or drop the old index first with migrate.drop_index."));
    }
    if table.partitioned {
        return create_partitioned_index(&table, &probe, definition, &name, unique);
    }
    let sql = format!(
        "CREATE {}INDEX CONCURRENTLY {} ON {} {definition}",
        if unique { "UNIQUE " } else { "" },
        quote(&name),
        table.name
    );
    let job = super::submit_steps(&format!("index {}", quote(&name)), std::slice::from_ref(&sql))?;
    let change = record(Made { kind: "create_index", table: &table, column: None, new_column: None, object: Some(&name), spec: json!({"definition": sql}), phase: "open", job: Some(job) });
    notice(format!(
        "pg_migrate: change {change}: job {job} builds index {} on {} concurrently after this transaction commits (a failed build leaves no INVALID index); follow it with CALL migrate.wait({job})",
        quote(&name),
        table.name
    ));
    Ok(change)
}

/// create_index on a partitioned table: CREATE INDEX ON ONLY the parent, then each partition
/// concurrently and ATTACH (`worker::partitions`), in a job.
fn create_partitioned_index(table: &Table, probe: &str, definition: &str, name: &str, unique: bool) -> Result<i64> {
    let keys = index_key_columns(probe)?;
    let qualified = format!("{}.{}", quote(&table.schema), quote(name));
    with_pinned_search_path(|| crate::worker::partitions::refuse_unbuildable(table.oid, &table.name, &qualified, unique, &keys))?;
    let only = format!("CREATE {}INDEX IF NOT EXISTS {} ON ONLY {} {definition}", if unique { "UNIQUE " } else { "" }, quote(name), table.name);
    let job = super::submit_work(&format!("index {}", quote(name)), &super::partitioned_build(only.clone(), &qualified))?;
    let change = record(Made {
        kind: "create_index",
        table,
        column: None,
        new_column: None,
        object: Some(name),
        spec: json!({"definition": only, "partitioned": true}),
        phase: "open",
        job: Some(job),
    });
    notice(format!(
        "pg_migrate: change {change}: job {job} builds index {} on partitioned table {} after this transaction commits: ON ONLY the parent, then concurrently on each partition and attached (a failed build leaves no INVALID index); follow it with CALL migrate.wait({job})",
        quote(name),
        table.name
    ));
    Ok(change)
}

/// The key columns of a CREATE INDEX (None for an expression), INCLUDE columns left out.
fn index_key_columns(probe: &str) -> Result<Vec<Option<String>>> {
    let parsed = script::split_after("definition", "", probe)?;
    let stmt = match parsed.as_slice() {
        [one] => unsafe { nodes::cast::<pg_sys::IndexStmt>(one.node, NodeTag::T_IndexStmt) },
        _ => None,
    };
    let Some(stmt) = stmt else {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR, "definition must be what follows ON <table> in one CREATE INDEX"));
    };
    Ok(unsafe {
        nodes::nodes(stmt.indexParams)
            .into_iter()
            .map(|p| nodes::cast::<pg_sys::IndexElem>(p, NodeTag::T_IndexElem).and_then(|e| nodes::cstr(e.name)))
            .collect()
    })
}

/// The column names of a CREATE INDEX (for the default index name), after checking that the
/// definition is that one statement and nothing else.
fn index_columns(probe: &str) -> Result<Vec<String>> {
    let parsed = script::split_after("definition", "", probe)?;
    let stmt = match parsed.as_slice() {
        [one] => unsafe { nodes::cast::<pg_sys::IndexStmt>(one.node, NodeTag::T_IndexStmt) },
        _ => None,
    };
    let Some(stmt) = stmt else {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR, "definition must be what follows ON <table> in one CREATE INDEX")
            .hint("For example '(email)', 'USING gin (tags)' or '(created_at) WHERE deleted_at IS NULL'."));
    };
    Ok(unsafe {
        nodes::nodes(stmt.indexParams)
            .into_iter()
            .map(|p| match nodes::cast::<pg_sys::IndexElem>(p, NodeTag::T_IndexElem).and_then(|e| nodes::cstr(e.name)) {
                Some(name) => name,
                None => "expr".to_string(),
            })
            .collect()
    })
}

pub fn drop_index(index: pg_sys::Oid) -> Result<i64> {
    let row = with_pinned_search_path(|| {
        Spi::get_three_with_args::<pg_sys::Oid, String, String>(
            "SELECT i.indrelid, pg_catalog.pg_get_indexdef(i.indexrelid), c.relname::text
               FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
              WHERE i.indexrelid = $1",
            &[index.into()],
        )
    })
    .unwrap_or((None, None, None));
    let (Some(table_oid), Some(definition), Some(name)) = row else {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE, "idx must be an index").hint("Pass the index's name, for example 'orders_email_idx'."));
    };
    let table = with_pinned_search_path(|| Table::of(table_oid))?;
    with_pinned_search_path(|| table.require_owner("drop its index"))?;
    // An index lives in its table's schema.
    let qualified = format!("{}.{}", quote(&table.schema), quote(&name));
    let constraint = Spi::get_one_with_args::<String>("SELECT conname::text FROM pg_catalog.pg_constraint WHERE conindid = $1 AND conrelid = $2", &[index.into(), table_oid.into()])
        .ok()
        .flatten();
    if let Some(c) = constraint {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            format!("index {qualified} belongs to constraint {} of {}", quote(&c), table.name),
        )
        .hint("Nothing was changed. Drop the constraint with ALTER TABLE ... DROP CONSTRAINT in a migration instead."));
    }
    if let Some(parent) = with_pinned_search_path(|| crate::worker::partitions::parent_index_of(index)) {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            format!("index {qualified} is attached to partitioned index {parent}"),
        )
        .detail("An index attached to a partitioned index cannot be dropped on its own.")
        .hint(format!("Nothing was changed. Drop {parent} with migrate.drop_index: that drops the index of every partition.")));
    }
    let partitioned = Spi::get_one_with_args::<bool>("SELECT relkind = 'I' FROM pg_catalog.pg_class WHERE oid = $1", &[index.into()])
        .ok()
        .flatten()
        .unwrap_or(false);
    let (job, spec, how) = if partitioned {
        // The statement abort builds it again with: nothing else can recreate it without blocking writes.
        let rebuild = with_pinned_search_path(|| crate::worker::partitions::rebuild_sql(&qualified))?;
        let job = super::submit_work(&format!("drop of index {qualified}"), &[super::partitioned_drop(&qualified)])?;
        (
            job,
            json!({"definition": definition, "qualified": qualified, "partitioned": true, "rebuild": rebuild}),
            "with one DROP INDEX whose every try is limited to migrate.lock_timeout (PostgreSQL cannot drop a partitioned index concurrently)",
        )
    } else {
        let job = super::submit_steps(&format!("drop of index {qualified}"), &[format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}")])?;
        (job, json!({"definition": definition, "qualified": qualified}), "concurrently")
    };
    let change = record(Made {
        kind: "drop_index",
        table: &table,
        column: None,
        new_column: None,
        object: Some(&name),
        spec,
        phase: "open",
        job: Some(job),
    });
    notice(format!("pg_migrate: change {change}: job {job} drops index {qualified} {how} after this transaction commits; follow it with CALL migrate.wait({job})"));
    Ok(change)
}

/// The soft drop: the column is renamed out of the application's way but keeps its data, so
/// abort brings it back; purge_deprecated drops it for real later. NOT NULL is dropped so that
/// applications that no longer write it can insert.
pub fn drop_column(oid: pg_sys::Oid, column: Option<&str>) -> Result<i64> {
    let column = required(column, "col", "'legacy_flag'")?;
    let table = with_pinned_search_path(|| Table::of(oid))?;
    let col = with_pinned_search_path(|| table.column(column))?;
    let key = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype = 'p' AND $2 = ANY (conkey))",
        &[oid.into(), col.attnum.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if key {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, format!("column {} is part of the primary key of {}", quote(column), table.name))
            .hint("Nothing was changed. Give the table another primary key first."));
    }
    let deprecated = shorten(&format!("{column}_deprecated"), MAX_IDENTIFIER).to_string();
    if with_pinned_search_path(|| table.has_column(&deprecated)) {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN, format!("column {} of table {} already exists", quote(&deprecated), table.name))
            .hint("Nothing was changed. Purge it first with SELECT migrate.purge_deprecated(...)."));
    }
    let mut sql = format!("ALTER TABLE {} RENAME COLUMN {} TO {}", table.name, quote(column), quote(&deprecated));
    run_generated(&format!("soft drop of column {} of {}", quote(column), table.name), &sql)?;
    if col.not_null {
        sql = format!("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL", table.name, quote(&deprecated));
        run_generated(&format!("soft drop of column {} of {}", quote(column), table.name), &sql)?;
    }
    let change = record(Made {
        kind: "drop_column",
        table: &table,
        column: Some(column),
        new_column: Some(&deprecated),
        object: None,
        spec: json!({"not_null": col.not_null}),
        phase: "open",
        job: None,
    });
    notice(format!(
        "pg_migrate: change {change}: column {} of {} is now {} (data kept); SELECT migrate.abort({change}) brings it back, SELECT migrate.purge_deprecated('{}') drops it for good",
        quote(column),
        table.name,
        quote(&deprecated),
        table.name.replace('\'', "''")
    ));
    Ok(change)
}

/// Drops the soft-dropped columns of `table` (or of every table) for real.
pub fn purge_deprecated(table: Option<pg_sys::Oid>) -> Result<Vec<String>> {
    let mut purged = Vec::new();
    for (change, oid, column) in changes::deprecated(table) {
        let Ok(table) = with_pinned_search_path(|| Table::of(oid)) else {
            changes::set_phase(change, "done", None);
            continue;
        };
        if let Ok(col) = with_pinned_search_path(|| table.column(&column)) {
            with_pinned_search_path(|| facts::refuse_dependent_views(&table, &col, &format!("purge column {}", quote(&column))))?;
            run_generated(
                &format!("purge of column {} of {}", quote(&column), table.name),
                &format!("ALTER TABLE {} DROP COLUMN {}", table.name, quote(&column)),
            )?;
            purged.push(format!("{}.{}", table.name, quote(&column)));
        }
        changes::set_phase(change, "done", None);
    }
    notice(format!("pg_migrate: purged {} deprecated column(s)", purged.len()));
    Ok(purged)
}

pub fn add_enum_value(typ: pg_sys::Oid, value: Option<&str>, before: Option<&str>, after: Option<&str>) -> Result<i64> {
    let value = required(value, "value", "'shipped'")?;
    let (name, is_enum) = with_pinned_search_path(|| {
        Spi::get_two_with_args::<String, bool>("SELECT $1::regtype::text, typtype = 'e' FROM pg_catalog.pg_type WHERE oid = $1", &[typ.into()])
    })
    .unwrap_or((None, None));
    let (Some(name), Some(true)) = (name.clone(), is_enum) else {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE, format!("type {} is not an enum", name.unwrap_or_default()))
            .hint("add_enum_value adds labels to enum types (CREATE TYPE ... AS ENUM)."));
    };
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let position = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(Failure::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "pass before or after, not both").hint("Leave both NULL to append the value at the end."))
        }
        (Some(b), None) => format!(" BEFORE {}", literal(b)),
        (None, Some(a)) => format!(" AFTER {}", literal(a)),
        (None, None) => String::new(),
    };
    let qualified = with_pinned_search_path(|| {
        Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname)
               FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1",
            &[typ.into()],
        )
    })
    .ok()
    .flatten()
    .unwrap_or(name.clone());
    run_generated(
        &format!("adding value {} to enum {qualified}", literal(value)),
        &format!("ALTER TYPE {qualified} ADD VALUE IF NOT EXISTS {}{position}", literal(value)),
    )?;
    let change = changes::next_id();
    changes::insert(change, &New {
        kind: "add_enum_value",
        relation: typ,
        table_name: &qualified,
        column_name: None,
        new_column: None,
        object_name: Some(value),
        spec: json!({}),
        phase: "done",
        backfill_job: None,
        job: None,
    });
    notice(format!("pg_migrate: change {change}: enum {qualified} has value {} (usable once this transaction commits)", literal(value)));
    Ok(change)
}
