//! reindex-not-concurrent, vacuum-full, cluster, refresh-matview-not-concurrent: maintenance
//! commands whose plain forms lock out traffic for as long as they run.

use crate::safety::context::Script;
use crate::safety::nodes::{self, cast, cstr};
use crate::safety::rules;
use pgrx::pg_sys::{self, NodeTag};

pub unsafe fn check(script: &mut Script, node: *mut pg_sys::Node) {
    unsafe {
        if let Some(stmt) = cast::<pg_sys::ReindexStmt>(node, NodeTag::T_ReindexStmt) {
            if !nodes::option_on(stmt.params, "concurrently") {
                // REINDEX SCHEMA / DATABASE / SYSTEM name no relation: always existing objects.
                let target = match nodes::range_var(stmt.relation) {
                    Some(rel) => script.existing(stmt.relation).map(|_| rel.to_string()),
                    None => Some(cstr(stmt.name).unwrap_or_else(|| "the database".to_string())),
                };
                if let Some(target) = target {
                    script.report(&rules::REINDEX_NOT_CONCURRENT, -1, format!("REINDEX {target} without CONCURRENTLY"));
                }
            }
        }
        if let Some(stmt) = cast::<pg_sys::VacuumStmt>(node, NodeTag::T_VacuumStmt) {
            if stmt.is_vacuumcmd && nodes::option_on(stmt.options, "full") {
                let rels = nodes::list::<pg_sys::VacuumRelation>(stmt.rels);
                if rels.is_empty() {
                    script.report(&rules::VACUUM_FULL, -1, "VACUUM FULL of every table in the database");
                }
                for rel in rels {
                    if let Some(table) = script.existing((*rel).relation) {
                        script.report(&rules::VACUUM_FULL, (*(*rel).relation).location, format!("VACUUM FULL {table}"));
                    }
                }
            }
        }
        if let Some(stmt) = cast::<pg_sys::ClusterStmt>(node, NodeTag::T_ClusterStmt) {
            match nodes::range_var(stmt.relation) {
                None => script.report(&rules::CLUSTER, -1, "CLUSTER of every previously clustered table"),
                Some(_) => {
                    if let Some(table) = script.existing(stmt.relation) {
                        script.report(&rules::CLUSTER, (*stmt.relation).location, format!("CLUSTER {table}"));
                    }
                }
            }
        }
        if let Some(stmt) = cast::<pg_sys::RefreshMatViewStmt>(node, NodeTag::T_RefreshMatViewStmt) {
            if !stmt.concurrent {
                if let Some(view) = script.existing(stmt.relation) {
                    script.report(
                        &rules::REFRESH_MATVIEW_NOT_CONCURRENT,
                        (*stmt.relation).location,
                        format!("REFRESH MATERIALIZED VIEW {view} without CONCURRENTLY"),
                    );
                }
            }
        }
    }
}
