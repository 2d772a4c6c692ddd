//! Indexes on partitioned tables without blocking writes. PostgreSQL cannot build an index on a
//! partitioned table CONCURRENTLY (15 to 18 alike), and a plain CREATE INDEX on one holds SHARE
//! on every partition for the whole build. A job does what a careful DBA does by hand instead:
//!
//! 1. `CREATE INDEX … ON ONLY parent`: an INVALID index, catalog only, a brief SHARE lock on the
//!    parent taken politely (lock_timeout and retries). From its commit on, PostgreSQL itself
//!    gives every partition attached or created later a copy of it (ATTACH PARTITION and CREATE
//!    TABLE … PARTITION OF clone each partitioned index of the parent, invalid ones included).
//! 2. `IndexPartitions`: lists the parent's partitions *now* (after step 1 committed: none can be
//!    missed) and puts, right after itself, one `PartitionIndex` step per partition without an
//!    attached index, keyed by the partition's OID. That step decides when it runs, from the
//!    catalog: a partition dropped, detached or being detached meanwhile is skipped (and what the
//!    job built on it dropped), one renamed or moved is found by its OID. A leaf gets
//!    `CREATE INDEX CONCURRENTLY` under a name chosen then and saved first, then
//!    `ALTER INDEX parent ATTACH PARTITION` (only the ATTACH when it already has a matching valid
//!    index, as ATTACH PARTITION would use: recorded as adopted, for abort); a sub-partitioned
//!    table gets `CREATE INDEX … ON ONLY` it, `IndexPartitions` for that index, then the ATTACH.
//!    PostgreSQL marks a partitioned index valid when its last partition's index is attached.
//! 3. `CheckIndex`: the parent index is valid; if not, its partitions are listed again. When
//!    every partition has a valid index attached and the parent is still INVALID (the last
//!    partition without one was dropped or detached), nothing can validate it: the job fails
//!    with the way back (abort, build again).
//!
//! Each step saves what it did (the name it chose before the build, the index's OID after, the
//! adopted index before its ATTACH) with the job's steps, and every statement is bounded or
//! harmless to repeat, so a crash at any step resumes: finished partitions are skipped, an
//! INVALID index a crashed build left is found by its name on that partition, dropped and built
//! again.
//!
//! `DropPartitionedIndex` is the other direction: DROP INDEX CONCURRENTLY is refused for
//! partitioned indexes, and a partition's index cannot be detached or dropped on its own, so the
//! only correct way is one plain DROP INDEX of the parent index. It takes ACCESS EXCLUSIVE on the
//! parent table, every partition and their indexes, but only deletes catalog rows (the files go
//! at commit): each try is limited as a whole to its lock_timeout and retried with backoff, so
//! no writer waits behind it longer than one try.

use super::executor::{in_transaction, transaction, try_top_level};
use crate::catalog::jobs::{self, Internal, Step};
use crate::ddl::retry::{schedule, sleep_ms, Limits};
use crate::error::{Failure, Result};
use crate::expand::rewrite::{quote, shorten, MAX_IDENTIFIER};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::collections::HashSet;

/// How to go on after a job of these steps failed (migrate.resume is for backfills only).
const RESUME: &str = "go on: SELECT migrate.contract(change) resumes a contract's job; a create_index or drop_index change is undone with SELECT migrate.abort(change) and made again";

/// How many times CheckIndex lists the partitions again before it gives up.
const ROUNDS: u32 = 3;

/// A partitioned index as the steps need it.
struct Parent {
    oid: pg_sys::Oid,
    /// Quoted and schema-qualified.
    qualified: String,
    name: String,
    table: pg_sys::Oid,
    /// Quoted and schema-qualified.
    table_qualified: String,
    table_relname: String,
    table_kind: String,
    unique: bool,
    valid: bool,
    /// pg_get_indexdef after `ON [ONLY] table `: `USING btree (kind) WHERE …`.
    tail: String,
}

fn parent(index: &str) -> Result<Parent> {
    let row = Spi::connect(|client| {
        let mut rows = client
            .select(
                "SELECT x.indexrelid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
                        c.relname::text, x.indrelid, t.relname::text, t.relkind::text, x.indisunique, x.indisvalid,
                        pg_catalog.pg_get_indexdef(x.indexrelid),
                        'CREATE ' || CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
                          || pg_catalog.quote_ident(c.relname) || ' ON ',
                        pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.relname) || ' '
                   FROM pg_catalog.pg_index x
                   JOIN pg_catalog.pg_class c ON c.oid = x.indexrelid
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
                   JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                  WHERE x.indexrelid = pg_catalog.to_regclass($1)",
                None,
                &[index.into()],
            )
            .ok()?;
        let r = rows.next()?;
        let text = |i| r.get::<String>(i).ok().flatten().unwrap_or_default();
        let def = text(9);
        let (head, table) = (text(10), text(11));
        let tail = [format!("{head}ONLY {table}"), format!("{head}{table}")]
            .iter()
            .find_map(|prefix| def.strip_prefix(prefix.as_str()).map(str::to_string))
            .unwrap_or_default();
        Some(Parent {
            oid: r.get::<pg_sys::Oid>(1).ok().flatten()?,
            qualified: text(2),
            name: text(3),
            table: r.get::<pg_sys::Oid>(4).ok().flatten()?,
            table_qualified: table.trim_end().to_string(),
            table_relname: text(5),
            table_kind: text(6),
            unique: r.get::<bool>(7).ok().flatten().unwrap_or(false),
            valid: r.get::<bool>(8).ok().flatten().unwrap_or(false),
            tail,
        })
    });
    let p = row.ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, format!("index {index} does not exist"))
            .detail("The job builds the index on each partition of a partitioned table; the partitioned index it started with is gone.")
            .hint("It was dropped while the job ran. Cancel the job, or start the change again.")
    })?;
    if p.table_kind != "p" || p.tail.is_empty() {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE, format!("index {} is not an index of a partitioned table", p.qualified))
            .hint("Only partitioned indexes are built partition by partition."));
    }
    Ok(p)
}

