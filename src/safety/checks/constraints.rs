//! add-foreign-key-without-not-valid, add-check-without-not-valid, validate-in-same-migration,
//! set-not-null-without-check: constraints that check every existing row while holding a lock.

use crate::safety::context::{altered_existing_table, Script};
use crate::safety::lookup;
use crate::safety::nodes::{self, cast, cstr, Name};
use crate::safety::rules;
use pgrx::pg_sys::{self, AlterTableType, ConstrType, NodeTag};

pub unsafe fn check(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        let Some((stmt, table)) = altered_existing_table(script, node) else { return };
        for cmd in nodes::alter_table_cmds(stmt) {
            match cmd.subtype {
                AlterTableType::AT_AddConstraint => {
                    if let Some(c) = cast::<pg_sys::Constraint>(cmd.def, NodeTag::T_Constraint) {
                        added_constraint(script, &table, c, None);
                    }
                }
                AlterTableType::AT_AddColumn => {
                    if let Some(col) = cast::<pg_sys::ColumnDef>(cmd.def, NodeTag::T_ColumnDef) {
                        let column = cstr(col.colname).unwrap_or_default();
                        for c in nodes::column_constraints(col) {
                            added_constraint(script, &table, c, Some(&column));
                        }
                    }
                }
                AlterTableType::AT_ValidateConstraint => {
                    let Some(name) = cstr(cmd.name) else { continue };
                    if script.was_added_not_valid(&table, &name) {
                        script.report(
                            &rules::VALIDATE_IN_SAME_MIGRATION,
                            -1,
                            format!("VALIDATE CONSTRAINT {name} on {table} in the migration that added it NOT VALID"),
                        );
                    }
                    script.validate_constraint(&table, &name);
                }
                AlterTableType::AT_SetNotNull => {
                    let Some(column) = cstr(cmd.name) else { continue };
                    if !proven_not_null(script, &table, &column) {
                        script.report(
                            &rules::SET_NOT_NULL_WITHOUT_CHECK,
                            -1,
                            format!("ALTER COLUMN {column} SET NOT NULL on existing table {table} without a validated CHECK ({column} IS NOT NULL)"),
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

/// A constraint added to an existing table, by ADD CONSTRAINT or on a column of ADD COLUMN.
unsafe fn added_constraint(script: &mut Script, table: &Name, c: &pg_sys::Constraint, column: Option<&str>) {
    unsafe {
        let name = cstr(c.conname);
        let on = match column {
            Some(col) => format!("on new column {col} of existing table {table}"),
            None => format!("to existing table {table}"),
        };
        match c.contype {
            ConstrType::CONSTR_FOREIGN if !c.skip_validation => {
                let target = nodes::range_var(c.pktable).map(|t| format!(" referencing {t}")).unwrap_or_default();
                script.report(&rules::ADD_FOREIGN_KEY_WITHOUT_NOT_VALID, c.location, format!("FOREIGN KEY{target} added {on} without NOT VALID"));
            }
            ConstrType::CONSTR_CHECK if !c.skip_validation => {
                script.report(&rules::ADD_CHECK_WITHOUT_NOT_VALID, c.location, format!("CHECK constraint added {on} without NOT VALID"));
            }
            _ => {}
        }
        if matches!(c.contype, ConstrType::CONSTR_FOREIGN | ConstrType::CONSTR_CHECK) && c.skip_validation {
            if let Some(name) = &name {
                script.add_not_valid(table, name.clone());
            }
        }
        if c.contype == ConstrType::CONSTR_CHECK {
            if let Some(col) = nodes::is_not_null_test(c.raw_expr) {
                script.add_not_null_check(table, col, name, !c.skip_validation);
            }
        }
    }
}

/// Whether a validated CHECK (column IS NOT NULL) exists, added by this script or already in the
/// catalog, so that SET NOT NULL needs no scan.
fn proven_not_null(script: &Script, table: &Name, column: &str) -> bool {
    script.has_validated_not_null_check(table, column)
        || lookup::relation(table).is_some_and(|rel| lookup::has_validated_not_null_check(rel, column))
}
