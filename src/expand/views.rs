//! Views and row-level security policies that use the old column of an expand_column change,
//! carried to the new column inside contract's swap instead of blocking the DROP COLUMN.
//!
//! How the text is obtained: inside the swap transaction the old column is renamed to a unique
//! marker and the new one to its final name; PostgreSQL's own deparser (pg_get_viewdef,
//! pg_get_expr), run with the pinned search_path so that every name comes back qualified, then
//! prints the marker wherever the old column was used, and the marker is replaced by the final
//! name. No user text is searched and replaced: the marker cannot occur anywhere else (checked).
//! When the column keeps its type (a rename), each view is replaced in place (CREATE OR REPLACE
//! VIEW keeps its OID, owner, grants, comments, triggers and dependents); when the type changes,
//! the views' output types may change, so they and every view built on them are dropped and
//! created again, dependencies first, each as its owner, with everything PostgreSQL stores about
//! a view carried over, or contract is refused up front naming what it cannot carry.

use super::facts::{Column, Table};
use super::rewrite::{quote, shorten, MAX_IDENTIFIER};
use crate::ddl::retry::{run_politely, Limits, Site, Try};
use crate::ddl::session::{as_role_restricted, with_pinned_search_path, GucScope};
use crate::ddl::subxact;
use crate::error::{Failure, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

#[derive(Debug, Clone)]
pub struct View {
    pub oid: pg_sys::Oid,
    /// Qualified and quoted.
    pub name: String,
    pub owner: pg_sys::Oid,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub table_oid: pg_sys::Oid,
    /// The policy's table, qualified and quoted.
    pub table: String,
    pub owner: pg_sys::Oid,
}

/// What the swap carries from the old column to the new one.
#[derive(Debug, Clone, Default)]
pub struct Carry {
    /// In-place: the views that use the old column. Recreate: those and every view built on
    /// them, each after the views it is built on.
    pub views: Vec<View>,
    pub policies: Vec<Policy>,
    /// The column's type changes: the views are dropped and created again.
    pub recreate: bool,
}

impl Carry {
    pub fn is_empty(&self) -> bool {
        self.views.is_empty() && self.policies.is_empty()
    }

    /// For contract_plan and contract's notice: what the swap will do with them.
    pub fn said(&self) -> Vec<String> {
        let mut said = Vec::new();
        let names = |v: &[View]| v.iter().map(|v| v.name.clone()).collect::<Vec<_>>().join(", ");
        if !self.views.is_empty() && self.recreate {
            said.push(format!(
                "drop and recreate views {} on the new column (in that order; with their owners, options, grants, comments, column defaults and triggers)",
                names(&self.views)
            ));
        } else if !self.views.is_empty() {
            said.push(format!("point views {} at the new column (CREATE OR REPLACE VIEW: the same views, grants and dependents)", names(&self.views)));
        }
        if !self.policies.is_empty() {
            let policies: Vec<String> = self.policies.iter().map(|p| format!("{} on {}", quote(&p.name), p.table)).collect();
            said.push(format!("rewrite policies {} to use the new column (ALTER POLICY)", policies.join(", ")));
        }
        said
    }

    /// Takes the swap's locks up front, views built on others first, then the tables of
    /// policies, then `table`: the order in which a query through one view locks them. A query
    /// that names two of the views can lock them in another order and wait for the swap while
    /// holding one that the swap waits for. So that such a query is never the one cancelled:
    /// the swap checks for a deadlock after 20 ms of waiting instead of deadlock_timeout (it is
    /// then the victim of a cycle that exists when it starts waiting), and each of its waits ends
    /// after 80% of deadlock_timeout at most (before a query that queued behind it checks, so a
    /// cycle formed later is broken by the swap giving up). A try that fails either way is
    /// undone and reported as lock_not_available, which the job retries.
    pub fn lock(&self, table: &Table) -> Result<()> {
        let mut oids: Vec<pg_sys::Oid> = self.views.iter().rev().map(|v| v.oid).collect();
        oids.extend(self.policies.iter().map(|p| p.table_oid).filter(|o| *o != table.oid));
        oids.push(table.oid);
        let setting = |name: &str| {
            Spi::get_one_with_args::<String>("SELECT setting FROM pg_catalog.pg_settings WHERE name = $1", &[name.into()])
                .ok()
                .flatten()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let (lock_timeout, deadlock_timeout) = (setting("lock_timeout"), setting("deadlock_timeout"));
        let bound = deadlock_timeout * 4 / 5;
        let guc = GucScope::new();
        if bound > 0 && (lock_timeout == 0 || lock_timeout > bound) {
            guc.set("lock_timeout", &format!("{bound}ms"));
        }
        // deadlock_timeout is superuser-only: set with internal rights, for this scope only.
        guc.set_internal("deadlock_timeout", "20ms");
        let locked = subxact::run(|| {
            let mode = pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE;
            let mut seen = Vec::new();
            for oid in oids {
                if !seen.contains(&oid) {
                    unsafe { pg_sys::LockRelationOid(oid, mode) };
                    seen.push(oid);
                }
            }
        });
        drop(guc);
        locked.map_err(|e| {
            let code = if matches!(e.code, PgSqlErrorCode::ERRCODE_T_R_DEADLOCK_DETECTED | PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE) {
                PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
            } else {
                e.code
            };
            let mut f = Failure::new(code, format!("contract could not lock table {} and the views and tables it carries: {}", table.name, e.message))
                .hint("Nothing was changed. It is tried again; see migrate.lock_timeout and migrate.lock_retries.");
            f.detail = e.detail;
            f
        })
    }
}

/// A view or policy made between finding them and locking the table (which no new view can
/// use until the swap ends) fails this try; the next one finds it first.
pub fn same_after_locking(found: &Carry, now: &Carry) -> Result<()> {
    let views = |c: &Carry| c.views.iter().map(|v| v.oid).collect::<Vec<_>>();
    let policies = |c: &Carry| c.policies.iter().map(|p| (p.table_oid, p.name.clone())).collect::<Vec<_>>();
    if views(found) == views(now) && policies(found) == policies(now) {
        return Ok(());
    }
    Err(Failure::new(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, "views or policies on the old column changed while contract's swap took its locks")
        .hint("The job retries the swap, which finds them again."))
}

/// `table` and, recursively, its partitions and inheritance children (as `tree(relid)`, with
/// the table as $1): renaming or dropping its column does the same to theirs, so what uses
/// theirs is carried too.
const TREE: &str = "WITH RECURSIVE tree(relid) AS (
                        SELECT $1::pg_catalog.oid
                        UNION
                        SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.relid)";

fn strings(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Vec<String> {
    Spi::connect(|client| {
        client
            .select(sql, None, args)
            .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
            .unwrap_or_default()
    })
}

/// The views and policies that use `old`, and what contract cannot carry (refused here, before
/// anything changes). `new` is the column that takes its place.
pub fn find(table: &Table, old: &Column, new: &Column, final_name: &str) -> Result<Carry> {
    with_pinned_search_path(|| find_pinned(table, old, new, final_name))
}

/// One object that depends on the old column or on a view that will be recreated.
struct Dependent {
    kind: String,
    oid: pg_sys::Oid,
    described: String,
}

fn find_pinned(table: &Table, old: &Column, new: &Column, final_name: &str) -> Result<Carry> {
    let recreate = old.type_sql != new.type_sql;
    let mut carry = Carry { recreate, ..Default::default() };
    let mut blockers: Vec<String> = Vec::new();
    // Rules that use the column: the _RETURN rules of views and materialized views, and user
    // rules on views.
    let direct = dependents(
        &format!(
            "{TREE}
             SELECT CASE WHEN r.rulename = '_RETURN' AND c.relkind = 'v' THEN 'view'
                         WHEN r.rulename = '_RETURN' AND c.relkind = 'm' THEN 'materialized view'
                         ELSE 'rule' END,
                    r.ev_class,
                    CASE WHEN r.rulename = '_RETURN' THEN c.oid::pg_catalog.regclass::text
                         ELSE pg_catalog.pg_describe_object(d.classid, d.objid, 0) END
               FROM tree
               JOIN pg_catalog.pg_depend d ON d.refobjid = tree.relid
               JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
               JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
               JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
              WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name
                -- Rules on the table itself are carry's (refused there by name).
                AND r.ev_class NOT IN (SELECT relid FROM tree)
              GROUP BY 1, 2, 3
              ORDER BY 3"
        ),
        &[table.oid.into(), old.name.as_str().into()],
    );
    // (dependency, dependent) pairs among the views, to order them.
    let mut edges: Vec<(pg_sys::Oid, pg_sys::Oid)> = Vec::new();
    let mut queue: Vec<Dependent> = direct;
    let mut at = 0;
    while at < queue.len() {
        let d = &queue[at];
        at += 1;
        match d.kind.as_str() {
            "view" => {
                if carry.views.iter().any(|v| v.oid == d.oid) {
                    continue;
                }
                let view = d.oid;
                carry.views.push(View { oid: view, name: d.described.clone(), owner: pg_sys::InvalidOid });
                if recreate {
                    let more = view_dependents(view);
                    for m in &more {
                        if m.kind == "view" {
                            edges.push((view, m.oid));
                        }
                    }
                    queue.extend(more);
                }
            }
            kind => {
                let named = if kind == "materialized view" { format!("materialized view {}", d.described) } else { d.described.clone() };
                if !blockers.contains(&named) {
                    blockers.push(named);
                }
            }
        }
    }
    if !blockers.is_empty() {
        let how = if recreate {
            "uses the column, or is built on a view that contract has to drop and recreate (the column's type changes)"
        } else {
            "uses the column"
        };
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            format!("cannot contract: column {} of table {} is used by {}", quote(&old.name), table.name, blockers.join(", ")),
        )
        .detail(format!(
            "Contract carries views and policies to the new column in its swap; it cannot carry materialized views, rules or other objects that depend on them. Each of these {how}."
        ))
        .hint(format!(
            "Nothing was changed. Save their definitions, drop them, contract, then create them again on column {}: for a materialized view, SELECT pg_get_viewdef('name'::regclass) gives its query; DROP MATERIALIZED VIEW name; SELECT migrate.contract(change); CALL migrate.wait(job); CREATE MATERIALIZED VIEW name AS <the query, using the new column>.",
            quote(final_name)
        )));
    }
    carry.views = in_dependency_order(carry.views, &edges);
    check_views(&mut carry, table)?;
    carry.policies = policies(table, old);
    check_policies(&carry, table)?;
    Ok(carry)
}

