//! `contract`: ends an expand_column or add_column change once its backfill is done.
//!
//! Everything slow runs first, beside the traffic, in a job: indexes on the new column are built
//! concurrently, its constraints added NOT VALID and validated (NOT NULL through a validated
//! CHECK, so that SET NOT NULL needs no scan). The last step, `finish_contract`, is one short
//! transaction: drop the trigger, its function and the old column (views and policies that use
//! it are carried to the new one first, see `views`), rename, SET NOT NULL,
//! SET DEFAULT, attach PRIMARY KEY / UNIQUE constraints to their new indexes, rename the copies.

use super::carry;
use super::facts::Table;
use super::rebuild;
use super::rewrite::quote;
use super::spec::{ExpandSpec, Swap};
use super::trigger;
use super::views;
use super::Work;
use crate::catalog::changes::{self, Change};
use crate::ddl::retry::run_generated;
use crate::ddl::session::{with_pinned_search_path, GucScope};
use crate::error::{notice, Failure, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// What contract will do: the statements, by where they run, and one line each for people.
pub struct Plan {
    pub now: Vec<String>,
    pub job: Vec<Work>,
    pub swap: Swap,
    pub said: Vec<String>,
    /// The views and policies on the old column that the swap carries to the new one.
    pub views: views::Carry,
}

pub fn contract(id: i64) -> Result<i64> {
    let change = super::lock_change(id)?;
    super::as_owner_of(&change.clone(), || contract_as_owner(change))
}

fn contract_as_owner(change: Change) -> Result<i64> {
    let id = change.change;
    refuse_ended(&change, "contract")?;
    if !matches!(change.kind.as_str(), "expand_column" | "add_column") {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, format!("change {id} ({}) has no contract step", change.kind))
            .hint("Only expand_column and add_column changes are contracted; see SELECT * FROM migrate.changes."));
    }
    if change.phase == "contracting" {
        return resume(&change);
    }
    let table = with_pinned_search_path(|| Table::of(change.relation_oid()))?;
    let spec = spec_of(&change);
    if let Some(job) = change.backfill_job {
        let state = change.backfill_state.as_deref().unwrap_or("gone");
        // A backfill queued in this very transaction (expand and contract in one batch) on a
        // table where no row needs it has nothing to do: it is ended as done, not waited for.
        let none_missing = || missing_when(&change, &spec).is_none_or(|when| missing_rows(&table, &spec, &when, true) == 0);
        if state == "queued" && none_missing() && crate::catalog::jobs::skip_queued(job) {
            notice(format!("pg_migrate: backfill job {job} of change {id} had no row to fill; it is done"));
        } else if state != "done" {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("change {id} cannot be contracted yet: its backfill job {job} is {state}"),
            )
            .detail("Contract drops the old column: every row must have its value in the new one first.")
            .hint(match state {
                "paused" | "failed" => format!("Resume it with SELECT migrate.resume({job}), wait with CALL migrate.wait({job}), then contract."),
                _ => format!("Wait for it with CALL migrate.wait({job}), then contract."),
            }));
        }
    }
    verify(&change, &table, &spec)?;
    let plan = with_pinned_search_path(|| plan(&change, &table, &spec))?;
    if !plan.views.is_empty() {
        let (old, new) = (change.column_name.as_deref().unwrap_or_default(), change.new_column.as_deref().unwrap_or_default());
        views::rehearse(&table, &plan.views, id, old, new, &spec.final_name)?;
    }
    for statement in &plan.now {
        run_generated(&format!("contract of change {id}"), statement)?;
    }
    let mut steps = plan.job.clone();
    steps.push(finish_step(&table, id));
    let job = super::submit_work(&format!("contract of change {id}"), &steps)?;
    let mut spec = spec;
    spec.contract = Some(plan.swap);
    changes::set_spec(id, &serde_json::to_value(&spec).expect("spec serialises"));
    changes::set_phase(id, "contracting", Some(job));
    notice(format!(
        "pg_migrate: contracting change {id} in background job {job} after this transaction commits: {}; follow it with CALL migrate.wait({job})",
        plan.said.join("; ")
    ));
    Ok(job)
}

