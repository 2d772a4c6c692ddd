//! What a change remembers in `all_changes.spec`, and checks of the type names users pass.

use crate::ddl::script;
use crate::error::{Failure, Result};
use crate::safety::nodes;
use pgrx::pg_sys::{self, NodeTag};
use pgrx::PgSqlErrorCode;
use serde::{Deserialize, Serialize};

/// expand_column and add_column.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ExpandSpec {
    pub old_type: String,
    pub new_type: String,
    /// The new column's value from the row (add_column: its default, when a backfill sets it).
    pub up: String,
    pub down: String,
    pub old_default: Option<String>,
    /// Whether the column ends NOT NULL (expand_column: the old column was; add_column: asked for).
    pub not_null: bool,
    /// The new column's name once contracted.
    pub final_name: String,
    /// The search_path `up` was checked with (contract's last check evaluates it again).
    #[serde(default)]
    pub search_path: Option<String>,
    /// Set by contract: the temporary objects its job builds and their final names.
    pub contract: Option<Swap>,
}

/// The objects a contract builds under temporary names, renamed in its last step.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Swap {
    pub indexes: Vec<Renamed>,
    pub constraints: Vec<Renamed>,
    /// The validated `CHECK (col IS NOT NULL)` that lets SET NOT NULL skip its scan.
    pub not_null_check: Option<String>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Renamed {
    pub temporary: String,
    pub name: String,
    /// For indexes behind a constraint: "PRIMARY KEY" or "UNIQUE", attached with USING INDEX.
    pub constraint: Option<String>,
    /// On a partitioned table, for a constraint: each leaf partition has a copy of the index
    /// (built concurrently, `<temporary>_<partition oid>`, no parent index); the swap makes them
    /// the partitions' constraints and adds this one to the table, which attaches them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<PartitionedConstraint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionedConstraint {
    /// `PRIMARY KEY ("id", at)`, with the columns' final names.
    pub definition: String,
}

/// A type name as a user wrote it (`bigint`, `numeric(12,2)`, `text COLLATE "C"`), checked to
/// be a type name and nothing more: it is spliced into ALTER TABLE.
pub fn type_name(t: &str) -> Result<String> {
    let t = t.trim();
    let parsed = script::split_after("new_type", "SELECT NULL::", t)?;
    let ok = match parsed.as_slice() {
        [one] => unsafe { is_cast_of_null(one.node) },
        _ => false,
    };
    if !ok || t.contains(';') || t.contains("--") || t.contains("/*") {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR, format!("\"{t}\" is not a type name"))
            .hint("Pass a type as in a column definition, for example 'bigint', 'numeric(12,2)' or 'text'."));
    }
    Ok(t.to_string())
}

/// Whether a type name that `type_name` accepted has its own COLLATE clause.
pub fn has_collate(t: &str) -> bool {
    let Ok(parsed) = script::split_after("new_type", "SELECT NULL::", t.trim()) else { return false };
    let [one] = parsed.as_slice() else { return false };
    unsafe {
        let Some(select) = nodes::cast::<pg_sys::SelectStmt>(one.node, NodeTag::T_SelectStmt) else { return false };
        let targets = nodes::nodes(select.targetList);
        let [target] = targets.as_slice() else { return false };
        nodes::cast::<pg_sys::ResTarget>(*target, NodeTag::T_ResTarget)
            .is_some_and(|rt| nodes::tag(rt.val) == NodeTag::T_CollateClause)
    }
}

unsafe fn is_cast_of_null(stmt: *mut pg_sys::Node) -> bool {
    unsafe {
        let Some(select) = nodes::cast::<pg_sys::SelectStmt>(stmt, NodeTag::T_SelectStmt) else { return false };
        if !select.fromClause.is_null() || !select.whereClause.is_null() {
            return false;
        }
        let targets = nodes::nodes(select.targetList);
        let [target] = targets.as_slice() else { return false };
        let Some(rt) = nodes::cast::<pg_sys::ResTarget>(*target, NodeTag::T_ResTarget) else { return false };
        let mut val = rt.val;
        if let Some(c) = nodes::cast::<pg_sys::CollateClause>(val, NodeTag::T_CollateClause) {
            val = c.arg;
        }
        nodes::cast::<pg_sys::TypeCast>(val, NodeTag::T_TypeCast)
            .is_some_and(|tc| nodes::tag(tc.arg) == NodeTag::T_A_Const)
    }
}