fn dependents(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Vec<Dependent> {
    Spi::connect(|client| {
        client
            .select(sql, None, args)
            .map(|rows| {
                rows.filter_map(|r| {
                    Some(Dependent {
                        kind: r.get::<String>(1).ok().flatten()?,
                        oid: r.get::<pg_sys::Oid>(2).ok().flatten().unwrap_or(pg_sys::InvalidOid),
                        described: r.get::<String>(3).ok().flatten()?,
                    })
                })
                .collect()
            })
            .unwrap_or_default()
    })
}

/// What depends on view `view` besides what belongs to it (its _RETURN rule, row type, column
/// defaults, triggers): views built on it, and anything else (refused by the caller).
fn view_dependents(view: pg_sys::Oid) -> Vec<Dependent> {
    dependents(
        "SELECT DISTINCT
                CASE WHEN r.rulename = '_RETURN' AND c.relkind = 'v' THEN 'view'
                     WHEN r.rulename = '_RETURN' AND c.relkind = 'm' THEN 'materialized view'
                     ELSE 'other' END,
                r.ev_class,
                CASE WHEN r.rulename = '_RETURN' THEN c.oid::pg_catalog.regclass::text
                     ELSE pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) END
           FROM pg_catalog.pg_depend d
           LEFT JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = d.objid
           LEFT JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
           LEFT JOIN pg_catalog.pg_trigger tg ON d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND tg.oid = d.objid
           LEFT JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND ad.oid = d.objid
          WHERE ((d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1)
                 OR (d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
                     AND d.refobjid = (SELECT reltype FROM pg_catalog.pg_class WHERE oid = $1)))
            AND NOT (d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.deptype = 'i')
            AND NOT (r.ev_class IS NOT DISTINCT FROM $1 AND r.rulename = '_RETURN')
            AND NOT (tg.tgrelid IS NOT DISTINCT FROM $1 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass)
            AND NOT (ad.adrelid IS NOT DISTINCT FROM $1 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass)
          ORDER BY 3",
        &[view.into()],
    )
}

