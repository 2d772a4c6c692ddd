//! add-column-not-null-without-default, add-column-volatile-default, add-column-generated-stored,
//! add-column-serial, alter-column-type, prefer-jsonb: column changes that rewrite or break.

use crate::safety::context::{altered_existing_table, Script};
use crate::safety::lookup::{self, Volatility};
use crate::safety::nodes::{self, cast, cstr, Name};
use crate::safety::rules;
use crate::safety::types::{change_is_free, ColumnType};
use pgrx::pg_sys::{self, AlterTableType, ConstrType, NodeTag};

const SERIAL_TYPES: [&str; 6] = ["serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"];

pub unsafe fn check(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        json_columns(script, node);
        let Some((stmt, table)) = altered_existing_table(script, node) else { return };
        published(script, stmt, &table);
        for cmd in nodes::alter_table_cmds(stmt) {
            let Some(col) = cast::<pg_sys::ColumnDef>(cmd.def, NodeTag::T_ColumnDef) else { continue };
            match cmd.subtype {
                AlterTableType::AT_AddColumn => added_column(script, &table, col),
                AlterTableType::AT_AlterColumnType => {
                    let column = cstr(cmd.name).unwrap_or_default();
                    changed_type(script, &table, &column, col);
                }
                _ => {}
            }
        }
    }
}

/// ddl-on-published-table: an ALTER TABLE of a table that a publication includes.
unsafe fn published(script: &mut Script, stmt: &pg_sys::AlterTableStmt, table: &Name) {
    let Some(relid) = lookup::relation(table) else { return };
    let publications = lookup::publications(relid);
    if !publications.is_empty() {
        let location = unsafe { (*stmt.relation).location };
        script.report(&rules::DDL_ON_PUBLISHED_TABLE, location, format!("ALTER TABLE {table}, which is in publication {}", publications.join(", ")));
    }
}

unsafe fn added_column(script: &mut Script, table: &Name, col: &pg_sys::ColumnDef) {
    unsafe {
        let column = cstr(col.colname).unwrap_or_default();
        let constraints = nodes::column_constraints(col);
        let has = |t: ConstrType::Type| constraints.iter().any(|c| c.contype == t);
        let default = constraints
            .iter()
            .find(|c| c.contype == ConstrType::CONSTR_DEFAULT)
            .map(|c| c.raw_expr)
            .or((!col.raw_default.is_null()).then_some(col.raw_default));
        let type_name = nodes::type_name(col.typeName).unwrap_or_default();
        let serial = SERIAL_TYPES.contains(&type_name.as_str()) && nodes::names((*col.typeName).names).len() == 1;
        let identity = has(ConstrType::CONSTR_IDENTITY);
        let generated = has(ConstrType::CONSTR_GENERATED);
        // PostgreSQL 18 also has VIRTUAL generated columns (its default kind): computed when read,
        // adding one rewrites nothing. Only a STORED one computes every row.
        #[cfg(not(feature = "pg18"))]
        let stored = generated;
        #[cfg(feature = "pg18")]
        let stored = constraints
            .iter()
            .any(|c| c.contype == ConstrType::CONSTR_GENERATED && c.generated_kind as u8 == pg_sys::ATTRIBUTE_GENERATED_STORED);
        let subject = format!("ADD COLUMN {column} to existing table {table}");

        if serial || identity {
            let what = if serial { type_name.clone() } else { "GENERATED AS IDENTITY".to_string() };
            script.report(&rules::ADD_COLUMN_SERIAL, col.location, format!("{subject} as {what}"));
        }
        if stored {
            script.report(&rules::ADD_COLUMN_GENERATED_STORED, col.location, format!("{subject} GENERATED ALWAYS AS (...) STORED"));
        }
        let not_null = has(ConstrType::CONSTR_NOTNULL) || has(ConstrType::CONSTR_PRIMARY);
        if not_null && default.is_none() && !serial && !identity && !generated {
            script.report(&rules::ADD_COLUMN_NOT_NULL_WITHOUT_DEFAULT, col.location, format!("{subject} NOT NULL without DEFAULT"));
        }
        if let Some(expr) = default {
            for function in nodes::called_functions(expr) {
                let shown = function.join(".");
                let why = match lookup::volatility(&function) {
                    Volatility::NotVolatile => continue,
                    Volatility::Volatile => format!("DEFAULT calls the volatile function {shown}()"),
                    Volatility::Unknown => format!("DEFAULT calls {shown}(), which is not in the catalog and so taken as volatile"),
                };
                script.report(&rules::ADD_COLUMN_VOLATILE_DEFAULT, col.location, format!("{subject}: its {why}"));
                break;
            }
        }
    }
}