/// A contract job that failed or was cancelled goes on from the step it stopped at.
fn resume(change: &Change) -> Result<i64> {
    let job = change.job.expect("a contracting change has its job");
    match change.job_state.as_deref() {
        Some("failed" | "cancelled") => {
            crate::worker::resubmit(job)?;
            notice(format!("pg_migrate: resuming the contract of change {} in job {job}; follow it with CALL migrate.wait({job})", change.change));
        }
        state => notice(format!(
            "pg_migrate: change {} is already being contracted by job {job} ({}); follow it with CALL migrate.wait({job})",
            change.change,
            state.unwrap_or("gone")
        )),
    }
    Ok(job)
}

pub fn refuse_ended(change: &Change, doing: &str) -> Result<()> {
    let why = match change.phase.as_str() {
        "contracted" => "it has already been contracted",
        "aborted" => "it was aborted",
        "done" => "its work is complete",
        _ => return Ok(()),
    };
    let hint = if change.phase == "contracted" {
        "A contracted change is final: the old column is gone. Undo it with a new migration (for example another migrate.expand_column back to the old type)."
    } else {
        "See SELECT * FROM migrate.changes for the open changes."
    };
    Err(Failure::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, format!("cannot {doing} change {}: {why}", change.change))
        .hint(hint))
}

pub fn spec_of(change: &Change) -> ExpandSpec {
    serde_json::from_value(change.spec.clone()).unwrap_or_default()
}

/// The rows of `table` that would still lack their value in the new column, and how that is
/// told: `None` when every row is fine whatever it holds.
fn missing_when(change: &Change, spec: &ExpandSpec) -> Option<String> {
    let column = quote(change.new_column.as_deref().or(change.column_name.as_deref()).unwrap_or_default());
    if change.kind == "expand_column" {
        Some(format!("{column} IS NULL AND (\n{}\n) IS NOT NULL", spec.up))
    } else if spec.not_null {
        Some(format!("{column} IS NULL"))
    } else {
        None
    }
}

/// How many rows match `when` (with `any`: 1 as soon as one does), counted as the change's owner
/// under the change's search_path.
fn missing_rows(table: &Table, spec: &ExpandSpec, when: &str, any: bool) -> i64 {
    let guc = GucScope::new();
    if let Some(path) = &spec.search_path {
        guc.set("search_path", path);
    }
    let sql = if any {
        format!("SELECT count(*) FROM (SELECT FROM {} WHERE {when} LIMIT 1) AS one", table.name)
    } else {
        format!("SELECT count(*) FROM {} WHERE {when}", table.name)
    };
    let missing = Spi::get_one::<i64>(&sql).ok().flatten().unwrap_or(0);
    drop(guc);
    missing
}

/// The last check before the old column goes: every row that up() gives a value has one in
/// the new column. A scan of the table, as the change's owner, beside the traffic.
fn verify(change: &Change, table: &Table, spec: &ExpandSpec) -> Result<()> {
    let Some(missing_when) = missing_when(change, spec) else { return Ok(()) };
    let missing = missing_rows(table, spec, &missing_when, false);
    if missing == 0 {
        return Ok(());
    }
    let column = quote(change.new_column.as_deref().or(change.column_name.as_deref()).unwrap_or_default());
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("change {} cannot be contracted: {missing} rows of {} have no value in {column}", change.change, table.name),
    )
    .detail(format!("Rows where {}.", missing_when.replace('\n', " ")))
    .hint(format!(
        "Fill them with another backfill pass: SELECT migrate.backfill_start('{}', '{column} = ({})', '{}'), then contract again.",
        table.name.replace('\'', "''"),
        spec.up.replace('\'', "''").replace('\n', " "),
        missing_when.replace('\'', "''").replace('\n', " ")
    )))
}