/// Views ordered so that each comes after those it is built on.
fn in_dependency_order(views: Vec<View>, edges: &[(pg_sys::Oid, pg_sys::Oid)]) -> Vec<View> {
    let mut left = views;
    let mut out: Vec<View> = Vec::new();
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|v| !edges.iter().any(|(from, to)| *to == v.oid && *from != v.oid && left.iter().any(|l| l.oid == *from)))
            .unwrap_or(0);
        out.push(left.remove(ready));
    }
    out
}

/// The swap acts on each view as its owner: the change's owner must be able to (be a member
/// of the owning role), and the owner needs CREATE on the view's schema (CREATE OR REPLACE VIEW
/// checks it too). A temporary view belongs to another session and cannot be touched; a
/// recreated view can only keep grants its owner made.
fn check_views(carry: &mut Carry, table: &Table) -> Result<()> {
    let mut problems = Vec::new();
    for view in &mut carry.views {
        let row = Spi::connect(|client| {
            let mut rows = client
                .select(
                    "SELECT c.relowner, c.relowner::pg_catalog.regrole::text,
                            pg_catalog.pg_has_role(c.relowner, 'USAGE'),
                            c.relpersistence = 't',
                            pg_catalog.has_schema_privilege(c.relowner, c.relnamespace, 'CREATE'),
                            EXISTS (SELECT FROM pg_catalog.aclexplode(c.relacl) a WHERE a.grantor <> c.relowner)
                            OR EXISTS (SELECT FROM pg_catalog.pg_attribute at, pg_catalog.aclexplode(at.attacl) a
                                        WHERE at.attrelid = c.oid AND a.grantor <> c.relowner),
                            (SELECT pg_catalog.string_agg(x, ', ') FROM (
                               SELECT 'a security label' AS x
                                WHERE EXISTS (SELECT FROM pg_catalog.pg_seclabel l
                                               WHERE l.objoid = c.oid AND l.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass)
                               UNION ALL
                               SELECT 'membership in extension ' || pg_catalog.quote_ident(e.extname)
                                 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
                                  AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e') s)
                       FROM pg_catalog.pg_class c WHERE c.oid = $1",
                    None,
                    &[view.oid.into()],
                )
                .ok()?;
            let r = rows.next()?;
            Some((
                r.get::<pg_sys::Oid>(1).ok().flatten()?,
                r.get::<String>(2).ok().flatten()?,
                r.get::<bool>(3).ok().flatten()?,
                r.get::<bool>(4).ok().flatten()?,
                r.get::<bool>(5).ok().flatten()?,
                r.get::<bool>(6).ok().flatten()?,
                r.get::<String>(7).ok().flatten(),
            ))
        });
        let Some((owner, owner_name, can_act, temporary, can_create, other_grantors, uncarried)) = row else {
            problems.push(format!("{} was dropped meanwhile", view.name));
            continue;
        };
        view.owner = owner;
        if temporary {
            problems.push(format!("{} is a temporary view of another session", view.name));
        } else if !can_act {
            problems.push(format!("{} is owned by role {owner_name}, which the change's owner cannot act for", view.name));
        } else if !can_create {
            // CREATE OR REPLACE VIEW checks it too.
            problems.push(format!("{} would be written again by its owner {owner_name}, who has no CREATE privilege on its schema", view.name));
        } else if carry.recreate && other_grantors {
            problems.push(format!("{} has grants made by roles other than its owner {owner_name}, which a recreated view cannot keep", view.name));
        } else if let (true, Some(what)) = (carry.recreate, uncarried) {
            problems.push(format!("{} has {what}, which a recreated view would lose", view.name));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, format!("cannot contract: views that use the old column of table {} cannot be carried to the new one", table.name))
        .detail(format!("{}.", problems.join("; ")))
        .hint("Nothing was changed. Contract as (or with a change owned by) a member of each view's owning role, or change the views yourself (ALTER VIEW ... OWNER TO, GRANT, or drop and recreate them after contract), then call again."))
}

/// Row-level security policies whose USING or WITH CHECK expression uses the column, on this
/// table or (through a subquery) on another.
fn policies(table: &Table, old: &Column) -> Vec<Policy> {
    Spi::connect(|client| {
        client
            .select(
                &format!(
                    "{TREE}
                     SELECT DISTINCT p.polname::text, p.polrelid, p.polrelid::pg_catalog.regclass::text, c.relowner
                       FROM tree
                       JOIN pg_catalog.pg_depend d ON d.refobjid = tree.relid
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                       JOIN pg_catalog.pg_policy p ON p.oid = d.objid
                       JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
                      WHERE d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass
                        AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                        AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name
                      ORDER BY 3, 1"
                ),
                None,
                &[table.oid.into(), old.name.as_str().into()],
            )
            .map(|rows| {
                rows.filter_map(|r| {
                    Some(Policy {
                        name: r.get::<String>(1).ok().flatten()?,
                        table_oid: r.get::<pg_sys::Oid>(2).ok().flatten()?,
                        table: r.get::<String>(3).ok().flatten()?,
                        owner: r.get::<pg_sys::Oid>(4).ok().flatten()?,
                    })
                })
                .collect()
            })
            .unwrap_or_default()
    })
}

/// ALTER POLICY needs the owner of the policy's table: a policy on another table whose owner
/// the change's owner cannot act for is refused.
fn check_policies(carry: &Carry, table: &Table) -> Result<()> {
    let foreign: Vec<String> = carry
        .policies
        .iter()
        .filter(|p| !unsafe { pg_sys::has_privs_of_role(pg_sys::GetUserId(), p.owner) })
        .map(|p| format!("policy {} on {}", quote(&p.name), p.table))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("cannot contract: {} use the old column of table {} and belong to tables whose owners the change's owner cannot act for", foreign.join(", "), table.name),
    )
    .detail("Contract rewrites policies that use the old column with ALTER POLICY, which only the owner of the policy's table may run.")
    .hint("Nothing was changed. Have the owner of those tables rewrite the policies to use the new column (ALTER POLICY ... USING (...)), or contract as a member of their owning role."))
}

