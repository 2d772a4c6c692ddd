//! index-not-concurrent, drop-index-not-concurrent, constraint-builds-index.

use crate::safety::context::{altered_existing_table, Script};
use crate::safety::nodes::{self, cast, cstr};
use crate::safety::rules;
use pgrx::pg_sys::{self, ConstrType, NodeTag};

pub unsafe fn check(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        if let Some(stmt) = cast::<pg_sys::IndexStmt>(node, NodeTag::T_IndexStmt) {
            if !stmt.concurrent {
                if let Some(table) = script.existing(stmt.relation) {
                    let name = cstr(stmt.idxname).map(|n| format!(" {n}")).unwrap_or_default();
                    script.report(
                        &rules::INDEX_NOT_CONCURRENT,
                        (*stmt.relation).location,
                        format!("CREATE INDEX{name} on existing table {table} without CONCURRENTLY"),
                    );
                }
            }
        }
        if let Some(stmt) = cast::<pg_sys::DropStmt>(node, NodeTag::T_DropStmt) {
            if stmt.removeType == pg_sys::ObjectType::OBJECT_INDEX && !stmt.concurrent {
                for index in nodes::object_names(stmt.objects) {
                    if !script.is_new_index(&index) {
                        script.report(
                            &rules::DROP_INDEX_NOT_CONCURRENT,
                            -1,
                            format!("DROP INDEX {index} without CONCURRENTLY"),
                        );
                    }
                }
            }
        }
        if let Some((stmt, table)) = altered_existing_table(script, node) {
            for cmd in nodes::alter_table_cmds(stmt) {
                let constraints: Vec<&pg_sys::Constraint> = match cmd.subtype {
                    pg_sys::AlterTableType::AT_AddConstraint => {
                        cast::<pg_sys::Constraint>(cmd.def, NodeTag::T_Constraint).into_iter().collect()
                    }
                    pg_sys::AlterTableType::AT_AddColumn => cast::<pg_sys::ColumnDef>(cmd.def, NodeTag::T_ColumnDef)
                        .map(|c| nodes::column_constraints(c))
                        .unwrap_or_default(),
                    _ => continue,
                };
                for c in constraints {
                    let kind = match c.contype {
                        ConstrType::CONSTR_PRIMARY if c.indexname.is_null() => "PRIMARY KEY",
                        ConstrType::CONSTR_UNIQUE if c.indexname.is_null() => "UNIQUE",
                        ConstrType::CONSTR_EXCLUSION => "EXCLUDE",
                        _ => continue,
                    };
                    script.report(
                        &rules::CONSTRAINT_BUILDS_INDEX,
                        c.location,
                        format!("{kind} constraint added to existing table {table} without USING INDEX"),
                    );
                }
            }
        }
    }
}
