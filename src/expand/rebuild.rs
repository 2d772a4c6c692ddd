//! What contract reproduces on the new column: the old column's indexes (built concurrently under
//! temporary names), its CHECK and foreign-key constraints (added NOT VALID, then validated), and
//! the constraints an index backs (PRIMARY KEY, UNIQUE: attached with USING INDEX at the end).
//! Definitions are rebuilt from the catalog with column references renamed on the parse tree.

use super::facts::{Column, Table};
use super::rewrite::{self, quote};
use super::spec::{PartitionedConstraint, Renamed};
use crate::catalog::jobs::Internal;
use super::Work;
use crate::error::{Failure, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// The statements that build the copies, and how they are renamed at the end.
#[derive(Default)]
pub struct Copies {
    /// Transactional statements (ADD CONSTRAINT ... NOT VALID).
    pub add: Vec<String>,
    /// Steps for the job: CREATE INDEX CONCURRENTLY (or ON ONLY and per partition), VALIDATE
    /// CONSTRAINT.
    pub build: Vec<Work>,
    /// Steps for the end of the job, right before the swap: the leaf partitions listed again
    /// (for PRIMARY KEY / UNIQUE of a partitioned table), to build the copies of partitions
    /// created meanwhile.
    pub relist: Vec<Work>,
    pub indexes: Vec<Renamed>,
    pub constraints: Vec<Renamed>,
    /// One line per object, for contract_plan.
    pub said: Vec<String>,
}

pub fn copies(change: i64, table: &Table, old: &Column, new: &str, final_name: &str) -> Result<Copies> {
    let mut out = Copies::default();
    refuse_inbound_references(table, old)?;
    if table.partitioned {
        refuse_partition_local(table, old)?;
    }
    for (n, index) in indexes(table, old).into_iter().enumerate() {
        if index.exclusion {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("exclusion constraint {} of table {} uses column {}", quote(index.constraint_name.as_deref().unwrap_or("")), table.name, quote(&old.name)),
            )
            .hint("Nothing was changed. Add the constraint for the new column yourself and drop the old one, then contract again."));
        }
        let temporary = format!("migrate_{change}_index_{}", n + 1);
        let definition = index_definition(&index, table, &old.name, new, &temporary)?;
        let mut partitions = None;
        if let (true, Some(kind)) = (table.partitioned, &index.constraint_kind) {
            // PostgreSQL refuses ADD CONSTRAINT … USING INDEX on a partitioned table, but adding
            // the constraint to it attaches each partition's index that backs the same
            // constraint: so each leaf gets a unique index concurrently now, and the swap makes
            // each the partition's constraint (USING INDEX), then adds the table's.
            let keys: Vec<Option<String>> = index.columns[..index.key_count.min(index.columns.len())]
                .iter()
                .map(|c| c.as_ref().map(|name| if *name == old.name { new.to_string() } else { name.clone() }))
                .collect();
            let cname = index.constraint_name.clone().unwrap_or_default();
            crate::worker::partitions::refuse_unbuildable(table.oid, &table.name, &quote(&cname), true, &keys)?;
            let on = format!(" ON ONLY {} ", table.name);
            let tail = definition.split_once(&on).map(|(_, t)| t.to_string()).unwrap_or_default();
            let finally = |name: &str| quote(if name == old.name { final_name } else { name });
            let cols: Vec<String> = index.columns.iter().map(|c| finally(c.as_deref().unwrap_or_default())).collect();
            let (keys, include) = cols.split_at(index.key_count.min(cols.len()));
            let mut constraint = format!(
                "{kind}{} ({})",
                if index.nulls_not_distinct { " NULLS NOT DISTINCT" } else { "" },
                keys.join(", ")
            );
            if !include.is_empty() {
                constraint.push_str(&format!(" INCLUDE ({})", include.join(", ")));
            }
            out.said.push(format!(
                "build a unique index on the new column concurrently on each partition for {} {}",
                kind,
                quote(&cname)
            ));
            let leaves = Work::Internal(
                Internal::LeafIndexes { table: table.name.clone(), name: temporary.clone(), tail },
                format!("-- pg_migrate: build a unique index {temporary}_<partition> concurrently on each partition of {}", table.name),
            );
            out.build.push(leaves.clone());
            out.relist.push(leaves);
            partitions = Some(PartitionedConstraint { definition: constraint });
        } else if table.partitioned {
            let keys: Vec<Option<String>> = index.columns[..index.key_count.min(index.columns.len())]
                .iter()
                .map(|c| c.as_ref().map(|name| if *name == old.name { new.to_string() } else { name.clone() }))
                .collect();
            let qualified = format!("{}.{}", quote(&table.schema), quote(&temporary));
            let named = format!("{}.{}", quote(&table.schema), quote(&index.name));
            crate::worker::partitions::refuse_unbuildable(table.oid, &table.name, &named, index.unique, &keys)?;
            out.said.push(format!(
                "build index {} on the new column: ON ONLY the parent, then concurrently on each partition and attached",
                quote(&index.name)
            ));
            out.build.extend(super::partitioned_build(definition, &qualified));
        } else {
            out.said.push(format!("build index {} on the new column concurrently", quote(&index.name)));
            out.build.push(Work::Sql(definition));
        }
        out.indexes.push(Renamed {
            temporary,
            name: index.constraint_name.clone().unwrap_or(index.name.clone()),
            constraint: index.constraint_kind.clone(),
            partitions,
        });
    }
    for (n, c) in constraints(table, old).into_iter().enumerate() {
        let temporary = format!("migrate_{change}_constraint_{}", n + 1);
        let definition = match c.kind.as_str() {
            "c" => {
                let expr = rewrite::rename(&c.expression, &old.name, new)?.ok_or_else(|| unmovable(&c.name, table))?;
                format!("CHECK ({expr}){}", if c.no_inherit { " NO INHERIT" } else { "" })
            }
            _ => {
                if table.partitioned {
                    return Err(Failure::new(
                        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                        format!("foreign key {} of partitioned table {} uses column {}", quote(&c.name), table.name, quote(&old.name)),
                    )
                    .detail("PostgreSQL 15 cannot add a foreign key to a partitioned table as NOT VALID.")
                    .hint("Nothing was changed. Drop the foreign key (add it again on the new column after contract), then contract again."));
                }
                let columns: Vec<String> =
                    c.columns.iter().map(|col| quote(if *col == old.name { new } else { col })).collect();
                let references = c.definition.find(" REFERENCES ").map(|at| &c.definition[at..]).unwrap_or_default();
                format!("FOREIGN KEY ({}){references}", columns.join(", "))
            }
        };
        out.said.push(format!("add {} on the new column NOT VALID, then validate it", quote(&c.name)));
        out.add.push(format!("ALTER TABLE {} ADD CONSTRAINT {} {definition} NOT VALID", table.name, quote(&temporary)));
        if c.validated {
            out.build.push(Work::Sql(format!("ALTER TABLE {} VALIDATE CONSTRAINT {}", table.name, quote(&temporary))));
        }
        out.constraints.push(Renamed { temporary, name: c.name, constraint: None, partitions: None });
    }
    Ok(out)
}