/// The swap, in the contract's one transaction after the sync trigger is gone: the old column
/// becomes `marker`, the new one takes its final name, the views and policies are written again
/// from their deparsed text with the marker replaced by the final name, and the old column is
/// dropped (RESTRICT: anything still using it fails the swap, which changes nothing).
pub fn swap(table: &Table, carry: &Carry, id: i64, old: &str, new: &str, final_name: &str) -> Result<()> {
    with_pinned_search_path(|| swap_pinned(table, carry, id, old, new, final_name, false))
}

/// The swap's view and policy part, done and undone in a subtransaction when contract is
/// called: a view that cannot be created again on the new column (a function or operator the
/// new type lacks, say) is refused now, before the job's slow work, not at its last step. Its
/// locks are taken politely (migrate.lock_timeout and retries) and released at the end.
pub fn rehearse(table: &Table, carry: &Carry, id: i64, old: &str, new: &str, final_name: &str) -> Result<()> {
    let limits = Limits::from_settings();
    let what = format!("the rehearsal of contract {id}'s swap of views and policies");
    let said = carry.said().join("; ");
    let site = Site { what, sql: &said, aftermath: "Nothing was changed: the call's statements were rolled back." };
    let mut refused: Option<Failure> = None;
    run_politely(&site, &limits, true, |lock_timeout| {
        let watch = crate::ddl::watch::Watch::start(limits.statement_timeout_ms);
        let tried = subxact::run_and_roll_back(|| {
            let guc = GucScope::new();
            guc.set("lock_timeout", &format!("{lock_timeout}ms"));
            let done = carry.lock(table).and_then(|()| with_pinned_search_path(|| swap_pinned(table, carry, id, old, new, final_name, true)));
            drop(guc);
            done
        });
        let (timed_out, awaited) = (watch.timed_out(), watch.awaited_lock());
        drop(watch);
        let failure = match tried {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(f)) => f,
            Err(caught) => caught.into(),
        };
        if failure.code == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE || timed_out {
            let error = subxact::Caught { code: failure.code, message: failure.message, detail: failure.detail, hint: failure.hint };
            return Err(Try { error, timed_out, blocker: awaited.map(|lock| crate::ddl::blockers::describe(&lock)) });
        }
        refused = Some(failure);
        Ok(())
    })?;
    refused.map_or(Ok(()), Err)
}