/// A partition of a partitioned table.
struct Partition {
    oid: pg_sys::Oid,
    qualified: String,
    relname: String,
    schema: pg_sys::Oid,
    /// r (a leaf), p (sub-partitioned), f (foreign)
    kind: String,
    /// The index attached to the parent index for it, if any: (oid, qualified name, valid).
    attached: Option<(pg_sys::Oid, String, bool)>,
    /// Whether the job's owner may index it (the job builds as its owner).
    owned: bool,
}

fn partitions(p: &Parent) -> Vec<Partition> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), c.relname::text,
                        c.relnamespace, c.relkind::text, a.indexrelid, a.name, a.indisvalid,
                        pg_catalog.pg_has_role(c.relowner, 'USAGE')
                   FROM pg_catalog.pg_inherits i
                   JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                   LEFT JOIN LATERAL (
                        SELECT x.indexrelid, x.indisvalid,
                               pg_catalog.quote_ident(xn.nspname) || '.' || pg_catalog.quote_ident(xc.relname) AS name
                          FROM pg_catalog.pg_inherits xi
                          JOIN pg_catalog.pg_index x ON x.indexrelid = xi.inhrelid
                          JOIN pg_catalog.pg_class xc ON xc.oid = x.indexrelid
                          JOIN pg_catalog.pg_namespace xn ON xn.oid = xc.relnamespace
                         WHERE xi.inhparent = $2 AND x.indrelid = c.oid) a ON true
                  WHERE i.inhparent = $1 AND NOT i.inhdetachpending
                  ORDER BY c.relname",
                None,
                &[p.table.into(), p.oid.into()],
            )
            .map(|rows| {
                rows.map(|r| Partition {
                    oid: r.get::<pg_sys::Oid>(1).ok().flatten().unwrap_or_default(),
                    qualified: r.get::<String>(2).ok().flatten().unwrap_or_default(),
                    relname: r.get::<String>(3).ok().flatten().unwrap_or_default(),
                    schema: r.get::<pg_sys::Oid>(4).ok().flatten().unwrap_or_default(),
                    kind: r.get::<String>(5).ok().flatten().unwrap_or_default(),
                    attached: r.get::<pg_sys::Oid>(6).ok().flatten().map(|oid| {
                        (oid, r.get::<String>(7).ok().flatten().unwrap_or_default(), r.get::<bool>(8).ok().flatten().unwrap_or(false))
                    }),
                    owned: r.get::<bool>(9).ok().flatten().unwrap_or(false),
                })
                .collect()
            })
            .unwrap_or_default()
    })
}

/// A valid index of `leaf` that is attached to nothing, backs no constraint and has exactly the
/// parent index's definition: what ATTACH PARTITION would use. Its OID and name.
fn matching_index(p: &Parent, leaf: &Partition) -> Option<(pg_sys::Oid, String)> {
    let head = format!("CREATE {}INDEX ", if p.unique { "UNIQUE " } else { "" });
    Spi::connect(|client| {
        client
            .select(
                "SELECT x.indexrelid, c.relname::text
                   FROM pg_catalog.pg_index x
                   JOIN pg_catalog.pg_class c ON c.oid = x.indexrelid
                  WHERE x.indrelid = $1 AND x.indisvalid AND x.indisready AND NOT c.relispartition
                    AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid)
                    AND pg_catalog.pg_get_indexdef(x.indexrelid)
                        = $2 || pg_catalog.quote_ident(c.relname) || ' ON ' || $3 || ' ' || $4
                  ORDER BY c.relname LIMIT 1",
                None,
                &[leaf.oid.into(), head.as_str().into(), leaf.qualified.as_str().into(), p.tail.as_str().into()],
            )
            .ok()
            .and_then(|mut rows| rows.next().and_then(|r| Some((r.get::<pg_sys::Oid>(1).ok().flatten()?, r.get::<String>(2).ok().flatten()?))))
    })
}

/// A name for the partition's index that no relation of its schema has (nor one picked earlier
/// in the same listing): the parent index's name with the parent table's name replaced by the
/// partition's (`ev_kind_idx` → `ev_2024_kind_idx`), as PostgreSQL's own names go.
fn free_name(p: &Parent, part: &Partition, taken: &mut HashSet<(pg_sys::Oid, String)>) -> String {
    let rest = p.name.strip_prefix(&format!("{}_", p.table_relname)).unwrap_or(&p.name);
    free_name_for(&format!("{}_{rest}", part.relname), part.schema, taken)
}

/// `base`, or `base` with a number, cut to 63 bytes: a name no relation of `schema` has.
fn free_name_for(base: &str, schema: pg_sys::Oid, taken: &mut HashSet<(pg_sys::Oid, String)>) -> String {
    for n in 0.. {
        let suffix = if n == 0 { String::new() } else { n.to_string() };
        let name = format!("{}{suffix}", shorten(base, MAX_IDENTIFIER - suffix.len()));
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_class WHERE relname = $1 AND relnamespace = $2)",
            &[name.as_str().into(), schema.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(true);
        if !exists && taken.insert((schema, name.clone())) {
            return name;
        }
    }
    unreachable!("some suffix is free")
}