fn unmovable(name: &str, table: &Table) -> Failure {
    Failure::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("constraint {} of table {} cannot be moved to the new column", quote(name), table.name),
    )
    .hint("Nothing was changed. Add it for the new column yourself and drop the old one, then contract again.")
}

/// Foreign keys of other tables that reference the old column would have to be dropped with it.
fn refuse_inbound_references(table: &Table, old: &Column) -> Result<()> {
    let referencing: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT format('%I on %s', conname, conrelid::regclass) FROM pg_catalog.pg_constraint
                  WHERE contype = 'f' AND confrelid = $1 AND $2 = ANY (confkey) ORDER BY 1",
                None,
                &[table.oid.into(), old.attnum.into()],
            )
            .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
            .unwrap_or_default()
    });
    if referencing.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
        format!("foreign keys reference column {} of table {}", quote(&old.name), table.name),
    )
    .detail(format!("Foreign keys: {}.", referencing.join(", ")))
    .hint("Nothing was changed. Move each referencing column to the new column first (expand_column on the referencing table, or drop and re-add the foreign key with migrate.add_foreign_key), then contract again."))
}

/// Indexes and constraints that only some partitions have (not attached to one of the table's
/// own) and that use the old column: DROP COLUMN on the table would drop them with it, and
/// contract copies only the table's own. Refused rather than rebuilt per partition: such an
/// index or CHECK is a decision about one partition (a hot partition's extra index, a local
/// rule), which the owner should carry over knowingly.
fn refuse_partition_local(table: &Table, old: &Column) -> Result<()> {
    let local: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT what FROM (
                   SELECT pg_catalog.format('index %s of partition %s', x.indexrelid::pg_catalog.regclass, x.indrelid::pg_catalog.regclass) AS what
                     FROM pg_catalog.pg_partition_tree($1) t
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = t.relid AND a.attname = $2 AND NOT a.attisdropped
                     JOIN pg_catalog.pg_index x ON x.indrelid = t.relid
                     JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
                    WHERE t.level > 0 AND NOT ic.relispartition
                      AND (a.attnum = ANY (x.indkey::pg_catalog.int2[]) OR EXISTS (SELECT FROM pg_catalog.pg_depend d
                             WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = x.indexrelid
                               AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = t.relid
                               AND d.refobjsubid = a.attnum))
                   UNION ALL
                   SELECT pg_catalog.format('constraint %I of partition %s', k.conname, k.conrelid::pg_catalog.regclass)
                     FROM pg_catalog.pg_partition_tree($1) t
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = t.relid AND a.attname = $2 AND NOT a.attisdropped
                     JOIN pg_catalog.pg_constraint k ON k.conrelid = t.relid
                    WHERE t.level > 0 AND k.contype IN ('c', 'f') AND k.conparentid = 0 AND k.coninhcount = 0
                      AND a.attnum = ANY (k.conkey)) s
                 ORDER BY what",
                None,
                &[table.oid.into(), old.name.as_str().into()],
            )
            .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
            .unwrap_or_default()
    });
    if local.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
        format!("partitions of table {} have their own indexes or constraints on column {}", table.name, quote(&old.name)),
    )
    .detail(format!(
        "{}. Dropping the column drops them with it, and contract carries over only the table's own indexes and constraints.",
        local.join(", ")
    ))
    .hint("Nothing was changed. Build each one again for the new column on its partition (CREATE INDEX CONCURRENTLY, ADD CONSTRAINT ... NOT VALID then VALIDATE), drop the old one, then contract again; or drop it if it is no longer needed."))
}