/// The statements of the contract of `change`, in order. Read-only: contract_plan shows it.
pub fn plan(change: &Change, table: &Table, spec: &ExpandSpec) -> Result<Plan> {
    let id = change.change;
    let mut plan = Plan { now: vec![], job: vec![], swap: Swap::default(), said: vec![], views: views::Carry::default() };
    let column = change.new_column.clone().or(change.column_name.clone()).unwrap_or_default();
    let mut last = Vec::new();
    let mut relist = Vec::new();
    let mut carried = Vec::new();
    if change.kind == "expand_column" {
        let old_name = change.column_name.clone().unwrap_or_default();
        let old = table.column(&old_name)?;
        let new = table.column(&column)?;
        let views_carried = views::find(table, &old, &new, &spec.final_name)?;
        let copies = rebuild::copies(id, table, &old, &column, &spec.final_name)?;
        plan.now.extend(copies.add);
        plan.job.extend(copies.build);
        relist = copies.relist;
        plan.said.extend(copies.said);
        plan.swap.indexes = copies.indexes;
        plan.swap.constraints = copies.constraints;
        last.push(format!("drop the sync trigger and column {}", quote(&old_name)));
        if spec.final_name != column {
            last.push(format!("rename {} to {}", quote(&column), quote(&spec.final_name)));
        }
        last.extend(views_carried.said());
        plan.views = views_carried;
        carried = carry::carry(id, table, &old_name, &column, &spec.final_name)?.said;
    }
    if spec.not_null {
        let check = format!("migrate_{id}_not_null");
        plan.now.push(format!(
            "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID",
            table.name,
            quote(&check),
            quote(&column)
        ));
        plan.job.push(Work::Sql(format!("ALTER TABLE {} VALIDATE CONSTRAINT {}", table.name, quote(&check))));
        plan.said.push(format!("validate that {} has no NULLs", quote(&column)));
        last.push("SET NOT NULL (no scan: the validated check proves it)".to_string());
        plan.swap.not_null_check = Some(check);
    }
    plan.job.extend(relist);
    if change.kind == "expand_column" {
        if let Some(d) = &spec.old_default {
            last.push(format!("SET DEFAULT {d}"));
            plan.swap.default = Some(d.clone());
        }
        if !plan.swap.indexes.is_empty() || !plan.swap.constraints.is_empty() {
            last.push("give the new indexes and constraints their old names".to_string());
        }
        if !carried.is_empty() {
            last.push(format!("carry to the new column: {}", carried.join(", ")));
        }
    }
    if !last.is_empty() {
        plan.said.push(format!("then in one short transaction: {}", last.join(", ")));
    }
    Ok(plan)
}

/// The contract job's last step. Runs in the worker with its lock_timeout and retries.
pub fn finish(id: i64) -> Result<()> {
    let change = super::lock_change(id)?;
    super::as_owner_of(&change.clone(), || finish_as_owner(change))
}