fn schema_name(oid: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>("SELECT nspname::text FROM pg_catalog.pg_namespace WHERE oid = $1", &[oid.into()])
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// One SQL step of a job, classified as a migration's statement is (the worker cleans up after
/// a failed CREATE INDEX CONCURRENTLY by the names classify() finds in it).
pub(super) fn sql_step(sql: String) -> Result<Step> {
    let script = crate::ddl::script::parse_labeled(crate::ddl::script::Direction::Up, "partition index step", &sql)?;
    let statement = script.statements.first().expect("one statement");
    Ok(Step::of(statement, 1, None))
}

/// The steps that give every partition of `p`'s table an index attached to `p`: one
/// `PartitionIndex` step per partition, keyed by its OID, that decides what to do when it runs.
fn partition_steps(p: &Parent) -> Result<Vec<Step>> {
    let parts = partitions(p);
    let not_owned: Vec<&str> = parts.iter().filter(|part| !part.owned && part.attached.is_none()).map(|part| part.qualified.as_str()).collect();
    if !not_owned.is_empty() {
        return Err(not_owned_failure(p, &not_owned.join(", ")));
    }
    let mut out = Vec::new();
    for part in parts {
        match (part.kind.as_str(), &part.attached) {
            (_, Some((_, _, true))) => {}
            ("p", Some((_, name, false))) => out.push(Step::internal(
                Internal::IndexPartitions { index: name.clone(), check: None },
                format!("-- pg_migrate: index each partition of {} for {name}", part.qualified),
            )),
            (_, Some((_, name, false))) => return Err(attached_invalid(p, &part.qualified, name)),
            ("r" | "p", None) => out.push(Step::internal(
                Internal::PartitionIndex { index: p.qualified.clone(), partition: part.oid.to_u32(), name: None, built: None, adopted: None, listed: false },
                format!("-- pg_migrate: give partition {} (OID {}) an index attached to {}", part.qualified, part.oid.to_u32(), p.qualified),
            )),
            (kind, None) => return Err(unindexable(&p.qualified, &part.qualified, kind)),
        }
    }
    Ok(out)
}

fn not_owned_failure(p: &Parent, partitions: &str) -> Failure {
    Failure::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("index {} cannot be built: the job's owner does not own partitions {partitions}", p.qualified),
    )
    .detail("The job builds the index on each partition as its owner; these partitions were created or given to another role after the change was made. Nothing was built on them.")
    .hint(format!("Give them the table's owner (ALTER TABLE ... OWNER TO), then {RESUME}."))
}

/// A leaf's index attached to `p` but INVALID: PostgreSQL never revalidates `p` through it
/// (REINDEX does not, and an attached index cannot be attached again).
fn attached_invalid(p: &Parent, partition: &str, name: &str) -> Failure {
    Failure::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("index {name} of partition {partition} is attached to index {} but INVALID", p.qualified),
    )
    .detail(format!(
        "PostgreSQL marks a partitioned index valid only when a partition's index is attached to it; an attached index cannot be attached again, and REINDEX does not revalidate the parent. {}",
        recovery_hint(p)
    ))
    .hint(recovery_hint(p))
}

/// The only way back to a valid `p` once PostgreSQL will not revalidate it: drop it, build it again.
fn recovery_hint(p: &Parent) -> String {
    format!(
        "Drop {0} and build it again: for a migrate.create_index change, SELECT migrate.abort(change) (it keeps the partitions' own indexes the job had adopted), then migrate.create_index again; for a contract, SELECT migrate.abort(change) and start the change again.",
        p.qualified
    )
}

fn unindexable(index: &str, partition: &str, kind: &str) -> Failure {
    let what = if kind == "f" { "a foreign table" } else { "not a table" };
    Failure::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, format!("index {index} cannot be built: partition {partition} is {what}"))
        .detail("PostgreSQL cannot index a foreign table, and an index of a partitioned table is valid only once every partition has one.")
        .hint("Detach that partition, or build the index on each local partition with migrate.create_index.")
}

/// Carries out an internal step of job `job` at position `at` of `steps`, in the current
/// transaction. Returns the job's new steps when it listed more (saved, with the cursor past
/// this step); None when the step is simply done.
pub fn run(job: i64, steps: &[Step], at: usize, what: &Internal) -> Result<Option<Vec<Step>>> {
    let (index, more) = match what {
        Internal::IndexPartitions { index, check } => {
            let p = parent(index)?;
            let mut more = partition_steps(&p)?;
            if let Some(round) = check {
                more.push(check_step(&p.qualified, *round));
            }
            (index, more)
        }
        Internal::CheckIndex { index, round } => {
            let p = parent(index)?;
            if p.valid {
                return Ok(None);
            }
            let mut more = partition_steps(&p)?;
            if more.is_empty() {
                return Err(stuck(&p));
            }
            if *round >= ROUNDS {
                return Err(not_valid(&p));
            }
            more.push(check_step(&p.qualified, round + 1));
            (index, more)
        }
        Internal::LeafIndexes { table, name, tail } => (table, leaf_index_steps(table, name, tail)?),
        _ => unreachable!("run outside a transaction (job::run_steps)"),
    };
    pgrx::log!("pg_migrate: job {job}: {} step(s) give the partitions of {index} their index", more.len());
    let all = insert_after(steps, at, more);
    jobs::replace_steps(job, &all, at + 1);
    Ok(Some(all))
}

/// `steps` with `more` right after step `at`, numbered again. In a migration's job (a version's
/// CREATE INDEX CONCURRENTLY on a partitioned table: partitioned_build.rs) they take the place of
/// step `at` in the migration, so that its version is done only after the last of them.
fn insert_after(steps: &[Step], at: usize, more: Vec<Step>) -> Vec<Step> {
    let mut all: Vec<Step> = steps[..=at].to_vec();
    all.extend(more.into_iter().map(|mut s| {
        if steps[at].version.is_some() {
            take_place_of(&steps[at], &mut s);
        }
        s
    }));
    all.extend_from_slice(&steps[at + 1..]);
    let total = all.len();
    for (n, s) in all.iter_mut().enumerate().filter(|(_, s)| s.version.is_none()) {
        s.number = n + 1;
        s.total = total;
    }
    all
}

/// `to` stands where `from` stood in its migration: version, direction, statement number and line.
pub fn take_place_of(from: &Step, to: &mut Step) {
    to.version = from.version.clone();
    to.direction = from.direction.clone();
    to.number = from.number;
    to.total = from.total;
    to.line = from.line;
}

/// A leaf partition of a partitioned table, with its copy of an index (see `leaves`).
pub struct Leaf {
    pub qualified: String,
    pub oid: pg_sys::Oid,
    pub kind: String,
    /// The copy's name, and whether it is there: valid, attached to nothing, backing no constraint.
    pub index: String,
    pub built: bool,
}