struct Index {
    oid: pg_sys::Oid,
    name: String,
    unique: bool,
    nulls_not_distinct: bool,
    method: String,
    key_count: usize,
    /// Per column: attribute name, or None for an expression.
    columns: Vec<Option<String>>,
    options: Vec<i16>,
    /// Per column: non-default operator class (qualified) or None.
    opclasses: Vec<Option<String>>,
    collations: Vec<Option<String>>,
    predicate: Option<String>,
    reloptions: Option<String>,
    constraint_name: Option<String>,
    constraint_kind: Option<String>,
    exclusion: bool,
}

/// The indexes that use the old column, as a key, an INCLUDE column, in an expression or in
/// their predicate (pg_depend records these, except for the columns of an index behind a
/// constraint, which depends on its constraint instead).
fn indexes(table: &Table, old: &Column) -> Vec<Index> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT i.indexrelid, ic.relname::text, i.indisunique, i.indnullsnotdistinct, am.amname::text, i.indnkeyatts::int,
                        (SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.n)
                           FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                           LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum),
                        i.indoption::int2[],
                        (SELECT pg_catalog.array_agg(CASE WHEN oc.opcdefault THEN NULL
                                    ELSE pg_catalog.quote_ident(ns.nspname) || '.' || pg_catalog.quote_ident(oc.opcname) END ORDER BY k.n)
                           FROM pg_catalog.unnest(i.indclass::oid[]) WITH ORDINALITY k(opc, n)
                           LEFT JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opc
                           LEFT JOIN pg_catalog.pg_namespace ns ON ns.oid = oc.opcnamespace),
                        (SELECT pg_catalog.array_agg(CASE WHEN k.coll IN (0, 100) OR k.coll = a.attcollation THEN NULL
                                    ELSE pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) END ORDER BY k.n)
                           FROM pg_catalog.unnest(i.indcollation::oid[]) WITH ORDINALITY k(coll, n)
                           LEFT JOIN pg_catalog.pg_collation co ON co.oid = k.coll
                           LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                           LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = (i.indkey::int2[])[k.n - 1]),
                        pg_catalog.pg_get_expr(i.indpred, i.indrelid),
                        pg_catalog.array_to_string(ic.reloptions, ', '),
                        con.conname::text,
                        CASE con.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'u' THEN 'UNIQUE' END,
                        con.contype IS NOT DISTINCT FROM 'x'
                   FROM pg_catalog.pg_index i
                   JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                   JOIN pg_catalog.pg_am am ON am.oid = ic.relam
                   LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                                                          AND con.contype IN ('p', 'u', 'x')
                  WHERE i.indrelid = $1
                    AND ($2::int2 = ANY (i.indkey::int2[]) OR EXISTS (SELECT FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
                                   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = i.indrelid
                                   AND d.refobjsubid = $2))
                  ORDER BY ic.relname",
                None,
                &[table.oid.into(), i32::from(old.attnum).into()],
            )
            .map(|rows| {
                rows.map(|r| Index {
                    oid: r.get::<pg_sys::Oid>(1).ok().flatten().unwrap_or_default(),
                    name: r.get::<String>(2).ok().flatten().unwrap_or_default(),
                    unique: r.get::<bool>(3).ok().flatten().unwrap_or_default(),
                    nulls_not_distinct: r.get::<bool>(4).ok().flatten().unwrap_or_default(),
                    method: r.get::<String>(5).ok().flatten().unwrap_or_default(),
                    key_count: r.get::<i32>(6).ok().flatten().unwrap_or_default() as usize,
                    columns: r.get::<Vec<Option<String>>>(7).ok().flatten().unwrap_or_default(),
                    options: r.get::<Vec<i16>>(8).ok().flatten().unwrap_or_default(),
                    opclasses: r.get::<Vec<Option<String>>>(9).ok().flatten().unwrap_or_default(),
                    collations: r.get::<Vec<Option<String>>>(10).ok().flatten().unwrap_or_default(),
                    predicate: r.get::<String>(11).ok().flatten(),
                    reloptions: r.get::<String>(12).ok().flatten().filter(|o| !o.is_empty()),
                    constraint_name: r.get::<String>(13).ok().flatten(),
                    constraint_kind: r.get::<String>(14).ok().flatten(),
                    exclusion: r.get::<bool>(15).ok().flatten().unwrap_or_default(),
                })
                .collect()
            })
            .unwrap_or_default()
    })
}

