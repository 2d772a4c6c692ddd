//! What else hangs on the old column, carried to the new one in contract's swap: column grants,
//! the comment, the statistics target, n_distinct options, storage and compression, REPLICA
//! IDENTITY USING an index of the column (rebuilt by `rebuild`), publication column lists and
//! row filters, extended statistics. What cannot be carried is refused up front by name:
//! DROP COLUMN would otherwise fail in the swap, or worse, take it along silently (extended
//! statistics, for one, depend on the column with DEPENDENCY_AUTO).
//!
//! Read at the time of use: contract_plan and contract read it to say it and to refuse early; the
//! swap reads it again right before it drops the column, so that what changed while the job ran
//! (a new grant, a new comment) is carried too.

use super::facts::Table;
use super::rewrite::{self, quote};
use super::trigger;
use crate::error::{Failure, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// The statements of the swap that carry what hangs on the old column.
#[derive(Default)]
pub struct Carried {
    /// Before DROP COLUMN, naming the new column as it is then (publications: DROP COLUMN refuses
    /// while one lists the old column or filters on it).
    pub before_drop: Vec<String>,
    /// At the end of the swap, naming the new column by its final name (after the renames of the
    /// new column and of the rebuilt indexes).
    pub after: Vec<String>,
    /// One clause per kind, for contract_plan.
    pub said: Vec<String>,
}

/// What contract carries from column `old` to column `new` (its name now; `final_name` after the
/// swap) of `table`, or an error naming what it cannot carry.
pub fn carry(change: i64, table: &Table, old: &str, new: &str, final_name: &str) -> Result<Carried> {
    let attnum = attnum(table, old)?;
    refuse_uncarried(change, table, old)?;
    let mut out = Carried::default();
    publications(table, old, attnum, new, &mut out)?;
    grants(table, attnum, final_name, &mut out);
    settings(table, attnum, new, final_name, &mut out);
    replica_identity(table, attnum, &mut out);
    statistics(table, old, attnum, final_name, &mut out)?;
    Ok(out)
}

fn attnum(table: &Table, column: &str) -> Result<i16> {
    Spi::get_one_with_args::<i16>(
        "SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
        &[table.oid.into(), column.into()],
    )
    .ok()
    .flatten()
    .ok_or_else(|| {
        Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, format!("column {} of table {} does not exist", quote(column), table.name))
            .hint("It was dropped or renamed while the change was open: abort the change (SELECT migrate.abort(change)).")
    })
}