/// Every leaf partition of `table` (quoted, qualified), at every level, and its copy of index
/// `name`: `<name>_<partition oid>` (a name that needs no lookup to find again at the swap).
pub fn leaves(table: &str, name: &str) -> Vec<Leaf> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), c.relkind::text,
                        $2 || '_' || c.oid::text,
                        EXISTS (SELECT FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
                                 WHERE x.indrelid = c.oid AND ic.relname = $2 || '_' || c.oid::text
                                   AND x.indisvalid AND x.indisready AND NOT ic.relispartition
                                   AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid))
                   FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass($1)) t
                   JOIN pg_catalog.pg_class c ON c.oid = t.relid
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE t.isleaf
                  ORDER BY c.relname",
                None,
                &[table.into(), name.into()],
            )
            .map(|rows| {
                rows.map(|r| Leaf {
                    oid: r.get::<pg_sys::Oid>(1).ok().flatten().unwrap_or_default(),
                    qualified: r.get::<String>(2).ok().flatten().unwrap_or_default(),
                    kind: r.get::<String>(3).ok().flatten().unwrap_or_default(),
                    index: r.get::<String>(4).ok().flatten().unwrap_or_default(),
                    built: r.get::<bool>(5).ok().flatten().unwrap_or(false),
                })
                .collect()
            })
            .unwrap_or_default()
    })
}

/// `LeafIndexes`: a concurrent unique build on each leaf partition that lacks its copy.
fn leaf_index_steps(table: &str, name: &str, tail: &str) -> Result<Vec<Step>> {
    let mut out = Vec::new();
    for leaf in leaves(table, name) {
        if leaf.kind != "r" {
            return Err(unindexable(table, &leaf.qualified, &leaf.kind));
        }
        if leaf.built {
            continue;
        }
        // An INVALID copy a stopped build left on this leaf (IF NOT EXISTS would keep it): found
        // by OID on the leaf, not by name on the job's search_path as a resumed step would.
        if let Some(left) = our_index(leaf.oid, &leaf.index).filter(|o| !o.valid) {
            out.push(sql_step(format!("DROP INDEX CONCURRENTLY IF EXISTS {}", left.qualified))?);
        }
        out.push(sql_step(format!("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} {tail}", quote(&leaf.index), leaf.qualified))?);
    }
    Ok(out)
}

/// The constraints of the partitions under constraint `name` of partitioned table `table`, by
/// partition: the names the swap gives the new ones.
pub fn partition_constraint_names(table: pg_sys::Oid, name: &str) -> Vec<(pg_sys::Oid, String)> {
    Spi::connect(|client| {
        client
            .select(
                "WITH RECURSIVE tree(oid) AS (
                      SELECT k.oid FROM pg_catalog.pg_constraint k WHERE k.conrelid = $1 AND k.conname = $2
                      UNION ALL
                      SELECT k.oid FROM pg_catalog.pg_constraint k JOIN tree t ON k.conparentid = t.oid)
                 SELECT k.conrelid, k.conname::text FROM tree JOIN pg_catalog.pg_constraint k ON k.oid = tree.oid
                  WHERE k.conrelid <> $1",
                None,
                &[table.into(), name.into()],
            )
            .map(|rows| {
                rows.filter_map(|r| Some((r.get::<pg_sys::Oid>(1).ok().flatten()?, r.get::<String>(2).ok().flatten()?))).collect()
            })
            .unwrap_or_default()
    })
}

fn check_step(index: &str, round: u32) -> Step {
    Step::internal(Internal::CheckIndex { index: index.to_string(), round }, format!("-- pg_migrate: check that {index} is valid"))
}

fn not_valid(p: &Parent) -> Failure {
    let missing: Vec<String> = partitions(p)
        .into_iter()
        .filter(|part| !matches!(part.attached, Some((_, _, true))))
        .map(|part| part.qualified)
        .collect();
    Failure::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, format!("index {} is still not valid", p.qualified))
        .detail(format!(
            "Partitions without a valid index attached to it: {}.",
            if missing.is_empty() { "none (a partition's own partitions lack one)".to_string() } else { missing.join(", ") }
        ))
        .hint(format!("Partitions were attached and detached while the job listed them. Once they settle, {RESUME}."))
}

/// `p` is INVALID although every partition it has now has a valid index attached: the last one
/// that lacked an index was dropped or detached. PostgreSQL validates a partitioned index only
/// in ALTER INDEX ... ATTACH PARTITION (validatePartitionedIndex), which does nothing for an
/// index already attached, and no other command revalidates it.
fn stuck(p: &Parent) -> Failure {
    Failure::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, format!("index {} stays INVALID although every partition has its index", p.qualified))
        .detail(format!(
            "A partition that still lacked its index was dropped or detached. PostgreSQL marks a partitioned index valid only when an ATTACH PARTITION completes it, and none is left to attach; resuming cannot help. {}",
            recovery_hint(p)
        ))
        .hint(recovery_hint(p))
}

/// `DropPartitionedIndex`: DROP INDEX IF EXISTS, each try limited as a whole (lock waits and
/// the catalog work) to its lock_timeout, retried on the schedule of `limits`.
pub fn drop_politely(index: &str, limits: &Limits, heartbeat: &dyn Fn()) -> Result<()> {
    let sql = format!("DROP INDEX IF EXISTS {index}");
    bounded_politely(&sql, limits, heartbeat).map_err(|e| e.or_timed_out(|last| {
        Failure::new(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, format!("DROP INDEX {index} could not get its locks after {} tries", limits.lock_retries.max(0) + 1))
            .detail(format!("Waited for {last}. Dropping a partitioned index locks the table and every partition; each try is limited to migrate.lock_timeout."))
            .hint(format!("End or wait for the blocking session (raise migrate.lock_timeout or migrate.lock_retries for tables with many partitions), then {RESUME}."))
    }))
}