/// CREATE INDEX CONCURRENTLY for the copy of `index` on the new column (ON ONLY a partitioned
/// table).
fn index_definition(index: &Index, table: &Table, old: &str, new: &str, temporary: &str) -> Result<String> {
    let rename = |name: &str| quote(if name == old { new } else { name });
    let mut keys = Vec::new();
    let mut include = Vec::new();
    for (n, column) in index.columns.iter().enumerate() {
        let text = match column {
            Some(name) => rename(name),
            None => {
                let expr = Spi::get_one_with_args::<String>(
                    "SELECT pg_catalog.pg_get_indexdef($1, $2, false)",
                    &[index.oid.into(), (n as i32 + 1).into()],
                )
                .ok()
                .flatten()
                .unwrap_or_default();
                let moved = rewrite::rename(&expr, old, new)?.ok_or_else(|| unmovable(&index.name, table))?;
                format!("({moved})")
            }
        };
        if n >= index.key_count {
            include.push(text);
            continue;
        }
        let mut key = text;
        if let Some(Some(collation)) = index.collations.get(n) {
            key.push_str(&format!(" COLLATE {collation}"));
        }
        if let Some(Some(opclass)) = index.opclasses.get(n) {
            key.push_str(&format!(" {opclass}"));
        }
        let option = index.options.get(n).copied().unwrap_or(0);
        let (desc, nulls_first) = (option & 1 != 0, option & 2 != 0);
        if desc {
            key.push_str(" DESC");
        }
        if nulls_first != desc {
            key.push_str(if nulls_first { " NULLS FIRST" } else { " NULLS LAST" });
        }
        keys.push(key);
    }
    // A partitioned table's index starts as ON ONLY the parent (see worker::partitions).
    let mut sql = format!(
        "CREATE {}INDEX {}IF NOT EXISTS {} ON {}{} USING {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        if table.partitioned { "" } else { "CONCURRENTLY " },
        quote(temporary),
        if table.partitioned { "ONLY " } else { "" },
        table.name,
        quote(&index.method),
        keys.join(", ")
    );
    if !include.is_empty() {
        sql.push_str(&format!(" INCLUDE ({})", include.join(", ")));
    }
    if index.nulls_not_distinct {
        sql.push_str(" NULLS NOT DISTINCT");
    }
    if let Some(options) = &index.reloptions {
        sql.push_str(&format!(" WITH ({options})"));
    }
    if let Some(predicate) = &index.predicate {
        let moved = rewrite::rename(predicate, old, new)?.ok_or_else(|| unmovable(&index.name, table))?;
        sql.push_str(&format!(" WHERE {moved}"));
    }
    Ok(sql)
}

