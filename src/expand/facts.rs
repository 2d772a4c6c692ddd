//! What the catalog says about the table and columns a change works on. Read with a pinned
//! search_path (see `api`), so that names come back schema-qualified and quoted.

use super::rewrite::quote;
use crate::error::{Failure, Result};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

#[derive(Debug, Clone)]
pub struct Table {
    pub oid: pg_sys::Oid,
    /// Schema-qualified and quoted.
    pub name: String,
    pub schema: String,
    pub relname: String,
    pub partitioned: bool,
}

impl Table {
    /// A table or a partitioned table; anything else is refused.
    pub fn of(oid: pg_sys::Oid) -> Result<Table> {
        let row = Spi::connect(|client| {
            let mut rows = client
                .select(
                    "SELECT n.nspname::text, c.relname::text, c.relkind::text,
                            pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
                       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.oid = $1",
                    None,
                    &[oid.into()],
                )
                .ok()?;
            let r = rows.next()?;
            let text = |i| r.get::<String>(i).ok().flatten();
            Some((text(1), text(2), text(3), text(4)))
        })
        .unwrap_or((None, None, None, None));
        match row {
            (Some(schema), Some(relname), Some(kind), Some(name)) if kind == "r" || kind == "p" => Ok(Table {
                oid,
                name,
                schema,
                relname,
                partitioned: kind == "p",
            }),
            (Some(schema), Some(relname), _, _) => Err(Failure::new(
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!("{}.{} is not a table", quote(&schema), quote(&relname)),
            )
            .hint("Expand/contract changes work on tables and partitioned tables.")),
            _ => Err(Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE, format!("table with OID {oid:?} does not exist"))
                .hint("The table was dropped.")),
        }
    }

    /// Refuses a caller that does not own the table (or a role that owns it): for the changes
    /// that only queue a job, which would otherwise be recorded and fail later in the worker.
    pub fn require_owner(&self, doing: &str) -> Result<()> {
        let owner = Spi::get_one_with_args::<pg_sys::Oid>("SELECT relowner FROM pg_catalog.pg_class WHERE oid = $1", &[self.oid.into()])
            .ok()
            .flatten();
        if owner.is_some_and(|o| unsafe { pg_sys::has_privs_of_role(pg_sys::GetUserId(), o) }) {
            return Ok(());
        }
        Err(Failure::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, format!("must be owner of table {} to {doing}", self.name))
            .hint("Nothing was changed. Run it as the table's owner or a member of the owning role."))
    }

    pub fn column(&self, name: &str) -> Result<Column> {
        Column::find(self, name)?.ok_or_else(|| {
            Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, format!("column {} of table {} does not exist", quote(name), self.name))
                .hint("Nothing was changed. Column names are case-sensitive here: pass the name as it is stored, without quotes.")
        })
    }

    pub fn has_column(&self, name: &str) -> bool {
        Column::find(self, name).ok().flatten().is_some()
    }

    /// Whether the table has at least one row (a quick look, not a count).
    pub fn has_rows(&self) -> bool {
        Spi::get_one::<bool>(&format!("SELECT EXISTS (SELECT FROM {} LIMIT 1)", self.name)).ok().flatten().unwrap_or(true)
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub attnum: i16,
    pub name: String,
    /// format_type() of its type, with COLLATE when the column's collation is not its type's.
    pub type_sql: String,
    pub not_null: bool,
    /// pg_get_expr() of its default, if it has one.
    pub default: Option<String>,
    /// 'a' / 'd' for identity columns, 's' for generated ones, '' otherwise.
    pub identity: String,
    pub generated: String,
}