/// Runs `sql` as a top-level statement, each try limited as a whole (lock waits and the work) to
/// its lock_timeout, retried on the schedule of `limits` after a lock timeout, a timed-out try
/// or a deadlock (PostgreSQL locks a partition's index before its table when it drops them,
/// applications the other way round). No writer waits behind one try longer than the try.
fn bounded_politely(sql: &str, limits: &Limits, heartbeat: &dyn Fn()) -> std::result::Result<(), BoundedError> {
    let retries = limits.lock_retries.max(0) as u32;
    let mut last = String::new();
    for n in 0..=retries {
        let (timeout, pause) = schedule(limits.lock_timeout_ms.max(1), limits.retry_backoff_ms, n);
        if pause > 0 {
            sleep_ms(pause);
        }
        heartbeat();
        match try_top_level(sql, timeout, timeout) {
            Ok(()) => return Ok(()),
            Err(t)
                if t.error.code == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
                    || t.error.code == PgSqlErrorCode::ERRCODE_T_R_DEADLOCK_DETECTED
                    || (t.timed_out && t.error.code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED) =>
            {
                last = t.blocker.unwrap_or_else(|| "the blocking session could not be identified".to_string());
                pgrx::log!("pg_migrate: {sql}: not done within {timeout} ms (try {}/{}: {}), waiting for {last}", n + 1, retries + 1, t.error.message);
            }
            Err(t) => return Err(BoundedError::Failed(Failure::from(t.error))),
        }
    }
    Err(BoundedError::TimedOut(last))
}

enum BoundedError {
    /// Every try timed out: who held the lock the last one waited for.
    TimedOut(String),
    Failed(Failure),
}

impl BoundedError {
    /// A Failure, `timed_out` made from the last blocker's description when every try timed out.
    fn or_timed_out(self, timed_out: impl FnOnce(String) -> Failure) -> Failure {
        match self {
            BoundedError::TimedOut(last) => timed_out(last),
            BoundedError::Failed(f) => f,
        }
    }
}

/// A catalog-only statement of a step (ATTACH, RENAME, CREATE INDEX ON ONLY), bounded per try.
fn polite(sql: &str, limits: &Limits, heartbeat: &dyn Fn()) -> Result<()> {
    bounded_politely(sql, limits, heartbeat).map_err(|e| {
        e.or_timed_out(|last| {
            Failure::new(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, format!("{sql} could not get its locks after {} tries", limits.lock_retries.max(0) + 1))
                .detail(format!("Waited for {last}. Each try is limited to migrate.lock_timeout."))
                .hint(format!("End or wait for the blocking session, then {RESUME}."))
        })
    })
}

/// An index named `name` on table `table` (by OID), in the table's schema.
struct Ours {
    oid: pg_sys::Oid,
    qualified: String,
    valid: bool,
    attached: bool,
    /// i (an index) or I (a partitioned index)
    kind: String,
}

fn our_index(table: pg_sys::Oid, name: &str) -> Option<Ours> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), x.indisvalid AND x.indisready,
                        c.relispartition, c.relkind::text, c.oid
                   FROM pg_catalog.pg_index x
                   JOIN pg_catalog.pg_class c ON c.oid = x.indexrelid
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE x.indrelid = $1 AND c.relname = $2",
                None,
                &[table.into(), name.into()],
            )
            .ok()
            .and_then(|mut rows| {
                rows.next().map(|r| Ours {
                    qualified: r.get::<String>(1).ok().flatten().unwrap_or_default(),
                    valid: r.get::<bool>(2).ok().flatten().unwrap_or(false),
                    attached: r.get::<bool>(3).ok().flatten().unwrap_or(false),
                    kind: r.get::<String>(4).ok().flatten().unwrap_or_default(),
                    oid: r.get::<pg_sys::Oid>(5).ok().flatten().unwrap_or_default(),
                })
            })
    })
}

/// Drops an index a job built: concurrently (its waits block no writer), a partitioned one
/// (built ON ONLY a sub-partitioned table) politely.
fn drop_ours(ours: &Ours, limits: &Limits, heartbeat: &dyn Fn()) -> Result<()> {
    if ours.kind == "I" {
        return drop_politely(&ours.qualified, limits, heartbeat);
    }
    heartbeat();
    try_top_level(&format!("DROP INDEX CONCURRENTLY IF EXISTS {}", ours.qualified), 0, limits.statement_timeout_ms)
        .map_err(|t| Failure::from(t.error))
}

/// How many times a `PartitionIndex` step looks at its partition again (after a build, an
/// ATTACH, a name someone took meanwhile) before it gives up.
const PARTITION_ROUNDS: usize = 8;