fn run(sql: &str) -> Result<()> {
    Spi::run(sql).map_err(|e| Failure::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("{e}: {sql}")))
}

/// Runs the statements that carry `what` (a view or a policy) as `owner`; an error names it.
/// A lock not granted (or a deadlock) stays lock_not_available, which the job retries.
fn carry_as(owner: pg_sys::Oid, what: &str, final_name: &str, statements: &[String]) -> Result<()> {
    let mut at = String::new();
    let done = subxact::run(|| {
        as_role_restricted(owner, || {
            for s in statements {
                at = s.clone();
                if let Err(e) = Spi::run(s) {
                    pgrx::error!("{e}");
                }
            }
        })
    });
    done.map_err(|e| {
        if matches!(e.code, PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE | PgSqlErrorCode::ERRCODE_T_R_DEADLOCK_DETECTED) {
            return Failure::new(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, format!("{what} could not be locked: {}", e.message));
        }
        Failure::new(e.code, format!("cannot contract: {what} cannot be carried to column {}: {}", quote(final_name), e.message))
            .detail(format!("{}Statement: {}", e.detail.map(|d| d + "\n").unwrap_or_default(), crate::ddl::retry::fragment(&at)))
            .hint(if what.starts_with("view") {
                "Nothing was changed. Save its definition and drop it, contract, then create it again for the new column; or change it so that its definition also works with the new column's type (pg_get_viewdef shows what contract runs), then call contract again."
            } else {
                "Nothing was changed. Change the policy so that its expressions also work with the new column's type (ALTER POLICY), or drop it, contract, and create it again; then call contract again."
            })
    })
}