/// ALTER COLUMN TYPE on an existing table: free only when the catalog shows the change is
/// binary compatible (see `types`); without the catalog's answer it is taken as a rewrite.
unsafe fn changed_type(script: &mut Script, table: &Name, column: &str, col: &pg_sys::ColumnDef) {
    unsafe {
        let new_type = lookup::resolve_type(col.typeName);
        let old_type = lookup::relation(table).and_then(|rel| lookup::column_type(rel, column));
        let new_shown = match new_type {
            Some((oid, typmod)) => format_type(oid, typmod),
            None => nodes::type_name(col.typeName).unwrap_or_default(),
        };
        let subject = format!("ALTER COLUMN {column} TYPE {new_shown} on existing table {table}");
        let reason = match (col.raw_default.is_null(), old_type, new_type) {
            (false, _, _) => "USING converts every row".to_string(),
            (true, Some((old_oid, old_mod)), Some((new_oid, new_mod))) => {
                if change_is_free(ColumnType { oid: old_oid, typmod: old_mod }, ColumnType { oid: new_oid, typmod: new_mod }) {
                    return;
                }
                format!("from {} it is not binary compatible", format_type(old_oid, old_mod))
            }
            (true, None, _) => "the column's current type is not in this database's catalog, so a rewrite is assumed".to_string(),
            (true, Some(_), None) => format!("type {new_shown} is not in the catalog, so a rewrite is assumed"),
        };
        script.report(&rules::ALTER_COLUMN_TYPE, col.location, format!("{subject} ({reason})"));
    }
}

fn format_type(oid: pg_sys::Oid, typmod: i32) -> String {
    unsafe {
        let p = pg_sys::format_type_with_typemod(oid, typmod);
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// json columns anywhere: CREATE TABLE, ADD COLUMN, ALTER COLUMN TYPE.
unsafe fn json_columns(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        let mut columns: Vec<(Option<String>, &pg_sys::ColumnDef)> = Vec::new();
        if let Some(stmt) = cast::<pg_sys::CreateStmt>(node, NodeTag::T_CreateStmt) {
            for element in nodes::nodes(stmt.tableElts) {
                columns.extend(cast::<pg_sys::ColumnDef>(element, NodeTag::T_ColumnDef).map(|c| (None, c)));
            }
        }
        if let Some(stmt) = cast::<pg_sys::AlterTableStmt>(node, NodeTag::T_AlterTableStmt) {
            for cmd in nodes::alter_table_cmds(stmt) {
                if matches!(cmd.subtype, AlterTableType::AT_AddColumn | AlterTableType::AT_AlterColumnType) {
                    columns.extend(cast::<pg_sys::ColumnDef>(cmd.def, NodeTag::T_ColumnDef).map(|c| (cstr(cmd.name), c)));
                }
            }
        }
        for (altered, col) in columns {
            let names = if col.typeName.is_null() { Vec::new() } else { nodes::names((*col.typeName).names) };
            let is_json = names.last().map(String::as_str) == Some("json")
                && names.len() <= 2
                && names.first().map(String::as_str).is_some_and(|s| s == "json" || s == "pg_catalog");
            if is_json {
                let column = altered.or_else(|| cstr(col.colname)).unwrap_or_default();
                script.report(&rules::PREFER_JSONB, col.location, format!("column {column} is declared json"));
            }
        }
    }
}
