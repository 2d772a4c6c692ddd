//! What one statement does, as far as the script-wide rules (and `migrate.plan()` for statements
//! it cannot execute) care: is it schema DDL or a data change, which relation locks Postgres
//! documents for it, is it a CONCURRENTLY form that refuses transaction blocks, does it set
//! lock_timeout. Only relations that existed before the script count: locking a table the script
//! created blocks nobody.

use super::context::Script;
use super::nodes::{self, cast, cstr, Name};
use pgrx::pg_sys::{self, NodeTag};

/// A lock mode, as `pg_sys` numbers them (1 = AccessShareLock … 8 = AccessExclusiveLock).
pub type LockMode = i32;

pub const SHARE_UPDATE_EXCLUSIVE: LockMode = pg_sys::ShareUpdateExclusiveLock as LockMode;
pub const ACCESS_EXCLUSIVE: LockMode = pg_sys::AccessExclusiveLock as LockMode;

/// Lock mode names as `pg_locks.mode` shows them, indexed by mode (one table for the crate).
pub use crate::ddl::blockers::MODES as LOCK_NAMES;

pub fn lock_name(mode: LockMode) -> &'static str {
    LOCK_NAMES.get(mode as usize).copied().unwrap_or("unknown lock")
}

pub fn lock_mode(name: &str) -> LockMode {
    LOCK_NAMES.iter().position(|n| *n == name).unwrap_or(0) as LockMode
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Changes the schema.
    Ddl,
    /// Changes rows of `table`; `existing` when the script did not create the table.
    Data { table: Name, existing: bool },
    /// SET, RESET, SHOW: session settings, harmless anywhere.
    Session,
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / ROLLBACK / END / PREPARE TRANSACTION.
    End,
    /// Anything else (SELECT, DO, CALL, GRANT, COMMENT, …).
    Other,
}

#[derive(Debug, Clone)]
pub struct Facts {
    pub kind: Kind,
    /// Relation locks Postgres takes for the statement on relations the script did not create.
    pub locks: Vec<(Name, LockMode)>,
    /// The CONCURRENTLY form this statement uses, if it is one that refuses transaction blocks.
    pub concurrent: Option<&'static str>,
    /// `Some(true)` sets a non-zero lock_timeout, `Some(false)` resets or disables it.
    pub lock_timeout: Option<bool>,
}

impl Facts {
    /// The strongest documented lock and the relation it is on.
    pub fn strongest_lock(&self) -> Option<&(Name, LockMode)> {
        self.locks.iter().max_by_key(|(_, mode)| *mode)
    }
}

pub unsafe fn of(script: &Script, node: *mut pg_sys::Node) -> Facts {
    unsafe {
        Facts {
            kind: kind(script, node),
            locks: locks(node).into_iter().filter(|(name, _)| !script.is_new(name)).collect(),
            concurrent: concurrent_form(node),
            lock_timeout: lock_timeout(node),
        }
    }
}

unsafe fn kind(script: &Script, node: *mut pg_sys::Node) -> Kind {
    use NodeTag::*;
    let data = |rv: *const pg_sys::RangeVar| match unsafe { nodes::range_var(rv) } {
        Some(table) => Kind::Data { existing: !script.is_new(&table), table },
        None => Kind::Other,
    };
    unsafe {
        match nodes::tag(node) {
            T_InsertStmt => data((*(node as *const pg_sys::InsertStmt)).relation),
            T_UpdateStmt => data((*(node as *const pg_sys::UpdateStmt)).relation),
            T_DeleteStmt => data((*(node as *const pg_sys::DeleteStmt)).relation),
            T_MergeStmt => data((*(node as *const pg_sys::MergeStmt)).relation),
            T_CopyStmt if (*(node as *const pg_sys::CopyStmt)).is_from => data((*(node as *const pg_sys::CopyStmt)).relation),
            T_TruncateStmt => {
                let first = nodes::list::<pg_sys::RangeVar>((*(node as *const pg_sys::TruncateStmt)).relations);
                first.first().map_or(Kind::Other, |rv| data(*rv))
            }
            T_SelectStmt => match modifying_cte((*(node as *const pg_sys::SelectStmt)).withClause) {
                Some(inner) => kind(script, inner),
                None => Kind::Other,
            },
            T_TransactionStmt => match (*(node as *const pg_sys::TransactionStmt)).kind {
                pg_sys::TransactionStmtKind::TRANS_STMT_BEGIN | pg_sys::TransactionStmtKind::TRANS_STMT_START => Kind::Begin,
                pg_sys::TransactionStmtKind::TRANS_STMT_COMMIT
                | pg_sys::TransactionStmtKind::TRANS_STMT_ROLLBACK
                | pg_sys::TransactionStmtKind::TRANS_STMT_PREPARE => Kind::End,
                _ => Kind::Other,
            },
            T_VariableSetStmt | T_VariableShowStmt => Kind::Session,
            T_CreateStmt | T_AlterTableStmt | T_IndexStmt | T_DropStmt | T_RenameStmt | T_CreateTableAsStmt
            | T_ViewStmt | T_CreateEnumStmt | T_AlterEnumStmt | T_CreateSeqStmt | T_AlterSeqStmt
            | T_CreateSchemaStmt | T_CreateFunctionStmt | T_AlterFunctionStmt | T_CreateTrigStmt
            | T_CreateDomainStmt | T_AlterDomainStmt | T_CompositeTypeStmt | T_CreateRangeStmt
            | T_CreateExtensionStmt | T_AlterExtensionStmt | T_AlterObjectSchemaStmt | T_RuleStmt
            | T_CreatePolicyStmt | T_AlterPolicyStmt | T_CreateStatsStmt | T_AlterTypeStmt
            | T_CreateForeignTableStmt | T_RefreshMatViewStmt | T_ReindexStmt | T_ClusterStmt
            | T_AlterOwnerStmt | T_CreateCastStmt | T_DefineStmt => Kind::Ddl,
            _ => Kind::Other,
        }
    }
}