/// What a view is, written as statements that make it again.
struct Captured {
    /// CREATE [OR REPLACE] VIEW, then (recreated views) grants, comments, defaults, triggers.
    statements: Vec<String>,
    /// The table's columns the view uses, by their final names, to check the new view.
    columns: Vec<String>,
}

fn swap_pinned(table: &Table, carry: &Carry, id: i64, old: &str, new: &str, final_name: &str, rehearsal: bool) -> Result<()> {
    let marker = marker(id, table);
    let before: Vec<String> = carry
        .views
        .iter()
        .flat_map(|v| strings("SELECT pg_catalog.pg_get_viewdef($1)", &[v.oid.into()]))
        .chain(carry.policies.iter().flat_map(policy_texts))
        .collect();
    if before.iter().any(|t| t.contains(&marker)) {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT, format!("the marker {marker} already occurs in a view or policy of table {}", table.name))
            .hint("Run the contract job again (SELECT migrate.contract(change)): the next try picks another marker."));
    }
    run(&format!("ALTER TABLE {} RENAME COLUMN {} TO {}", table.name, quote(old), quote(&marker)))?;
    if final_name != new {
        run(&format!("ALTER TABLE {} RENAME COLUMN {} TO {}", table.name, quote(new), quote(final_name)))?;
    }
    let replace = |text: &str| text.replace(&marker, &quote(final_name));
    let captured: Vec<Captured> = carry.views.iter().map(|v| capture(table, v, carry.recreate, &marker, final_name, &replace)).collect();
    let policies: Vec<String> = carry.policies.iter().map(|p| alter_policy(p, &replace)).collect();
    if carry.recreate {
        let names: Vec<String> = carry.views.iter().map(|v| v.name.clone()).collect();
        run(&format!("DROP VIEW {}", names.join(", ")))?;
    }
    for (view, c) in carry.views.iter().zip(&captured) {
        carry_as(view.owner, &format!("view {}", view.name), final_name, &c.statements)?;
    }
    for (policy, sql) in carry.policies.iter().zip(&policies) {
        carry_as(policy.owner, &format!("policy {} on {}", quote(&policy.name), policy.table), final_name, std::slice::from_ref(sql))?;
    }
    for (view, c) in carry.views.iter().zip(&captured) {
        let oid = Spi::get_one_with_args::<pg_sys::Oid>("SELECT pg_catalog.to_regclass($1)::pg_catalog.oid", &[view.name.as_str().into()]).ok().flatten();
        let now = table_columns(table, oid, None);
        if now != c.columns {
            // PostgreSQL prints a view whose FROM gives the table column aliases, or joins it
            // USING the column, with an alias list by position, where the marker is not named.
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("cannot contract: view {} cannot be carried to column {} of {}", view.name, quote(final_name), table.name),
            )
            .detail(format!(
                "Written again, it would use other columns of the table (before: {}; after: {}): it gives the table column aliases or joins it USING the column.",
                c.columns.join(", "),
                now.join(", ")
            ))
            .hint("Nothing was changed. Write the view without column aliases on the table and with ON instead of USING (CREATE OR REPLACE VIEW), or drop it, contract, and create it again on the new column; then call contract again."));
        }
    }
    if rehearsal {
        // The sync trigger and what contract's job rebuilds still hang on the old column.
        return Ok(());
    }
    run(&format!("ALTER TABLE {} DROP COLUMN {}", table.name, quote(&marker)))
}

