//! How a backfill walks its table: by primary key in key order, or by ranges of heap pages when
//! the table has none. Everything here builds or runs SQL about the table itself; identifiers are
//! quoted, and cursor values travel as text (`$1::text[]`) cast back to the key's own types.

use crate::catalog::backfills::{Backfill, Target, Walk};
use crate::error::{Failure, Result};
use pgrx::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

/// The backfill's table as SQL names it now (a rename during the backfill is fine).
pub struct Table {
    /// Schema-qualified and quoted.
    pub name: String,
    /// pg_class.relkind: r for a table, p for a partitioned table.
    pub kind: String,
    pub partitioned: bool,
}

impl Table {
    pub fn find(oid: pg_sys::Oid) -> Option<Table> {
        let (name, kind) = Spi::get_two_with_args::<String, String>(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), c.relkind::text
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            &[oid.into()],
        )
        .ok()?;
        let kind = kind?;
        Some(Table { name: name?, partitioned: kind == "p", kind })
    }

    /// The table without its inheritance children (they have keys of their own); a partitioned
    /// table with its partitions (they share its key).
    /// The job's table, or why a batch cannot run on it.
    pub fn of_job(b: &Backfill) -> Result<Table> {
        Table::find(pg_sys::Oid::from(b.relation)).ok_or_else(|| {
            Failure::new(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE, format!("table {} of backfill job {} no longer exists", b.table_name, b.job))
                .hint(format!("Cancel the job: SELECT migrate.cancel({});", b.job))
        })
    }

    pub fn target(&self) -> String {
        if self.partitioned {
            self.name.clone()
        } else {
            format!("ONLY {}", self.name)
        }
    }
}

/// A primary key: its columns in index order and their types as SQL spells them.
#[derive(Debug, Clone)]
pub struct Key {
    pub columns: Vec<String>,
    pub types: Vec<String>,
}

impl Key {
    pub fn of(oid: pg_sys::Oid) -> Option<Key> {
        let mut key = Key { columns: vec![], types: vec![] };
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod)
                   FROM pg_catalog.pg_index i
                   CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE i.indrelid = $1 AND i.indisprimary
                  ORDER BY k.n",
                None,
                &[oid.into()],
            )?;
            for row in rows {
                key.columns.push(row.get::<String>(1)?.unwrap_or_default());
                key.types.push(row.get::<String>(2)?.unwrap_or_default());
            }
            Ok::<_, pgrx::spi::SpiError>(())
        })
        .ok()?;
        (!key.columns.is_empty()).then_some(key)
    }

    /// The key a job walks by; None for a page walk.
    pub fn of_job(b: &Backfill) -> Option<Key> {
        match b.walk {
            Walk::Key => Some(Key {
                columns: b.key_columns.clone().unwrap_or_default(),
                types: b.key_types.clone().unwrap_or_default(),
            }),
            Walk::Ctid => None,
        }
    }

    fn quoted(&self) -> Vec<String> {
        self.columns.iter().map(|c| quote_identifier(c)).collect()
    }

    /// `("a", "b")`
    fn tuple(&self) -> String {
        format!("({})", self.quoted().join(", "))
    }

    /// `($n[1]::int, $n[2]::text)`: parameter `$n` (a text[]) as a key value.
    fn value(&self, param: usize) -> String {
        let parts: Vec<String> =
            self.types.iter().enumerate().map(|(i, t)| format!("(${param}::text[])[{}]::{t}", i + 1)).collect();
        format!("({})", parts.join(", "))
    }

    /// The key of a row as text[], the form cursors are saved in.
    fn as_text(&self) -> String {
        let parts: Vec<String> = self.quoted().iter().map(|c| format!("{c}::text")).collect();
        format!("ARRAY[{}]", parts.join(", "))
    }

    fn order(&self, direction: &str) -> String {
        self.quoted().iter().map(|c| format!("{c} {direction}")).collect::<Vec<_>>().join(", ")
    }

    /// Rows after the key in `$1` (when there is a cursor) up to the key in `$2`.
    fn range(&self, from_cursor: bool) -> String {
        let upper = format!("{} <= {}", self.tuple(), self.value(2));
        if from_cursor {
            format!("{} > {} AND {upper}", self.tuple(), self.value(1))
        } else {
            upper
        }
    }

    /// The key of the table's last row: rows after it were inserted after the job started.
    pub fn last(&self, table: &Table) -> Option<Vec<String>> {
        Spi::get_one::<Vec<String>>(&format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT 1",
            self.as_text(),
            table.target(),
            self.order("DESC")
        ))
        .ok()
        .flatten()
    }
}

/// Key batches: the last key of the next `size` rows, or None when fewer are left.
pub fn batch_end(key: &Key, table: &Table, cursor: Option<&[String]>, upper: &[String], size: i32) -> Option<Vec<String>> {
    let sql = format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {} OFFSET $3 LIMIT 1",
        key.as_text(),
        table.target(),
        key.range(cursor.is_some()),
        key.order("ASC")
    );
    match Spi::get_one_with_args::<Vec<String>>(&sql, &[cursor.map(<[String]>::to_vec).into(), upper.to_vec().into(), i64::from(size - 1).into()]) {
        Ok(end) => end,
        // No row that far: the rest of the table is the last batch.
        Err(pgrx::spi::SpiError::InvalidPosition) => None,
        Err(e) => pgrx::error!("{e}"),
    }
}

/// Key batches: how many rows are left after the cursor (only asked for the last batch).
pub fn rows_left(key: &Key, table: &Table, cursor: Option<&[String]>, upper: &[String]) -> i64 {
    let sql = format!("SELECT count(*) FROM {} WHERE {}", table.target(), key.range(cursor.is_some()));
    Spi::get_one_with_args::<i64>(&sql, &[cursor.map(<[String]>::to_vec).into(), upper.to_vec().into()])
        .expect("count the last batch")
        .unwrap_or(0)
}