fn rows(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Vec<Vec<Option<String>>> {
    Spi::connect(|client| {
        client
            .select(sql, None, args)
            .map(|rows| {
                rows.map(|r| (1..=r.columns()).map(|i| r.get::<String>(i).ok().flatten()).collect::<Vec<_>>())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Every pg_depend entry on the old column (of the table, and of its partitions by name) is
/// something pg_migrate carries or rebuilds, or the contract is refused naming it.
fn refuse_uncarried(change: i64, table: &Table, old: &str) -> Result<()> {
    let sync = trigger::trigger_name(change);
    let found = rows(
        "WITH rels AS (
              SELECT a.attrelid AS rel, a.attnum FROM pg_catalog.pg_attribute a
               WHERE a.attname = $2 AND NOT a.attisdropped
                 AND a.attrelid IN (SELECT $1 UNION SELECT relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass)))
         SELECT kind, what FROM (
           SELECT CASE
                    WHEN d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                     AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) IN ('i', 'I', 'S') THEN NULL
                    WHEN d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN NULL
                    WHEN d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN
                      CASE WHEN ad.adnum = rels.attnum THEN NULL ELSE 'generated' END
                    WHEN d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
                     AND (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = d.objid) <> rels.rel THEN NULL
                    WHEN d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass THEN NULL
                    WHEN d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN
                      CASE WHEN (SELECT tgname FROM pg_catalog.pg_trigger WHERE oid = d.objid) IN ($3, $3 || '_update') THEN NULL
                           ELSE 'trigger' END
                    WHEN d.classid IN ('pg_catalog.pg_publication_rel'::pg_catalog.regclass, 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass)
                     AND rels.rel = $1 THEN NULL
                    ELSE 'other' END AS kind,
                  CASE WHEN ad.adnum IS NOT NULL AND ad.adnum <> rels.attnum
                       THEN pg_catalog.format('generated column %I of table %s', ga.attname, rels.rel::pg_catalog.regclass)
                       ELSE pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) END AS what
             FROM rels
             JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                        AND d.refobjid = rels.rel AND d.refobjsubid = rels.attnum
             LEFT JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND ad.oid = d.objid
             LEFT JOIN pg_catalog.pg_attribute ga ON ga.attrelid = ad.adrelid AND ga.attnum = ad.adnum
            WHERE d.deptype <> 'i'
           UNION ALL
           -- Privileges and comments on a partition's own column (GRANT and COMMENT on the
           -- partitioned table do not reach its partitions; contract carries the table's).
           SELECT 'other', pg_catalog.format('%s on column %I of partition %s',
                                             CASE WHEN a.attacl IS NOT NULL THEN 'privileges' ELSE 'the comment' END,
                                             a.attname, rels.rel::pg_catalog.regclass)
             FROM rels JOIN pg_catalog.pg_attribute a ON a.attrelid = rels.rel AND a.attnum = rels.attnum
            WHERE rels.rel <> $1 AND (a.attacl IS NOT NULL OR pg_catalog.col_description(rels.rel, rels.attnum) IS NOT NULL)
           UNION ALL
           -- A partition's replica identity index is the partition's own setting.
           SELECT 'replica', pg_catalog.format('replica identity index %I of partition %s', ic.relname, i.indrelid::pg_catalog.regclass)
             FROM rels JOIN pg_catalog.pg_index i ON i.indrelid = rels.rel AND i.indisreplident
             JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
            WHERE rels.rel <> $1 AND (rels.attnum = ANY (i.indkey::pg_catalog.int2[]) OR EXISTS (
                  SELECT FROM pg_catalog.pg_depend x WHERE x.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND x.objid = i.indexrelid
                     AND x.refobjid = rels.rel AND x.refobjsubid = rels.attnum))) k
          WHERE kind IS NOT NULL
          ORDER BY kind, what",
        &[table.oid.into(), old.into(), sync.as_str().into()],
    );
    let named = |kind: &str| -> Vec<String> {
        found.iter().filter(|r| r[0].as_deref() == Some(kind)).filter_map(|r| r[1].clone()).collect()
    };
    let generated = named("generated");
    if !generated.is_empty() {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot contract change {change}: {} uses column {} of table {}", generated.join(", "), quote(old), table.name),
        )
        .detail("A generated column cannot move to the new column without being recreated, and recreating a STORED generated column rewrites the whole table under an ACCESS EXCLUSIVE lock.")
        .hint(format!(
            "Nothing was changed. Either make it an ordinary column first (in a maintenance window: drop it and add it back as a plain column filled by a trigger or a backfill), or abort this change (SELECT migrate.abort({change})) and change {} together with the columns computed from it in your own migration.",
            quote(old)
        )));
    }
    let triggers = named("trigger");
    if !triggers.is_empty() {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            format!("cannot contract change {change}: triggers use column {} of table {}", quote(old), table.name),
        )
        .detail(format!("{} (in UPDATE OF or WHEN); DROP COLUMN would refuse.", triggers.join(", ")))
        .hint(format!(
            "Nothing was changed. Recreate each trigger without {} (CREATE OR REPLACE TRIGGER naming the new column; an AFTER trigger sees it set by the sync trigger, a BEFORE one may not), or drop it and create it again after the contract; then contract again.",
            quote(old)
        )));
    }
    let others: Vec<String> = named("other").into_iter().chain(named("replica")).collect();
    if !others.is_empty() {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            format!("cannot contract change {change}: objects that pg_migrate does not carry depend on column {} of table {}", quote(old), table.name),
        )
        .detail(format!("{}. Dropping the column would fail or take them along.", others.join(", ")))
        .hint("Nothing was changed. Move each to the new column (or drop it and create it again after the contract), then contract again."));
    }
    Ok(())
}