/// `PartitionIndex` (step `at` of `steps`), outside a transaction: what the partition needs is
/// decided from the catalog each time round, by the partition's OID. Returns the job's steps,
/// saved with the cursor past this step.
pub fn partition_index(job: i64, steps: &[Step], at: usize, limits: &Limits, heartbeat: &dyn Fn()) -> Result<Vec<Step>> {
    let mut all = steps.to_vec();
    let save = |all: &[Step], cursor: usize| transaction(|| jobs::replace_steps(job, all, cursor));
    for _ in 0..PARTITION_ROUNDS {
        let Some(Internal::PartitionIndex { index, partition, name, listed, .. }) = all[at].internal.clone() else {
            unreachable!("a PartitionIndex step")
        };
        let oid = pg_sys::Oid::from(partition);
        let (p, part, ours) = match in_transaction(|| -> Result<_> {
            let p = parent(&index)?;
            let part = partitions(&p).into_iter().find(|x| x.oid == oid);
            let ours = name.as_deref().and_then(|n| our_index(oid, n));
            Ok((p, part, ours))
        }) {
            Ok(found) => found?,
            Err(caught) => return Err(Failure::from(caught)),
        };
        let Some(part) = part else {
            // Dropped, detached (or being detached), or moved elsewhere since the listing.
            if let Some(ours) = ours.filter(|o| !o.attached) {
                drop_ours(&ours, limits, heartbeat)?;
            }
            pgrx::log!("pg_migrate: job {job}: table {partition} is no longer a partition of {}'s table: skipped", p.qualified);
            save(&all, at + 1);
            return Ok(all);
        };
        match &part.attached {
            Some((_, _, true)) => {
                save(&all, at + 1);
                return Ok(all);
            }
            // Its partitions are listed by the IndexPartitions step put before this one.
            Some((_, _, false)) if part.kind == "p" => {
                save(&all, at + 1);
                return Ok(all);
            }
            Some((_, attached, false)) => return Err(attached_invalid(&p, &part.qualified, attached)),
            None => {}
        }
        if !part.owned {
            return Err(not_owned_failure(&p, &part.qualified));
        }
        let set = |all: &mut Vec<Step>, f: &dyn Fn(&mut Option<String>, &mut Option<u32>, &mut Option<jobs::Adopted>)| {
            if let Some(Internal::PartitionIndex { name, built, adopted, .. }) = &mut all[at].internal {
                f(name, built, adopted);
            }
        };
        let attach = |qualified: &str| -> Result<bool> {
            match polite(&format!("ALTER INDEX {} ATTACH PARTITION {qualified}", p.qualified), limits, heartbeat) {
                Ok(()) => Ok(true),
                // Detached or dropped meanwhile: the next round sees it.
                Err(_) if !transaction(|| still_partition(p.table, oid)) => Ok(false),
                Err(f) => Err(f),
            }
        };
        if let Some(ours) = &ours {
            if ours.kind == "i" && !ours.valid {
                // Left by a build that failed or was interrupted.
                drop_ours(ours, limits, heartbeat)?;
                continue;
            }
            if ours.kind == "I" && !listed {
                let sub = Step::internal(
                    Internal::IndexPartitions { index: ours.qualified.clone(), check: None },
                    format!("-- pg_migrate: index each partition of {} for {}", part.qualified, ours.qualified),
                );
                let mut again = all[at].clone();
                if let Some(Internal::PartitionIndex { listed, .. }) = &mut again.internal {
                    *listed = true;
                }
                let all = insert_after(&all, at, vec![sub, again]);
                save(&all, at + 1);
                return Ok(all);
            }
            attach(&ours.qualified)?;
            continue;
        }
        let unique = if p.unique { "UNIQUE " } else { "" };
        if part.kind == "r" {
            if let Some((existing, existing_name)) = transaction(|| matching_index(&p, &part)) {
                // Saved before the ATTACH: abort must know the index was there before the job.
                let record = jobs::Adopted {
                    oid: existing.to_u32(),
                    partition,
                    schema: transaction(|| schema_name(part.schema)),
                    name: existing_name.clone(),
                    tail: p.tail.clone(),
                    unique: p.unique,
                };
                set(&mut all, &|_, _, adopted| *adopted = Some(record.clone()));
                save(&all, at);
                attach(&format!("{}.{}", quote(&record.schema), quote(&existing_name)))?;
                continue;
            }
        }
        let name = match name {
            Some(name) => name,
            None => {
                // Chosen now (not at the listing) and saved before the build: a crash in the
                // build finds it again by this name on this partition.
                let chosen = transaction(|| free_name(&p, &part, &mut HashSet::new()));
                set(&mut all, &|name, built, _| (*name, *built) = (Some(chosen.clone()), None));
                save(&all, at);
                chosen
            }
        };
        // No IF NOT EXISTS: a relation that took the name meanwhile fails the build, and the
        // next round picks another name.
        let sql = if part.kind == "r" {
            format!("CREATE {unique}INDEX CONCURRENTLY {} ON {} {}", quote(&name), part.qualified, p.tail)
        } else {
            format!("CREATE {unique}INDEX {} ON ONLY {} {}", quote(&name), part.qualified, p.tail)
        };
        heartbeat();
        let built = if part.kind == "r" {
            try_top_level(&sql, 0, limits.statement_timeout_ms).map_err(|t| Failure::from(t.error))
        } else {
            polite(&sql, limits, heartbeat)
        };
        if let Err(failure) = built {
            if let Some(left) = transaction(|| our_index(oid, &name)).filter(|o| !o.valid && o.kind == "i") {
                drop_ours(&left, limits, heartbeat)?;
            }
            if failure.code == PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE {
                set(&mut all, &|name, _, _| *name = None);
                save(&all, at);
                continue;
            }
            if transaction(|| still_partition(p.table, oid)) {
                return Err(failure);
            }
            continue;
        }
        // Saved by OID: abort drops only what this job built.
        if let Some(made) = transaction(|| our_index(oid, &name)) {
            set(&mut all, &|_, built, _| *built = Some(made.oid.to_u32()));
            save(&all, at);
        }
    }
    Err(Failure::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, format!("partition {} of the table did not get its index", all[at].sql.trim_start_matches("-- pg_migrate: give partition ")))
        .detail(format!("The job looked at it {PARTITION_ROUNDS} times; each time something changed it (a name taken, an index dropped)."))
        .hint(format!("Once that settles, {RESUME}.")))
}