fn finish_as_owner(change: Change) -> Result<()> {
    let id = change.change;
    if change.phase != "contracting" {
        return Err(Failure::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, format!("change {id} is {}, not being contracted", change.phase))
            .hint("finish_contract is the last step of a contract job; use SELECT migrate.contract(change)."));
    }
    let table = with_pinned_search_path(|| Table::of(change.relation_oid()))?;
    let spec = spec_of(&change);
    let swap = spec.contract.clone().unwrap_or_default();
    let mut column = change.new_column.clone().or(change.column_name.clone()).unwrap_or_default();
    let mut statements: Vec<String> = lock_tree(&table).into_iter().collect();
    let mut carried = carry::Carried::default();
    if change.kind == "expand_column" {
        let old_name = change.column_name.as_deref().unwrap_or_default();
        // Found again here: views or policies made since contract was called are carried too,
        // once their locks are held (before the table's: see views::Carry::lock).
        let views_carried = views::find(&table, &table.column(old_name)?, &table.column(&column)?, &spec.final_name)?;
        if !views_carried.is_empty() {
            views_carried.lock(&table)?;
            views::same_after_locking(&views_carried, &views::find(&table, &table.column(old_name)?, &table.column(&column)?, &spec.final_name)?)?;
        }
        // Read before anything changes: what hangs on the old column now, this job's grants too.
        carried = with_pinned_search_path(|| carry::carry(id, &table, old_name, &column, &spec.final_name))?;
        statements.push(trigger::drop_sql(&table, id));
        // A serial column's sequence belongs to it and would be dropped with it.
        for sequence in owned_sequences(&table, old_name) {
            statements.push(format!("ALTER SEQUENCE {sequence} OWNED BY {}.{}", table.name, quote(&column)));
        }
        statements.append(&mut carried.before_drop);
        if views_carried.is_empty() {
            statements.push(format!("ALTER TABLE {} DROP COLUMN {}", table.name, quote(old_name)));
            if spec.final_name != column {
                statements.push(format!("ALTER TABLE {} RENAME COLUMN {} TO {}", table.name, quote(&column), quote(&spec.final_name)));
            }
        } else {
            // The views' swap renames, reads, writes and drops in between: what comes before it
            // runs now.
            for statement in statements.drain(..) {
                Spi::run(&statement).map_err(|e| Failure::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e.to_string()))?;
            }
            views::swap(&table, &views_carried, id, old_name, &column, &spec.final_name)?;
        }
        column = spec.final_name.clone();
    }
    let mut alter = Vec::new();
    if let Some(check) = &swap.not_null_check {
        alter.push(format!("ALTER COLUMN {} SET NOT NULL", quote(&column)));
        alter.push(format!("DROP CONSTRAINT {}", quote(check)));
    }
    if let Some(d) = &swap.default {
        alter.push(format!("ALTER COLUMN {} SET DEFAULT {d}", quote(&column)));
    }
    if !alter.is_empty() {
        statements.push(format!("ALTER TABLE {} {}", table.name, alter.join(", ")));
    }
    for index in &swap.indexes {
        if let (Some(kind), Some(p)) = (&index.constraint, &index.partitions) {
            statements.extend(partitioned_constraint(&table, index, kind, p)?);
            continue;
        }
        statements.push(match &index.constraint {
            Some(kind) => format!("ALTER TABLE {} ADD CONSTRAINT {} {kind} USING INDEX {}", table.name, quote(&index.name), quote(&index.temporary)),
            None => format!("ALTER INDEX {}.{} RENAME TO {}", quote(&table.schema), quote(&index.temporary), quote(&index.name)),
        });
        if table.partitioned && index.constraint.is_none() {
            statements.extend(partition_index_renames(&table, &index.name, &index.temporary));
        }
    }
    for c in &swap.constraints {
        statements.push(format!("ALTER TABLE {} RENAME CONSTRAINT {} TO {}", table.name, quote(&c.temporary), quote(&c.name)));
    }
    statements.append(&mut carried.after);
    for statement in &statements {
        Spi::run(statement).map_err(|e| Failure::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e.to_string()))?;
    }
    changes::set_phase(id, "contracted", None);
    notice(format!("pg_migrate: change {id} is contracted: {} of {} is the only column now", quote(&column), table.name));
    Ok(())
}

/// The contract job's last step. On a partitioned table the swap locks every partition: each
/// try is bounded as a whole by its lock_timeout, and runs only when every leaf has its copy of
/// each unique index (`worker::partitions::finish_contract`).
fn finish_step(table: &Table, id: i64) -> Work {
    let sql = format!("SELECT migrate.finish_contract({id})");
    if !table.partitioned {
        return Work::Sql(sql);
    }
    Work::Internal(
        crate::catalog::jobs::Internal::FinishContract { change: id, round: 0 },
        format!("{sql} -- partitioned: each try limited as a whole to migrate.lock_timeout"),
    )
}