/// Column lists and row filters of publications. DROP COLUMN refuses while a publication lists
/// the old column or filters on it, and CASCADE would take the table out of the publication; so
/// each such publication drops the table and adds it back naming the new column, in the swap
/// (column lists and filters refer to columns by number, so the rename that follows keeps them).
fn publications(table: &Table, old: &str, attnum: i16, new: &str, out: &mut Carried) -> Result<()> {
    let found = rows(
        "SELECT p.pubname::text, pg_catalog.pg_get_expr(pr.prqual, pr.prrelid),
                (SELECT pg_catalog.array_to_string(pg_catalog.array_agg(a.attname::text ORDER BY k.n), chr(1))
                   FROM pg_catalog.unnest(pr.prattrs::pg_catalog.int2[]) WITH ORDINALITY k(attnum, n)
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = pr.prrelid AND a.attnum = k.attnum),
                pg_catalog.pg_has_role(p.pubowner, 'USAGE')::text, pg_catalog.pg_get_userbyid(p.pubowner)::text
           FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
          WHERE pr.prrelid = $1 AND EXISTS (
                SELECT FROM pg_catalog.pg_depend d
                 WHERE d.classid = 'pg_catalog.pg_publication_rel'::pg_catalog.regclass AND d.objid = pr.oid
                   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1 AND d.refobjsubid = $2)
          ORDER BY 1",
        &[table.oid.into(), i32::from(attnum).into()],
    );
    for r in found {
        let name = r[0].clone().unwrap_or_default();
        if r[3].as_deref() != Some("true") {
            return Err(Failure::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("publication {} lists column {} of table {} and belongs to role {}", quote(&name), quote(old), table.name, quote(r[4].as_deref().unwrap_or(""))),
            )
            .detail("Contract rewrites its column list or row filter to the new column as the change's owner, who must own the publication.")
            .hint(format!(
                "Nothing was changed. Give the publication to the table's owner (ALTER PUBLICATION {} OWNER TO …), or take the table out of it and add it back after the contract, then contract again.",
                quote(&name)
            )));
        }
        let mut spec = table.name.clone();
        if let Some(list) = &r[2] {
            let mut columns: Vec<String> = Vec::new();
            // The new column may be listed already (added to the publication while the change was open).
            for c in list.split('\u{1}').map(|c| quote(if c == old { new } else { c })) {
                if !columns.contains(&c) {
                    columns.push(c);
                }
            }
            spec.push_str(&format!(" ({})", columns.join(", ")));
        }
        if let Some(filter) = &r[1] {
            let moved = rewrite::rename(filter, old, new)?.ok_or_else(|| {
                Failure::new(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("the row filter of table {} in publication {} cannot be moved to the new column", table.name, quote(&name)),
                )
                .detail(format!("Filter: {filter}"))
                .hint("Nothing was changed. Set the filter on the new column yourself (ALTER PUBLICATION … SET TABLE), then contract again.")
            })?;
            spec.push_str(&format!(" WHERE ({moved})"));
        }
        out.before_drop.push(format!("ALTER PUBLICATION {} DROP TABLE {}", quote(&name), table.name));
        out.before_drop.push(format!("ALTER PUBLICATION {} ADD TABLE {spec}", quote(&name)));
        out.said.push(format!("publication {}'s column list and row filter", quote(&name)));
    }
    Ok(())
}

/// Column privileges, granted again by the table's owner (PostgreSQL 15 grants only as the
/// current user or the owner it acts for: a grant first made by another grantor is the owner's
/// afterwards, which contract_plan says). Expand grants them on the new column too, so that the
/// application version that uses it may while the change is open; the swap grants again what
/// was granted since.
fn grants(table: &Table, attnum: i16, final_name: &str, out: &mut Carried) {
    let found = grant_rows(table, attnum, final_name);
    if found.is_empty() {
        return;
    }
    out.after.extend(found.iter().filter_map(|r| r[0].clone()));
    let said: Vec<String> = found.iter().filter_map(|r| r[1].clone()).collect();
    out.said.push(format!("column grants ({})", said.join(", ")));
}

/// The GRANT statements that give column `to` of `table` the privileges of column `attnum`.
pub fn grant_sql(table: &Table, attnum: i16, to: &str) -> Vec<String> {
    grant_rows(table, attnum, to).into_iter().filter_map(|r| r[0].clone()).collect()
}