/// Whether table `partition` is (still) a partition of `table`, not being detached.
fn still_partition(table: pg_sys::Oid, partition: pg_sys::Oid) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_inherits WHERE inhparent = $1 AND inhrelid = $2 AND NOT inhdetachpending)",
        &[table.into(), partition.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// `UndoPartitionedIndex`: see jobs::Internal. Each part can run again after a crash.
pub fn undo(index: &str, built_by: Option<i64>, built: &[jobs::Built], adopted: &[jobs::Adopted], limits: &Limits, heartbeat: &dyn Fn()) -> Result<()> {
    let (mut built, mut adopted) = (built.to_vec(), adopted.to_vec());
    if let Some(job) = built_by {
        // What the build job recorded after the abort read its steps (it was stopping then).
        let (more_built, more_adopted) = built_and_adopted(&transaction(|| jobs::steps(job)));
        built.extend(more_built.into_iter().filter(|b| !built.contains(b)).collect::<Vec<_>>());
        adopted.extend(more_adopted.into_iter().filter(|a| !adopted.contains(a)).collect::<Vec<_>>());
    }
    let copy_name = |a: &jobs::Adopted| format!("migrate_keep_{}", a.oid);
    // The adopted index goes with the partitioned one when it is attached to it: a copy first.
    for a in &adopted {
        let partition = pg_sys::Oid::from(a.partition);
        let (attached, table) = transaction(|| {
            Spi::get_two_with_args::<bool, String>(
                "SELECT c.relispartition, pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.relname)
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index x ON x.indexrelid = c.oid
                   JOIN pg_catalog.pg_class t ON t.oid = x.indrelid JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
                  WHERE c.oid = $1 AND x.indrelid = $2",
                &[pg_sys::Oid::from(a.oid).into(), partition.into()],
            )
            .unwrap_or((None, None))
        });
        let (Some(true), Some(table)) = (attached, table) else { continue };
        match transaction(|| our_index(partition, &copy_name(a))) {
            Some(copy) if copy.valid => continue,
            Some(copy) => drop_ours(&copy, limits, heartbeat)?,
            None => {}
        }
        heartbeat();
        let sql = format!("CREATE {}INDEX CONCURRENTLY {} ON {table} {}", if a.unique { "UNIQUE " } else { "" }, quote(&copy_name(a)), a.tail);
        if let Err(t) = try_top_level(&sql, 0, limits.statement_timeout_ms) {
            if let Some(left) = transaction(|| our_index(partition, &copy_name(a))) {
                drop_ours(&left, limits, heartbeat)?;
            }
            return Err(Failure::from(t.error));
        }
    }
    drop_politely(index, limits, heartbeat)?;
    for a in &adopted {
        let partition = pg_sys::Oid::from(a.partition);
        let Some(copy) = transaction(|| our_index(partition, &copy_name(a))) else { continue };
        let original = transaction(|| {
            Spi::get_one_with_args::<bool>("SELECT EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid = $1)", &[pg_sys::Oid::from(a.oid).into()])
                .ok()
                .flatten()
                .unwrap_or(false)
        });
        if original {
            drop_ours(&copy, limits, heartbeat)?;
        } else {
            polite(&format!("ALTER INDEX {} RENAME TO {}", copy.qualified, quote(&a.name)), limits, heartbeat)?;
        }
    }
    // Left unattached (the job stopped between a build and its ATTACH): the index with the OID
    // the job recorded; without one (the build never finished), only an INVALID leftover of it.
    for b in &built {
        let left = transaction(|| our_index(pg_sys::Oid::from(b.partition), &b.name)).filter(|o| {
            !o.attached && match b.oid {
                Some(oid) => o.oid.to_u32() == oid,
                None => !o.valid,
            }
        });
        if let Some(left) = left {
            drop_ours(&left, limits, heartbeat)?;
        }
    }
    Ok(())
}

/// What the job of a create_index on a partitioned table built and adopted, from its steps.
pub fn built_and_adopted(steps: &[Step]) -> (Vec<jobs::Built>, Vec<jobs::Adopted>) {
    let (mut built, mut adopted) = (Vec::new(), Vec::new());
    for s in steps {
        if let Some(Internal::PartitionIndex { partition, name, built: oid, adopted: a, .. }) = &s.internal {
            if let Some(name) = name {
                let b = jobs::Built { partition: *partition, name: name.clone(), oid: *oid };
                if !built.contains(&b) {
                    built.push(b);
                }
            }
            if let Some(a) = a.as_ref().filter(|a| !adopted.contains(*a)) {
                adopted.push(a.clone());
            }
        }
    }
    (built, adopted)
}

/// `FinishContract`: the swap of a partitioned table, each try bounded as a whole. When a leaf
/// lacks its copy of a unique index (a partition created or attached after the job listed
/// them), the job's `LeafIndexes` steps run again first: the swap never builds an index.
pub fn finish_contract(job: i64, steps: &[Step], at: usize, change: i64, round: u32, limits: &Limits, heartbeat: &dyn Fn()) -> Result<Option<Vec<Step>>> {
    let mut listings: Vec<Step> = Vec::new();
    for s in &steps[..at] {
        if matches!(s.internal, Some(Internal::LeafIndexes { .. })) && !listings.iter().any(|l| l.internal == s.internal) {
            listings.push(s.clone());
        }
    }
    let lacking = || {
        transaction(|| {
            listings.iter().any(|s| match &s.internal {
                Some(Internal::LeafIndexes { table, name, .. }) => leaves(table, name).iter().any(|l| !l.built),
                _ => false,
            })
        })
    };
    let sql = format!("SELECT migrate.finish_contract({change})");
    let outcome = if lacking() {
        None
    } else {
        match bounded_politely(&sql, limits, heartbeat) {
            Ok(()) => return Ok(None),
            Err(_) if lacking() => None,
            Err(BoundedError::TimedOut(last)) => Some(
                Failure::new(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, format!("the swap of change {change} could not get its locks after {} tries", limits.lock_retries.max(0) + 1))
                    .detail(format!("Waited for {last}. The swap locks the table and every partition; each try is limited as a whole to migrate.lock_timeout."))
                    .hint("End or wait for the blocking session, then resume: SELECT migrate.contract(change); raise migrate.lock_timeout or migrate.lock_retries for tables with many partitions."),
            ),
            Err(BoundedError::Failed(f)) => Some(f),
        }
    };
    if let Some(failure) = outcome {
        return Err(failure);
    }
    if round >= ROUNDS {
        let lacking: Vec<String> = transaction(|| {
            listings
                .iter()
                .filter_map(|s| match &s.internal {
                    Some(Internal::LeafIndexes { table, name, .. }) => Some(leaves(table, name)),
                    _ => None,
                })
                .flatten()
                .filter(|l| !l.built)
                .map(|l| format!("{} ({})", l.qualified, quote(&l.index)))
                .collect()
        });
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, format!("the swap of change {change} found partitions without their unique index {} times", round + 1))
            .detail(format!(
                "Still without it: {}. Partitions keep being created or attached while the contract builds their indexes, or another relation has the copy's name in the partition's schema.",
                lacking.join(", ")
            ))
            .hint("Resume once they settle: SELECT migrate.contract(change)."));
    }
    pgrx::log!("pg_migrate: job {job}: a partition lacks its unique index for the swap; listing the partitions again");
    let mut more = listings;
    more.push(Step::internal(
        Internal::FinishContract { change, round: round + 1 },
        steps[at].sql.clone(),
    ));
    let all = insert_after(steps, at, more);
    transaction(|| jobs::replace_steps(job, &all, at + 1));
    Ok(Some(all))
}

