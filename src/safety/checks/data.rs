//! whole-table-write and mixed-ddl-and-data: data changes that belong in a backfill, not in a
//! schema migration.

use crate::ddl::script::Statement;
use crate::safety::context::Script;
use crate::safety::facts::{Facts, Kind};
use crate::safety::nodes;
use pgrx::pg_sys::NodeTag;
use crate::safety::rules;
use pgrx::pg_sys;

pub unsafe fn check(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        let (verb, relation, filter) = match nodes::tag(node) {
            NodeTag::T_UpdateStmt => {
                let s = &*(node as *const pg_sys::UpdateStmt);
                ("UPDATE", s.relation, s.whereClause)
            }
            NodeTag::T_DeleteStmt => {
                let s = &*(node as *const pg_sys::DeleteStmt);
                ("DELETE", s.relation, s.whereClause)
            }
            _ => return,
        };
        if filter.is_null() {
            if let Some(table) = script.existing(relation) {
                script.report(&rules::WHOLE_TABLE_WRITE, (*relation).location, format!("{verb} of every row of existing table {table} (no WHERE)"));
            }
        }
    }
}

/// Data changes on tables that existed before the migration, in a migration that also changes
/// the schema. Filling a table the same migration created (seed rows) is not a mix.
pub fn mixed_ddl_and_data(script: &mut Script, statements: &[(&Statement, Facts)]) {
    let Some((first_ddl, _)) = statements.iter().find(|(_, f)| f.kind == Kind::Ddl) else { return };
    for (stmt, facts) in statements {
        if let Kind::Data { table, existing: true } = &facts.kind {
            script.report_at(
                stmt.number,
                stmt.line,
                &rules::MIXED_DDL_AND_DATA,
                -1,
                format!(
                    "statement {} changes rows of {table} in a migration that also changes the schema (statement {}, line {})",
                    stmt.number, first_ddl.number, first_ddl.line
                ),
            );
        }
    }
}