impl Column {
    fn find(table: &Table, name: &str) -> Result<Option<Column>> {
        let row = Spi::connect(|client| {
            client
                .select(
                    "SELECT a.attnum,
                            pg_catalog.format_type(a.atttypid, a.atttypmod)
                              || CASE WHEN a.attcollation <> t.typcollation
                                      THEN ' COLLATE ' || pg_catalog.quote_ident(co.collname) ELSE '' END,
                            a.attnotnull,
                            pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                            a.attidentity::text, a.attgenerated::text
                       FROM pg_catalog.pg_attribute a
                       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                       LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
                       LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                      WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                    None,
                    &[table.oid.into(), name.into()],
                )
                .ok()?
                .next()
                .map(|r| Column {
                    attnum: r.get::<i16>(1).ok().flatten().unwrap_or_default(),
                    name: name.to_string(),
                    type_sql: r.get::<String>(2).ok().flatten().unwrap_or_default(),
                    not_null: r.get::<bool>(3).ok().flatten().unwrap_or_default(),
                    default: r.get::<String>(4).ok().flatten(),
                    identity: r.get::<String>(5).ok().flatten().unwrap_or_default(),
                    generated: r.get::<String>(6).ok().flatten().unwrap_or_default(),
                })
        });
        Ok(row)
    }

    /// Identity and generated columns get their values from Postgres, not from writers or a
    /// backfill: they cannot be the old or the new side of a sync trigger.
    pub fn refuse_computed(&self, table: &Table, what: &str) -> Result<()> {
        let kind = match (self.identity.as_str(), self.generated.as_str()) {
            ("a" | "d", _) => "an identity column",
            (_, "s") => "a generated column",
            _ => return Ok(()),
        };
        Err(Failure::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("column {} of table {} is {kind}; {what}", quote(&self.name), table.name),
        )
        .hint("Nothing was changed. Change the columns it is computed from, or change it with your own migration."))
    }
}

/// Refuses a column of the partition key of `table` or of one of its sub-partitioned
/// partitions: PostgreSQL cannot drop it (nor change its type), so its change could never be
/// contracted.
pub fn refuse_partition_key(table: &Table, column: &Column) -> Result<()> {
    let keyed = Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.string_agg(DISTINCT pt.partrelid::pg_catalog.regclass::text, ', ')
           FROM pg_catalog.pg_partition_tree($1) t
           JOIN pg_catalog.pg_partitioned_table pt ON pt.partrelid = t.relid
           JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid
                                         AND a.attnum OPERATOR(pg_catalog.=) ANY (pt.partattrs::pg_catalog.int2[])
          WHERE a.attname = $2",
        &[table.oid.into(), column.name.as_str().into()],
    )
    .ok()
    .flatten();
    match keyed {
        None => Ok(()),
        Some(tables) => Err(Failure::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("column {} of table {} is in the partition key of {tables}", quote(&column.name), table.name),
        )
        .detail("PostgreSQL cannot drop a partition key column or change its type, and contract drops the old column.")
        .hint("Nothing was changed. Copy the data into a table partitioned the new way instead.")),
    }
}

/// Views (and other rules) that use `column`: dropping it would need CASCADE and break them.
pub fn dependent_views(table: &Table, attnum: i16) -> Vec<String> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT DISTINCT r.ev_class::regclass::text
                   FROM pg_catalog.pg_depend d
                   JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
                  WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
                    AND d.refclassid = 'pg_catalog.pg_class'::regclass
                    AND d.refobjid = $1 AND d.refobjsubid = $2 AND r.ev_class <> $1
                  ORDER BY 1",
                None,
                &[table.oid.into(), i32::from(attnum).into()],
            )
            .map(|rows| rows.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
            .unwrap_or_default()
    })
}

/// Refuses to drop a column that views use, naming them.
pub fn refuse_dependent_views(table: &Table, column: &Column, doing: &str) -> Result<()> {
    let views = dependent_views(table, column.attnum);
    if views.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
        format!("cannot {doing}: views use column {} of table {}", quote(&column.name), table.name),
    )
    .detail(format!("Views: {}.", views.join(", ")))
    .hint("Nothing was changed. Recreate the views on the new column (CREATE OR REPLACE VIEW), then call again."))
}