/// Refuses, before anything is changed, an index the steps could not build on partitioned
/// table `table`: a partition that is a foreign table, and a unique index without every
/// partition key column of every level (PostgreSQL enforces uniqueness per partition). `keys`:
/// the index's key columns (None for an expression).
pub fn refuse_unbuildable(table: pg_sys::Oid, table_name: &str, index: &str, unique: bool, keys: &[Option<String>]) -> Result<()> {
    let foreign: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT t.relid::pg_catalog.regclass::text FROM pg_catalog.pg_partition_tree($1) t
                   JOIN pg_catalog.pg_class c ON c.oid = t.relid
                  WHERE c.relkind NOT IN ('r', 'p') ORDER BY 1",
                None,
                &[table.into()],
            )
            .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
            .unwrap_or_default()
    });
    // The job runs as the caller: a partition it may not index would fail half-way.
    let foreign_owned: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT t.relid::pg_catalog.regclass::text FROM pg_catalog.pg_partition_tree($1) t
                   JOIN pg_catalog.pg_class c ON c.oid = t.relid
                  WHERE NOT pg_catalog.pg_has_role(c.relowner, 'USAGE') ORDER BY 1",
                None,
                &[table.into()],
            )
            .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
            .unwrap_or_default()
    });
    if !foreign_owned.is_empty() {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("index {index} cannot be built on partitioned table {table_name}: you do not own partitions {}", foreign_owned.join(", ")),
        )
        .detail("The job builds the index on each partition as you.")
        .hint("Nothing was changed. Run it as the partitions' owner (or a member of the owning role), or give them the table's owner."));
    }
    if !foreign.is_empty() {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("index {index} cannot be built on partitioned table {table_name}: partitions {} are foreign tables", foreign.join(", ")),
        )
        .detail("PostgreSQL cannot index a foreign table, and an index of a partitioned table is valid only once every partition has one.")
        .hint("Nothing was changed. Detach those partitions, or build the index on each local partition with migrate.create_index."));
    }
    if !unique {
        return Ok(());
    }
    // (level, key column or NULL for an expression)
    let key_columns: Vec<(String, Option<String>)> = Spi::connect(|client| {
        client
            .select(
                "SELECT pt.partrelid::pg_catalog.regclass::text, a.attname::text
                   FROM pg_catalog.pg_partition_tree($1) t
                   JOIN pg_catalog.pg_partitioned_table pt ON pt.partrelid = t.relid
                  CROSS JOIN LATERAL pg_catalog.unnest(pt.partattrs::pg_catalog.int2[]) WITH ORDINALITY k(attnum, n)
                   LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = k.attnum
                  ORDER BY t.level, 1, k.n",
                None,
                &[table.into()],
            )
            .map(|rows| rows.map(|r| (r.get::<String>(1).ok().flatten().unwrap_or_default(), r.get::<String>(2).ok().flatten())).collect())
            .unwrap_or_default()
    });
    let mut missing = Vec::new();
    for (level, column) in &key_columns {
        match column {
            None => {
                return Err(Failure::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("unique index {index} cannot be built on partitioned table {table_name}: the partition key of {level} is an expression"),
                )
                .detail("PostgreSQL enforces a unique index of a partitioned table in each partition, which needs the partition key's columns in the index; an expression key has none.")
                .hint("Nothing was changed. Build the unique index on each partition with migrate.create_index, or build this one without UNIQUE."))
            }
            Some(c) if !keys.iter().any(|k| k.as_deref() == Some(c.as_str())) => {
                let item = format!("{} (partition key of {level})", quote(c));
                if !missing.contains(&item) {
                    missing.push(item);
                }
            }
            Some(_) => {}
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("unique index {index} on partitioned table {table_name} lacks partition key columns"),
    )
    .detail(format!(
        "Missing from its key columns: {}. PostgreSQL enforces a unique index of a partitioned table in each partition separately, so it must contain every partition key column.",
        missing.join(", ")
    ))
    .hint("Nothing was changed. Add the missing columns to the index's key columns, or build it without UNIQUE."))
}

/// The statement that creates partitioned index `index` (quoted, qualified) again as it is,
/// ON ONLY its table: `CREATE [UNIQUE] INDEX IF NOT EXISTS name ON ONLY table USING …`.
/// Refused (42501) when a partition of the table is not the caller's: dropping a partitioned
/// index drops every partition's index (PostgreSQL asks only for the table's ownership), but the
/// abort's rebuild runs as the caller and would fail half-way on such a partition.
pub fn rebuild_sql(index: &str) -> Result<String> {
    let p = parent(index)?;
    let others: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT t.relid::pg_catalog.regclass::text FROM pg_catalog.pg_partition_tree($1) t
                   JOIN pg_catalog.pg_class c ON c.oid = t.relid
                  WHERE NOT pg_catalog.pg_has_role(c.relowner, 'USAGE') ORDER BY 1",
                None,
                &[p.table.into()],
            )
            .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
            .unwrap_or_default()
    });
    if !others.is_empty() {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("index {} cannot be dropped: you do not own partitions {}", p.qualified, others.join(", ")),
        )
        .detail("Dropping a partitioned index drops the index of every partition; abort would build them again as you, which fails on partitions you do not own.")
        .hint("Nothing was changed. Run it as the partitions' owner (or a member of the owning role), or give them the table's owner."));
    }
    Ok(format!("CREATE {}INDEX IF NOT EXISTS {} ON ONLY {} {}", if p.unique { "UNIQUE " } else { "" }, quote(&p.name), p.table_qualified, p.tail))
}

/// The top partitioned index that index `index` is (through sub-partitions) attached to, if it
/// is attached to one.
pub fn parent_index_of(index: pg_sys::Oid) -> Option<String> {
    Spi::get_one_with_args::<String>(
        "WITH RECURSIVE up(idx, depth) AS (
              SELECT i.inhparent, 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = $1
              UNION ALL
              SELECT i.inhparent, up.depth + 1 FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.idx)
         SELECT idx::pg_catalog.regclass::text FROM up ORDER BY depth DESC LIMIT 1",
        &[index.into()],
    )
    .ok()
    .flatten()
}

/// Runs an internal step in its own transaction (see `run`).
pub fn run_in_transaction(job: i64, steps: &[Step], at: usize, what: &Internal) -> Result<Option<Vec<Step>>> {
    match in_transaction(|| run(job, steps, at, what)) {
        Ok(outcome) => outcome,
        Err(caught) => Err(Failure::from(caught)),
    }
}
