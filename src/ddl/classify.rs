//! What kind of statement a parse tree is, as far as running it is concerned: ordinary
//! (runs in the caller's transaction), top-level (cannot run inside a transaction block, so a
//! background worker runs it), or refused (has no place in a migration).

use pgrx::pg_sys;
use pgrx::spi::quote_qualified_identifier;
use pgrx::PgList;
use serde::{Deserialize, Serialize};
use std::ffi::CStr;

/// A statement that runs as a top-level statement in a background worker, with what the worker
/// needs to clean up after it or to skip it when a crashed job is resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopLevel {
    /// create_index | drop_index | reindex | vacuum | vacuum_full | validate
    pub kind: String,
    /// The table of create_index and validate, the relation of reindex, the index of drop_index,
    /// quoted as written.
    pub relation: Option<String>,
    /// The name of the index create_index builds, when it is given, quoted and qualified with
    /// the table's schema when that is given.
    pub index: Option<String>,
}

impl TopLevel {
    /// Why the statement cannot run inside a transaction block; None for VALIDATE, which can
    /// (it runs in a job only to keep its lock short).
    pub fn why(&self) -> Option<&'static str> {
        Some(match self.kind.as_str() {
            "create_index" => "CREATE INDEX CONCURRENTLY cannot run inside a transaction block",
            "drop_index" => "DROP INDEX CONCURRENTLY cannot run inside a transaction block",
            "reindex" => "REINDEX CONCURRENTLY cannot run inside a transaction block",
            "vacuum" | "vacuum_full" => "VACUUM cannot run inside a transaction block",
            _ => return None,
        })
    }
}

pub enum Class {
    Transactional,
    TopLevel(TopLevel),
    Refused { what: &'static str, hint: &'static str },
}

const NO_TRANSACTION_CONTROL: &str = "pg_migrate runs every migration in the caller's transaction and undoes all of it on error; remove BEGIN/COMMIT/ROLLBACK/SAVEPOINT.";
const NOT_A_MIGRATION: &str = "Run this statement on its own, outside pg_migrate, with autocommit on.";

pub unsafe fn classify(node: *mut pg_sys::Node) -> Class {
    use pg_sys::NodeTag::*;
    if node.is_null() {
        return Class::Transactional;
    }
    unsafe {
        match (*node).type_ {
            T_TransactionStmt => Class::Refused {
                what: "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) is not allowed",
                hint: NO_TRANSACTION_CONTROL,
            },
            T_CreatedbStmt | T_DropdbStmt => Class::Refused {
                what: "CREATE/DROP DATABASE cannot run inside a transaction block",
                hint: NOT_A_MIGRATION,
            },
            T_AlterSystemStmt => Class::Refused {
                what: "ALTER SYSTEM cannot run inside a transaction block",
                hint: NOT_A_MIGRATION,
            },
            T_CreateTableSpaceStmt | T_DropTableSpaceStmt => Class::Refused {
                what: "CREATE/DROP TABLESPACE cannot run inside a transaction block",
                hint: NOT_A_MIGRATION,
            },
            T_CopyStmt if (*(node as *mut pg_sys::CopyStmt)).filename.is_null() => Class::Refused {
                what: "COPY FROM STDIN / TO STDOUT needs a client that sends or reads the data",
                hint: "Load data with COPY from psql (\\copy) outside the migration, or use INSERT … SELECT.",
            },
            T_IndexStmt if (*(node as *mut pg_sys::IndexStmt)).concurrent => {
                let stmt = node as *mut pg_sys::IndexStmt;
                let table = range_var((*stmt).relation);
                let index = cstr((*stmt).idxname).map(|name| match schema_of((*stmt).relation) {
                    Some(schema) => quote_qualified_identifier(schema, name),
                    None => pgrx::spi::quote_identifier(name),
                });
                top_level("create_index", table, index)
            }
            T_DropStmt if (*(node as *mut pg_sys::DropStmt)).concurrent => {
                let names = PgList::<pg_sys::List>::from_pg((*(node as *mut pg_sys::DropStmt)).objects);
                let index = names.get_ptr(0).map(|n| {
                    CStr::from_ptr(pg_sys::NameListToQuotedString(n)).to_string_lossy().into_owned()
                });
                top_level("drop_index", index, None)
            }
            T_ReindexStmt if has_option((*(node as *mut pg_sys::ReindexStmt)).params, "concurrently") => {
                top_level("reindex", range_var((*(node as *mut pg_sys::ReindexStmt)).relation), None)
            }
            T_VacuumStmt if (*(node as *mut pg_sys::VacuumStmt)).is_vacuumcmd => {
                // VACUUM FULL rewrites the table under ACCESS EXCLUSIVE: it must wait politely.
                let full = has_option((*(node as *mut pg_sys::VacuumStmt)).options, "full");
                top_level(if full { "vacuum_full" } else { "vacuum" }, None, None)
            }
            T_AlterTableStmt if only_validates(node as *mut pg_sys::AlterTableStmt) => {
                top_level("validate", range_var((*(node as *mut pg_sys::AlterTableStmt)).relation), None)
            }
            _ => Class::Transactional,
        }
    }
}

fn top_level(kind: &str, relation: Option<String>, index: Option<String>) -> Class {
    Class::TopLevel(TopLevel { kind: kind.to_string(), relation, index })
}

/// `ALTER TABLE … VALIDATE CONSTRAINT …` and nothing else: it scans the whole table, so it runs
/// in a worker where its SHARE UPDATE EXCLUSIVE lock is held only for its own transaction.
unsafe fn only_validates(stmt: *mut pg_sys::AlterTableStmt) -> bool {
    unsafe {
        let cmds = PgList::<pg_sys::AlterTableCmd>::from_pg((*stmt).cmds);
        !cmds.is_empty()
            && cmds.iter_ptr().all(|c| (*c).subtype == pg_sys::AlterTableType::AT_ValidateConstraint)
    }
}

unsafe fn cstr<'a>(p: *const std::ffi::c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        unsafe { CStr::from_ptr(p).to_str().ok() }
    }
}

unsafe fn schema_of<'a>(rv: *mut pg_sys::RangeVar) -> Option<&'a str> {
    if rv.is_null() {
        None
    } else {
        unsafe { cstr((*rv).schemaname) }
    }
}

/// A RangeVar as a quoted, possibly schema-qualified name.
unsafe fn range_var(rv: *mut pg_sys::RangeVar) -> Option<String> {
    if rv.is_null() {
        return None;
    }
    unsafe {
        let rel = cstr((*rv).relname)?;
        Some(match schema_of(rv) {
            Some(schema) => quote_qualified_identifier(schema, rel),
            None => pgrx::spi::quote_identifier(rel),
        })
    }
}

/// Whether a DefElem list (a statement's option list) names `name`.
unsafe fn has_option(list: *mut pg_sys::List, name: &str) -> bool {
    unsafe {
        PgList::<pg_sys::DefElem>::from_pg(list)
            .iter_ptr()
            .any(|d| cstr((*d).defname) == Some(name))
    }
}

/// Why a statement cannot run inside a transaction block, if it cannot: for dry runs (plan,
/// verify), which report such statements instead of executing them.
pub unsafe fn non_transactional(node: *mut pg_sys::Node) -> Option<&'static str> {
    match unsafe { classify(node) } {
        Class::Transactional => None,
        Class::Refused { what, .. } => Some(what),
        Class::TopLevel(t) => t.why(),
    }
}