/// The first data-modifying statement of a WITH clause (`WITH x AS (UPDATE …) SELECT …`).
unsafe fn modifying_cte(with: *mut pg_sys::WithClause) -> Option<*mut pg_sys::Node> {
    if with.is_null() {
        return None;
    }
    unsafe {
        nodes::nodes((*with).ctes)
            .into_iter()
            .filter_map(|n| cast::<pg_sys::CommonTableExpr>(n, NodeTag::T_CommonTableExpr))
            .map(|cte| cte.ctequery)
            .find(|q| {
                matches!(
                    nodes::tag(*q),
                    NodeTag::T_InsertStmt | NodeTag::T_UpdateStmt | NodeTag::T_DeleteStmt
                )
            })
    }
}

/// The relation locks Postgres documents for a statement (before knowing which relations the
/// script created). Sources: the "Explicit Locking" chapter and each command's reference page;
/// ALTER TABLE asks the server itself (`AlterTableGetLockLevel`, what ALTER TABLE uses).
pub unsafe fn locks(node: *mut pg_sys::Node) -> Vec<(Name, LockMode)> {
    use pg_sys::ObjectType::*;
    use NodeTag::*;
    let mut out = Vec::new();
    let mut add = |rv: *const pg_sys::RangeVar, mode: u32| {
        if let Some(name) = unsafe { nodes::range_var(rv) } {
            out.push((name, mode as LockMode));
        }
    };
    unsafe {
        match nodes::tag(node) {
            T_AlterTableStmt => {
                let s = &*(node as *const pg_sys::AlterTableStmt);
                if !nodes::nodes(s.cmds).is_empty() && s.objtype != OBJECT_TYPE {
                    add(s.relation, pg_sys::AlterTableGetLockLevel(s.cmds) as u32);
                }
                for cmd in nodes::alter_table_cmds(s) {
                    if let Some(c) = cast::<pg_sys::Constraint>(cmd.def, T_Constraint) {
                        if c.contype == pg_sys::ConstrType::CONSTR_FOREIGN {
                            add(c.pktable, pg_sys::ShareRowExclusiveLock);
                        }
                    }
                }
            }
            T_CreateStmt => {
                // A new table's foreign keys lock the tables they reference.
                let s = &*(node as *const pg_sys::CreateStmt);
                for element in nodes::nodes(s.tableElts).into_iter().chain(nodes::nodes(s.constraints)) {
                    let constraints = match cast::<pg_sys::ColumnDef>(element, T_ColumnDef) {
                        Some(col) => nodes::column_constraints(col),
                        None => cast::<pg_sys::Constraint>(element, T_Constraint).into_iter().collect(),
                    };
                    for c in constraints {
                        if c.contype == pg_sys::ConstrType::CONSTR_FOREIGN {
                            add(c.pktable, pg_sys::ShareRowExclusiveLock);
                        }
                    }
                }
            }
            T_IndexStmt => {
                let s = &*(node as *const pg_sys::IndexStmt);
                add(s.relation, if s.concurrent { pg_sys::ShareUpdateExclusiveLock } else { pg_sys::ShareLock });
            }
            T_DropStmt => {
                let s = &*(node as *const pg_sys::DropStmt);
                let mode = match s.removeType {
                    OBJECT_INDEX if s.concurrent => Some(pg_sys::ShareUpdateExclusiveLock),
                    OBJECT_TABLE | OBJECT_INDEX | OBJECT_VIEW | OBJECT_MATVIEW | OBJECT_SEQUENCE | OBJECT_FOREIGN_TABLE => {
                        Some(pg_sys::AccessExclusiveLock)
                    }
                    _ => None,
                };
                if let Some(mode) = mode {
                    out.extend(nodes::object_names(s.objects).into_iter().map(|name| (name, mode as LockMode)));
                }
            }
            T_RenameStmt => {
                let s = &*(node as *const pg_sys::RenameStmt);
                // Renaming an index takes SHARE UPDATE EXCLUSIVE since Postgres 12.
                let mode = if s.renameType == OBJECT_INDEX { pg_sys::ShareUpdateExclusiveLock } else { pg_sys::AccessExclusiveLock };
                add(s.relation, mode);
            }
            T_TruncateStmt => {
                for rv in nodes::list::<pg_sys::RangeVar>((*(node as *const pg_sys::TruncateStmt)).relations) {
                    add(rv, pg_sys::AccessExclusiveLock);
                }
            }
            T_ReindexStmt => {
                let s = &*(node as *const pg_sys::ReindexStmt);
                let mode = if nodes::option_on(s.params, "concurrently") {
                    pg_sys::ShareUpdateExclusiveLock
                } else if s.kind == pg_sys::ReindexObjectType::REINDEX_OBJECT_INDEX {
                    pg_sys::AccessExclusiveLock
                } else {
                    pg_sys::ShareLock
                };
                add(s.relation, mode);
            }
            T_ClusterStmt => add((*(node as *const pg_sys::ClusterStmt)).relation, pg_sys::AccessExclusiveLock),
            T_VacuumStmt => {
                let s = &*(node as *const pg_sys::VacuumStmt);
                let mode = if s.is_vacuumcmd && nodes::option_on(s.options, "full") {
                    pg_sys::AccessExclusiveLock
                } else {
                    pg_sys::ShareUpdateExclusiveLock
                };
                for rel in nodes::list::<pg_sys::VacuumRelation>(s.rels) {
                    add((*rel).relation, mode);
                }
            }
            T_RefreshMatViewStmt => {
                let s = &*(node as *const pg_sys::RefreshMatViewStmt);
                add(s.relation, if s.concurrent { pg_sys::ExclusiveLock } else { pg_sys::AccessExclusiveLock });
            }
            T_LockStmt => {
                let s = &*(node as *const pg_sys::LockStmt);
                for rv in nodes::list::<pg_sys::RangeVar>(s.relations) {
                    add(rv, s.mode.clamp(1, 8) as u32);
                }
            }
            T_CreateTrigStmt => add((*(node as *const pg_sys::CreateTrigStmt)).relation, pg_sys::ShareRowExclusiveLock),
            T_InsertStmt => add((*(node as *const pg_sys::InsertStmt)).relation, pg_sys::RowExclusiveLock),
            T_UpdateStmt => add((*(node as *const pg_sys::UpdateStmt)).relation, pg_sys::RowExclusiveLock),
            T_DeleteStmt => add((*(node as *const pg_sys::DeleteStmt)).relation, pg_sys::RowExclusiveLock),
            T_MergeStmt => add((*(node as *const pg_sys::MergeStmt)).relation, pg_sys::RowExclusiveLock),
            _ => {}
        }
    }
    out
}