/// A name no view or policy text can contain by chance; it lives only inside the swap.
fn marker(id: i64, table: &Table) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut n = 0u32;
    loop {
        let name = shorten(&format!("pg_migrate_{id}_old_{:08x}", nanos.wrapping_add(n)), MAX_IDENTIFIER).to_string();
        if !table.has_column(&name) {
            return name;
        }
        n += 1;
    }
}

/// The columns of `table` and of its partitions and inheritance children that view `view` uses,
/// as "relation.column", sorted; with `marker_as`, the marker read as the final name.
fn table_columns(table: &Table, view: Option<pg_sys::Oid>, marker_as: Option<(&str, &str)>) -> Vec<String> {
    let Some(view) = view else { return Vec::new() };
    let mut columns: Vec<String> = strings(
        &format!(
            "{TREE}
             SELECT DISTINCT d.refobjid::pg_catalog.regclass::text || E'\\t' || a.attname::text
               FROM tree
               JOIN pg_catalog.pg_depend d ON d.refobjid = tree.relid
               JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
               JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND r.ev_class = $2 AND r.rulename = '_RETURN'"
        ),
        &[table.oid.into(), view.into()],
    )
    .into_iter()
    .map(|c| match c.split_once('\t') {
        Some((relation, column)) if marker_as.is_some_and(|(marker, _)| column == marker) => {
            format!("{relation}.{}", quote(marker_as.map(|(_, name)| name).unwrap_or_default()))
        }
        Some((relation, column)) => format!("{relation}.{}", quote(column)),
        None => c,
    })
    .collect();
    columns.sort();
    columns.dedup();
    columns
}