struct Constraint {
    name: String,
    /// c (CHECK) or f (FOREIGN KEY).
    kind: String,
    expression: String,
    definition: String,
    columns: Vec<String>,
    validated: bool,
    no_inherit: bool,
}

/// CHECK and foreign-key constraints that use the old column (inherited copies excluded: the
/// parent's constraint is recreated and reaches them).
fn constraints(table: &Table, old: &Column) -> Vec<Constraint> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT c.conname::text, c.contype::text, coalesce(pg_catalog.pg_get_expr(c.conbin, c.conrelid), ''),
                        pg_catalog.pg_get_constraintdef(c.oid),
                        (SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.n)
                           FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(attnum, n)
                           JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
                        c.convalidated, c.connoinherit
                   FROM pg_catalog.pg_constraint c
                  WHERE c.conrelid = $1 AND c.contype IN ('c', 'f') AND $2 = ANY (c.conkey)
                    AND c.conislocal AND c.conname NOT LIKE 'migrate\\_%'
                  ORDER BY c.conname",
                None,
                &[table.oid.into(), old.attnum.into()],
            )
            .map(|rows| {
                rows.map(|r| Constraint {
                    name: r.get::<String>(1).ok().flatten().unwrap_or_default(),
                    kind: r.get::<String>(2).ok().flatten().unwrap_or_default(),
                    expression: r.get::<String>(3).ok().flatten().unwrap_or_default(),
                    definition: r.get::<String>(4).ok().flatten().unwrap_or_default(),
                    columns: r.get::<Vec<String>>(5).ok().flatten().unwrap_or_default(),
                    validated: r.get::<bool>(6).ok().flatten().unwrap_or_default(),
                    no_inherit: r.get::<bool>(7).ok().flatten().unwrap_or_default(),
                })
                .collect()
            })
            .unwrap_or_default()
    })
}
