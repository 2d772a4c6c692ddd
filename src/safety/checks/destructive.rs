//! rename-column, rename-table, drop-column, drop-table, drop-schema, drop-not-null, truncate,
//! enum-value-renamed, enum-value-removed: changes that break running code or lose data.

use crate::safety::context::{altered_existing_table, Script};
use crate::safety::lookup;
use crate::safety::nodes::{self, cast, cstr, Name};
use crate::safety::rules;
use pgrx::pg_sys::{self, AlterTableType, NodeTag, ObjectType};

pub unsafe fn check(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        renames(script, node);
        drops(script, node);
        if let Some((stmt, table)) = altered_existing_table(script, node) {
            for cmd in nodes::alter_table_cmds(stmt) {
                let column = cstr(cmd.name).unwrap_or_default();
                match cmd.subtype {
                    AlterTableType::AT_DropColumn => {
                        script.report(&rules::DROP_COLUMN, -1, format!("DROP COLUMN {column} of existing table {table}"))
                    }
                    AlterTableType::AT_DropNotNull => {
                        script.report(&rules::DROP_NOT_NULL, -1, format!("ALTER COLUMN {column} DROP NOT NULL on existing table {table}"))
                    }
                    _ => {}
                }
            }
        }
        if let Some(stmt) = cast::<pg_sys::TruncateStmt>(node, NodeTag::T_TruncateStmt) {
            for rv in nodes::list::<pg_sys::RangeVar>(stmt.relations) {
                if let Some(table) = script.existing(rv) {
                    script.report(&rules::TRUNCATE, (*rv).location, format!("TRUNCATE {table}"));
                }
            }
        }
        if let Some(stmt) = cast::<pg_sys::AlterEnumStmt>(node, NodeTag::T_AlterEnumStmt) {
            let enum_name = Name::from_parts(&nodes::names(stmt.typeName));
            if let (Some(old), Some(name)) = (cstr(stmt.oldVal), enum_name) {
                if !script.is_new_type(&name) {
                    let new = cstr(stmt.newVal).unwrap_or_default();
                    script.report(&rules::ENUM_VALUE_RENAMED, -1, format!("ALTER TYPE {name} RENAME VALUE '{old}' TO '{new}'"));
                }
            }
        }
        enum_catalog_writes(script, node);
    }
}

unsafe fn renames(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        let Some(stmt) = cast::<pg_sys::RenameStmt>(node, NodeTag::T_RenameStmt) else { return };
        let Some(relation) = script.existing(stmt.relation) else { return };
        let new = cstr(stmt.newname).unwrap_or_default();
        match stmt.renameType {
            ObjectType::OBJECT_COLUMN => {
                let old = cstr(stmt.subname).unwrap_or_default();
                script.report(
                    &rules::RENAME_COLUMN,
                    (*stmt.relation).location,
                    format!("RENAME COLUMN {old} TO {new} on existing table {relation}"),
                );
            }
            ObjectType::OBJECT_TABLE | ObjectType::OBJECT_VIEW | ObjectType::OBJECT_MATVIEW | ObjectType::OBJECT_FOREIGN_TABLE => {
                script.report(&rules::RENAME_TABLE, (*stmt.relation).location, format!("RENAME of existing {relation} TO {new}"));
            }
            _ => {}
        }
    }
}

unsafe fn drops(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        let Some(stmt) = cast::<pg_sys::DropStmt>(node, NodeTag::T_DropStmt) else { return };
        match stmt.removeType {
            ObjectType::OBJECT_TABLE | ObjectType::OBJECT_FOREIGN_TABLE => {
                for table in nodes::object_names(stmt.objects) {
                    if !script.is_new(&table) {
                        script.report(&rules::DROP_TABLE, -1, format!("DROP TABLE {table}"));
                    }
                }
            }
            ObjectType::OBJECT_SCHEMA => {
                for schema in nodes::names(stmt.objects) {
                    if !script.is_new_schema(&schema) {
                        script.report(&rules::DROP_SCHEMA, -1, format!("DROP SCHEMA {schema}"));
                    }
                }
            }
            ObjectType::OBJECT_TYPE => {
                for object in nodes::nodes(stmt.objects) {
                    let Some(tn) = cast::<pg_sys::TypeName>(object, NodeTag::T_TypeName) else { continue };
                    let Some(name) = nodes::type_qualified_name(tn) else { continue };
                    if !script.is_new_type(&name) && lookup::is_enum(object as *mut pg_sys::TypeName) {
                        script.report(&rules::ENUM_VALUE_REMOVED, tn.location, format!("DROP TYPE {name} removes every value of the enum"));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Deleting or relabelling rows of pg_enum: the catalog hack some guides suggest for removing or
/// renaming enum values.
unsafe fn enum_catalog_writes(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        let (rule, relation, verb) = match nodes::tag(node) {
            NodeTag::T_DeleteStmt => (&rules::ENUM_VALUE_REMOVED, (*(node as *const pg_sys::DeleteStmt)).relation, "DELETE FROM"),
            NodeTag::T_UpdateStmt => (&rules::ENUM_VALUE_RENAMED, (*(node as *const pg_sys::UpdateStmt)).relation, "UPDATE"),
            _ => return,
        };
        let Some(name) = nodes::range_var(relation) else { return };
        if name.name == "pg_enum" && name.schema.as_deref().is_none_or(|s| s == "pg_catalog") {
            script.report(rule, (*relation).location, format!("{verb} pg_catalog.pg_enum"));
        }
    }
}