fn grant_rows(table: &Table, attnum: i16, final_name: &str) -> Vec<Vec<Option<String>>> {
    rows(
        "SELECT pg_catalog.format('GRANT %s (%I) ON %s TO %s%s', x.privilege_type, $3, $4,
                                  CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) END,
                                  CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END),
                pg_catalog.format('%s to %s%s', x.privilege_type,
                                  CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) END,
                                  CASE WHEN x.grantor <> c.relowner
                                       THEN ' (granted by ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(x.grantor)) || ', by the owner after)'
                                       ELSE '' END)
           FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid,
                LATERAL pg_catalog.aclexplode(a.attacl) x
          WHERE a.attrelid = $1 AND a.attnum = $2
          ORDER BY x.grantee, x.privilege_type",
        &[table.oid.into(), attnum.into(), final_name.into(), table.name.as_str().into()],
    )
}

/// The comment, SET STATISTICS, n_distinct options, storage and compression. Storage and
/// compression only where the new type has them (a fixed-size type is PLAIN only). What was set
/// on the new column itself while the change was open is kept.
fn settings(table: &Table, attnum: i16, new: &str, final_name: &str, out: &mut Carried) {
    let found = rows(
        "SELECT CASE WHEN pg_catalog.col_description($1, $2) IS NOT NULL
                      AND pg_catalog.col_description($1, n.attnum) IS NULL
                     THEN pg_catalog.format('COMMENT ON COLUMN %s.%I IS %L', $4, $5, pg_catalog.col_description($1, $2)) END,
                CASE WHEN coalesce(o.attstattarget::int, -1) <> -1 AND coalesce(n.attstattarget::int, -1) = -1
                     THEN pg_catalog.format('ALTER COLUMN %I SET STATISTICS %s', $5, o.attstattarget) END,
                (SELECT pg_catalog.format('ALTER COLUMN %I SET (%s)', $5, pg_catalog.string_agg(pg_catalog.format('%s = %s', option_name, option_value), ', '))
                   FROM pg_catalog.pg_options_to_table(o.attoptions) WHERE option_name IN ('n_distinct', 'n_distinct_inherited')
                    AND option_name NOT IN (SELECT option_name FROM pg_catalog.pg_options_to_table(n.attoptions))
                 HAVING count(*) > 0),
                CASE WHEN o.attstorage <> ot.typstorage AND nt.typstorage <> 'p' AND n.attstorage = nt.typstorage AND o.attstorage <> n.attstorage
                     THEN pg_catalog.format('ALTER COLUMN %I SET STORAGE %s', $5,
                              CASE o.attstorage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL' WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END) END,
                CASE WHEN o.attcompression::text <> '' AND nt.typlen = -1 AND n.attcompression::text = ''
                     THEN pg_catalog.format('ALTER COLUMN %I SET COMPRESSION %s', $5,
                              CASE o.attcompression WHEN 'l' THEN 'lz4' ELSE 'pglz' END) END
           FROM pg_catalog.pg_attribute o
           JOIN pg_catalog.pg_type ot ON ot.oid = o.atttypid
           JOIN pg_catalog.pg_attribute n ON n.attrelid = o.attrelid AND n.attname = $3
           JOIN pg_catalog.pg_type nt ON nt.oid = n.atttypid
          WHERE o.attrelid = $1 AND o.attnum = $2",
        &[table.oid.into(), attnum.into(), new.into(), table.name.as_str().into(), final_name.into()],
    );
    let Some(r) = found.into_iter().next() else { return };
    if let Some(comment) = &r[0] {
        out.after.push(comment.clone());
        out.said.push("the comment".to_string());
    }
    let alters: Vec<String> = r[1..].iter().flatten().cloned().collect();
    if !alters.is_empty() {
        let said: Vec<String> = alters.iter().map(|a| a.split_once(" SET ").map(|(_, s)| format!("SET {s}")).unwrap_or_default()).collect();
        out.said.extend(said);
        out.after.push(format!("ALTER TABLE {} {}", table.name, alters.join(", ")));
    }
}

/// REPLICA IDENTITY USING INDEX on an index that uses the old column: the index goes with the
/// column and its copy (built by `rebuild`, renamed in the swap to the old index's name, or the
/// constraint's for one behind a constraint) becomes the replica identity again.
fn replica_identity(table: &Table, attnum: i16, out: &mut Carried) {
    let name = Spi::get_one_with_args::<String>(
        "SELECT coalesce(con.conname, ic.relname)::text
           FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
           JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
           LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u')
          WHERE i.indrelid = $1 AND i.indisreplident AND c.relreplident = 'i'
            AND ($2 = ANY (i.indkey::pg_catalog.int2[]) OR EXISTS (
                 SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = i.indexrelid
                    AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1 AND d.refobjsubid = $2))",
        &[table.oid.into(), attnum.into()],
    )
    .ok()
    .flatten();
    if let Some(name) = name {
        out.after.push(format!("ALTER TABLE {} REPLICA IDENTITY USING INDEX {}", table.name, quote(&name)));
        out.said.push(format!("REPLICA IDENTITY USING INDEX {}", quote(&name)));
    }
}

/// Extended statistics (CREATE STATISTICS) that use the old column. DROP COLUMN drops them
/// without a word; the swap creates them again under their names, with their kinds, target and
/// comment. Their data comes back with the next ANALYZE (autovacuum's or yours).
fn statistics(table: &Table, old: &str, attnum: i16, final_name: &str, out: &mut Carried) -> Result<()> {
    let found = rows(
        "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(s.stxname),
                (SELECT pg_catalog.array_to_string(pg_catalog.array_agg(a.attname::text ORDER BY k.n), chr(1))
                   FROM pg_catalog.unnest(s.stxkeys::pg_catalog.int2[]) WITH ORDINALITY k(attnum, n)
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = s.stxrelid AND a.attnum = k.attnum),
                pg_catalog.array_to_string(pg_catalog.pg_get_statisticsobjdef_expressions(s.oid), chr(1)),
                pg_catalog.array_to_string(s.stxkind::text[], ''),
                CASE WHEN coalesce(s.stxstattarget::int, -1) <> -1 THEN s.stxstattarget::text END,
                pg_catalog.format('%L', pg_catalog.obj_description(s.oid, 'pg_statistic_ext'))
           FROM pg_catalog.pg_statistic_ext s JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
          WHERE s.stxrelid = $1 AND EXISTS (
                SELECT FROM pg_catalog.pg_depend d
                 WHERE d.classid = 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass AND d.objid = s.oid
                   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1 AND d.refobjsubid = $2)
          ORDER BY 1",
        &[table.oid.into(), attnum.into()],
    );
    for r in found {
        let name = r[0].clone().unwrap_or_default();
        let mut items: Vec<String> = Vec::new();
        // The new column may be in it already (statistics created while the change was open).
        for c in r[1].iter().flat_map(|l| l.split('\u{1}')).filter(|c| !c.is_empty()).map(|c| quote(if c == old { final_name } else { c })) {
            if !items.contains(&c) {
                items.push(c);
            }
        }
        for expr in r[2].iter().flat_map(|l| l.split('\u{1}')).filter(|e| !e.is_empty()) {
            let moved = rewrite::rename(expr, old, final_name)?.ok_or_else(|| {
                Failure::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, format!("statistics object {name} cannot be moved to the new column"))
                    .detail(format!("Expression: {expr}"))
                    .hint("Nothing was changed. Drop it and create it again on the new column after the contract, then contract again.")
            })?;
            items.push(format!("({moved})"));
        }
        let kinds: Vec<&str> = r[3]
            .as_deref()
            .unwrap_or_default()
            .chars()
            .filter_map(|k| match k {
                'd' => Some("ndistinct"),
                'f' => Some("dependencies"),
                'm' => Some("mcv"),
                _ => None,
            })
            .collect();
        // Statistics on one expression take no kinds (they are that expression's statistics).
        let kinds = if items.len() > 1 && !kinds.is_empty() { format!(" ({})", kinds.join(", ")) } else { String::new() };
        out.after.push(format!("CREATE STATISTICS {name}{kinds} ON {} FROM {}", items.join(", "), table.name));
        if let Some(target) = &r[4] {
            out.after.push(format!("ALTER STATISTICS {name} SET STATISTICS {target}"));
        }
        if let Some(comment) = r[5].as_deref().filter(|c| *c != "NULL") {
            out.after.push(format!("COMMENT ON STATISTICS {name} IS {comment}"));
        }
        out.said.push(format!("statistics {name} (recreated; ANALYZE fills it)"));
    }
    Ok(())
}