fn capture(table: &Table, view: &View, recreate: bool, marker: &str, final_name: &str, replace: &dyn Fn(&str) -> String) -> Captured {
    let oid = view.oid;
    let definition = strings("SELECT pg_catalog.pg_get_viewdef($1)", &[oid.into()]).concat();
    let definition = replace(definition.trim().trim_end_matches(';'));
    let options = strings(
        "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(pg_catalog.split_part(o, '=', 1)) || ' = '
                                      || pg_catalog.quote_literal(pg_catalog.substr(o, pg_catalog.strpos(o, '=') + 1)), ', ')
           FROM pg_catalog.pg_class c, pg_catalog.unnest(c.reloptions) o WHERE c.oid = $1",
        &[oid.into()],
    )
    .concat();
    let with = if options.is_empty() { String::new() } else { format!(" WITH ({options})") };
    let verb = if recreate { "CREATE VIEW" } else { "CREATE OR REPLACE VIEW" };
    let mut statements = vec![format!("{verb} {}{with} AS\n{definition}", view.name)];
    if recreate {
        statements.extend(strings(
            "SELECT s FROM (
               SELECT 1 AS k, 0 AS n, pg_catalog.format('REVOKE ALL ON TABLE %s FROM %s', $2, c.relowner::pg_catalog.regrole) AS s
                 FROM pg_catalog.pg_class c WHERE c.oid = $1 AND c.relacl IS NOT NULL
               UNION ALL
               SELECT 2, a.n, pg_catalog.format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, $2,
                             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END,
                             CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
                 FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) WITH ORDINALITY AS a(grantor, grantee, privilege_type, is_grantable, n)
                WHERE c.oid = $1
               UNION ALL
               SELECT 3, at.attnum * 1000 + a.n, pg_catalog.format('GRANT %s (%I) ON TABLE %s TO %s%s', a.privilege_type, at.attname, $2,
                             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END,
                             CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
                 FROM pg_catalog.pg_attribute at, pg_catalog.aclexplode(at.attacl) WITH ORDINALITY AS a(grantor, grantee, privilege_type, is_grantable, n)
                WHERE at.attrelid = $1
               UNION ALL
               SELECT 4, 0, pg_catalog.format('COMMENT ON VIEW %s IS %L', $2, d.description)
                 FROM pg_catalog.pg_description d
                WHERE d.objoid = $1 AND d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0
               UNION ALL
               SELECT 5, d.objsubid, pg_catalog.format('COMMENT ON COLUMN %s.%I IS %L', $2, at.attname, d.description)
                 FROM pg_catalog.pg_description d
                 JOIN pg_catalog.pg_attribute at ON at.attrelid = d.objoid AND at.attnum = d.objsubid
                WHERE d.objoid = $1 AND d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid > 0
               UNION ALL
               SELECT 6, ad.adnum, pg_catalog.format('ALTER VIEW %s ALTER COLUMN %I SET DEFAULT %s', $2, at.attname,
                                                     pg_catalog.pg_get_expr(ad.adbin, ad.adrelid))
                 FROM pg_catalog.pg_attrdef ad
                 JOIN pg_catalog.pg_attribute at ON at.attrelid = ad.adrelid AND at.attnum = ad.adnum
                WHERE ad.adrelid = $1
               UNION ALL
               SELECT 7, t.oid::int, pg_catalog.pg_get_triggerdef(t.oid)
                 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1 AND NOT t.tgisinternal
               UNION ALL
               SELECT 8, t.oid::int, pg_catalog.format('COMMENT ON TRIGGER %I ON %s IS %L', t.tgname, $2, d.description)
                 FROM pg_catalog.pg_trigger t
                 JOIN pg_catalog.pg_description d ON d.objoid = t.oid AND d.classoid = 'pg_catalog.pg_trigger'::pg_catalog.regclass
                WHERE t.tgrelid = $1 AND NOT t.tgisinternal
             ) s ORDER BY k, n",
            &[oid.into(), view.name.as_str().into()],
        ));
    }
    let columns = table_columns(table, Some(oid), Some((marker, final_name)));
    Captured { statements, columns }
}

/// A policy's USING and WITH CHECK expressions as the deparser prints them now.
fn policy_texts(p: &Policy) -> Vec<String> {
    strings(
        "SELECT e FROM pg_catalog.pg_policy p,
                LATERAL (VALUES (pg_catalog.pg_get_expr(p.polqual, p.polrelid)), (pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))) v(e)
          WHERE p.polrelid = $1 AND p.polname = $2 AND e IS NOT NULL",
        &[p.table_oid.into(), p.name.as_str().into()],
    )
}

/// ALTER POLICY with its expressions on the new column; its roles and command stay as they are.
fn alter_policy(p: &Policy, replace: &dyn Fn(&str) -> String) -> String {
    let row = Spi::connect(|client| {
        let mut rows = client
            .select(
                "SELECT pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)
                   FROM pg_catalog.pg_policy p WHERE p.polrelid = $1 AND p.polname = $2",
                None,
                &[p.table_oid.into(), p.name.as_str().into()],
            )
            .ok()?;
        let r = rows.next()?;
        Some((r.get::<String>(1).ok().flatten(), r.get::<String>(2).ok().flatten()))
    });
    let (using, check) = row.unwrap_or((None, None));
    let mut sql = format!("ALTER POLICY {} ON {}", quote(&p.name), p.table);
    if let Some(u) = using {
        sql.push_str(&format!(" USING ({})", replace(&u)));
    }
    if let Some(c) = check {
        sql.push_str(&format!(" WITH CHECK ({})", replace(&c)));
    }
    sql
}