/// On a partitioned table the swap first takes its locks in one fixed order, the table then its
/// partitions level by level (LOCK TABLE recurses as PostgreSQL's own commands do), so that it
/// never holds part of the tree while it waits for the rest in some other order.
fn lock_tree(table: &Table) -> Option<String> {
    table.partitioned.then(|| format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", table.name))
}

/// A PRIMARY KEY or UNIQUE constraint of a partitioned table, on the new column: each leaf's
/// copy (built by the job) becomes that partition's constraint, under the name its old one had;
/// then the table's constraint is added, which attaches them (metadata only). Read before the
/// swap's statements run.
fn partitioned_constraint(table: &Table, index: &super::spec::Renamed, kind: &str, p: &super::spec::PartitionedConstraint) -> Result<Vec<String>> {
    let (leaves, names) = with_pinned_search_path(|| {
        (
            crate::worker::partitions::leaves(&table.name, &index.temporary),
            crate::worker::partitions::partition_constraint_names(table.oid, &index.name),
        )
    });
    // Adding the table's constraint would build the missing copy here, with every partition
    // locked: refused, the job lists the leaves again and builds it concurrently first.
    let lacking: Vec<&str> = leaves.iter().filter(|l| !l.built).map(|l| l.qualified.as_str()).collect();
    if !lacking.is_empty() {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("partitions {} of {} have no copy of the unique index for {kind} {}", lacking.join(", "), table.name, quote(&index.name)),
        )
        .detail("They were created or attached after the contract's job built the copies; the swap does not build indexes.")
        .hint("The contract job builds them concurrently and tries the swap again; if it failed, resume it: SELECT migrate.contract(change)."));
    }
    let mut out = Vec::new();
    for leaf in leaves.iter().filter(|l| l.built) {
        let name = names.iter().find(|(oid, _)| *oid == leaf.oid).map(|(_, n)| n.clone()).unwrap_or(leaf.index.clone());
        out.push(format!("ALTER TABLE {} ADD CONSTRAINT {} {kind} USING INDEX {}", leaf.qualified, quote(&name), quote(&leaf.index)));
    }
    out.push(format!("ALTER TABLE {} ADD CONSTRAINT {} {}", table.name, quote(&index.name), p.definition));
    Ok(out)
}

/// On a partitioned table: the partitions' indexes under the copy `temporary` take the names of
/// the old index's ones, partition by partition, once the old column has taken those with it.
/// Read before the swap's statements run (the old index still exists then).
fn partition_index_renames(table: &Table, old: &str, temporary: &str) -> Vec<String> {
    let qualify = |name: &str| format!("{}.{}", quote(&table.schema), quote(name));
    with_pinned_search_path(|| {
        Spi::connect(|client| {
            client
                .select(
                    "WITH RECURSIVE tree(idx, root) AS (
                          SELECT i.inhrelid, i.inhparent FROM pg_catalog.pg_inherits i
                           WHERE i.inhparent IN (pg_catalog.to_regclass($1), pg_catalog.to_regclass($2))
                          UNION ALL
                          SELECT i.inhrelid, t.root FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.idx)
                     SELECT pg_catalog.format('ALTER INDEX %I.%I RENAME TO %I', nn.nspname, nc.relname, oc.relname)
                       FROM tree o
                       JOIN pg_catalog.pg_index ox ON ox.indexrelid = o.idx
                       JOIN pg_catalog.pg_class oc ON oc.oid = o.idx
                       JOIN tree n ON n.root = pg_catalog.to_regclass($2)
                       JOIN pg_catalog.pg_index nx ON nx.indexrelid = n.idx AND nx.indrelid = ox.indrelid
                       JOIN pg_catalog.pg_class nc ON nc.oid = n.idx
                       JOIN pg_catalog.pg_namespace nn ON nn.oid = nc.relnamespace
                      WHERE o.root = pg_catalog.to_regclass($1) AND oc.relname <> nc.relname
                      ORDER BY 1",
                    None,
                    &[qualify(old).as_str().into(), qualify(temporary).as_str().into()],
                )
                .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
                .unwrap_or_default()
        })
    })
}

/// Sequences owned by `column` (serial columns), qualified and quoted.
fn owned_sequences(table: &Table, column: &str) -> Vec<String> {
    with_pinned_search_path(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT d.objid::regclass::text FROM pg_catalog.pg_depend d
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
                        AND d.refobjid = $1 AND a.attname = $2 AND d.deptype = 'a'
                        AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) = 'S'",
                    None,
                    &[table.oid.into(), column.into()],
                )
                .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
                .unwrap_or_default()
        })
    })
}