/// Key batches: the UPDATE of the rows after the cursor up to `end`. Returns how many rows it
/// updated.
pub fn update_keys(key: &Key, table: &Table, set: &str, filter: Option<&str>, cursor: Option<&[String]>, end: &[String]) -> i64 {
    let sql = format!("UPDATE {} SET {set} WHERE {}{}", table.target(), key.range(cursor.is_some()), filter_sql(filter));
    run_update(&sql, &[cursor.map(<[String]>::to_vec).into(), end.to_vec().into()])
}

/// Page batches: the UPDATE of the rows on pages `from..to` that existed at the start. A row
/// version did when its xmin precedes the transaction id that was next then (compared by age,
/// which handles wraparound and frozen rows) and was not in progress then. Rows written since, by the
/// application or by an earlier batch (an updated row may move to a page further on), are not
/// the walk's: without a key there is no other way to tell a row from its new version.
pub fn update_pages(table: &Table, set: &str, filter: Option<&str>, from: i64, to: i64, xmax: &str, xip: &[String]) -> i64 {
    let in_progress = if xip.is_empty() {
        String::new()
    } else {
        // A constant array, so that the planner hashes it (PostgreSQL 14+).
        format!(" AND NOT (xmin = ANY ('{{{}}}'::xid[]))", xip.join(","))
    };
    let sql = format!(
        "UPDATE {} SET {set}
          WHERE ctid >= pg_catalog.format('(%s,0)', $1)::pg_catalog.tid AND ctid < pg_catalog.format('(%s,0)', $2)::pg_catalog.tid
            AND pg_catalog.age(xmin) > pg_catalog.age($3::text::xid){in_progress}{}",
        table.target(),
        filter_sql(filter)
    );
    run_update(&sql, &[from.into(), to.into(), xmax.into()])
}

/// What "existed at the start" means for `update_pages`, as 32-bit xids (text): the next
/// transaction id (every transaction before it, this one and its subtransactions included, has
/// started) and the other transactions still in progress (their rows are not committed yet).
pub fn start_snapshot() -> (String, Vec<String>) {
    let next = unsafe { pg_sys::ReadNextFullTransactionId() }.value as u32;
    let xip = Spi::get_one::<Vec<String>>(
        "SELECT ARRAY(SELECT (x::text::numeric % 4294967296)::text
                        FROM pg_catalog.pg_snapshot_xip(pg_catalog.pg_current_snapshot()) x)",
    )
    .expect("read the current snapshot");
    (next.to_string(), xip.unwrap_or_default())
}

/// Rows up to the key in `upper` (all rows without a key) that match the filter and differ from
/// what the assignments would set.
pub fn count_differing(table: &Table, key: Option<&Key>, upper: &[String], targets: &[Target], filter: Option<&str>) -> i64 {
    let range = key.map_or("true".to_string(), |k| format!("{} <= {}", k.tuple(), k.value(1)));
    let differs: Vec<String> = targets
        .iter()
        .map(|t| format!("{} IS DISTINCT FROM (\n{}\n)", quote_identifier(&t.column), t.expression))
        .collect();
    let sql = format!("SELECT count(*) FROM {} WHERE {range}{} AND ({})", table.target(), filter_sql(filter), differs.join(" OR "));
    Spi::get_one_with_args::<i64>(&sql, &[upper.to_vec().into()]).unwrap_or_else(|e| pgrx::error!("{e}")).unwrap_or(0)
}

fn filter_sql(filter: Option<&str>) -> String {
    filter.map(|f| format!(" AND (\n{f}\n)")).unwrap_or_default()
}

fn run_update(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> i64 {
    Spi::connect_mut(|client| client.update(sql, None, args).map(|t| t.len() as i64)).unwrap_or_else(|e| pgrx::error!("{e}"))
}

/// The relations that hold the rows of table `$1`: itself, or a partitioned table's leaf
/// partitions (pg_partition_tree has no rows for a table that is not partitioned).
const LEAVES: &str = "(SELECT relid FROM pg_catalog.pg_partition_tree($1) WHERE isleaf
                       UNION SELECT $1::regclass WHERE (SELECT relkind FROM pg_catalog.pg_class WHERE oid = $1) = 'r')";

/// Heap pages of the table (the largest partition's for a partitioned table: page ranges apply
/// to every partition at once).
pub fn page_count(oid: pg_sys::Oid) -> i64 {
    Spi::get_one_with_args::<i64>(
        &format!(
            "SELECT coalesce(max(pg_catalog.pg_relation_size(relid) / pg_catalog.current_setting('block_size')::bigint), 0)
               FROM {LEAVES} l"
        ),
        &[oid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(0)
}

/// The planner's row estimate (counted when the table was never analysed) and rows per page.
pub fn estimate(oid: pg_sys::Oid, table: &Table) -> (i64, f64) {
    let (rows, pages) = Spi::get_two_with_args::<f64, f64>(
        &format!(
            "SELECT sum(c.reltuples) FILTER (WHERE c.reltuples >= 0)::float8, sum(c.relpages)::float8
               FROM {LEAVES} l JOIN pg_catalog.pg_class c ON c.oid = l.relid"
        ),
        &[oid.into()],
    )
    .unwrap_or((None, None));
    let rows = match rows {
        Some(r) if r > 0.0 => r as i64,
        _ => Spi::get_one::<i64>(&format!("SELECT count(*) FROM {}", table.target())).ok().flatten().unwrap_or(0),
    };
    let pages = pages.unwrap_or(0.0).max(page_count(oid) as f64).max(1.0);
    (rows, (rows as f64 / pages).max(1.0))
}