/// CONCURRENTLY forms that Postgres refuses inside a transaction block.
unsafe fn concurrent_form(node: *mut pg_sys::Node) -> Option<&'static str> {
    use NodeTag::*;
    unsafe {
        match nodes::tag(node) {
            T_IndexStmt if (*(node as *const pg_sys::IndexStmt)).concurrent => Some("CREATE INDEX CONCURRENTLY"),
            T_DropStmt if (*(node as *const pg_sys::DropStmt)).concurrent => Some("DROP INDEX CONCURRENTLY"),
            T_ReindexStmt if nodes::option_on((*(node as *const pg_sys::ReindexStmt)).params, "concurrently") => {
                Some("REINDEX CONCURRENTLY")
            }
            T_AlterTableStmt => {
                let s = &*(node as *const pg_sys::AlterTableStmt);
                nodes::alter_table_cmds(s)
                    .into_iter()
                    .filter_map(|cmd| cast::<pg_sys::PartitionCmd>(cmd.def, T_PartitionCmd))
                    .any(|p| p.concurrent)
                    .then_some("DETACH PARTITION CONCURRENTLY")
            }
            _ => None,
        }
    }
}

/// Whether the statement sets lock_timeout (to a non-zero value) or resets it.
unsafe fn lock_timeout(node: *mut pg_sys::Node) -> Option<bool> {
    unsafe {
        let s = cast::<pg_sys::VariableSetStmt>(node, NodeTag::T_VariableSetStmt)?;
        if cstr(s.name).as_deref() != Some("lock_timeout") {
            return None;
        }
        if s.kind != pg_sys::VariableSetKind::VAR_SET_VALUE {
            return Some(false);
        }
        let value = nodes::nodes(s.args).into_iter().next()?;
        let a = cast::<pg_sys::A_Const>(value, NodeTag::T_A_Const)?;
        let zero = match nodes::tag(&a.val.node) {
            NodeTag::T_Integer => a.val.ival.ival == 0,
            NodeTag::T_String => {
                let text = cstr(a.val.sval.sval).unwrap_or_default();
                let digits: String = text.trim().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
                digits.parse::<f64>().is_ok_and(|v| v == 0.0)
            }
            NodeTag::T_Float => cstr(a.val.fval.fval).and_then(|f| f.parse::<f64>().ok()) == Some(0.0),
            _ => false,
        };
        Some(!zero)
    }
}
