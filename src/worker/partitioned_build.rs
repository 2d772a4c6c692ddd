//! A migration's own `CREATE INDEX CONCURRENTLY` on a partitioned table, and its `DROP INDEX
//! CONCURRENTLY` of a partitioned index (say in its down SQL). PostgreSQL refuses both
//! (CONCURRENTLY is not supported on partitioned tables, 15 to 18 alike); a job does what
//! `migrate.create_index` does instead (see partitions.rs): when the step's turn comes and its
//! table is partitioned, the step is replaced by the same statement as `CREATE INDEX IF NOT EXISTS
//! … ON ONLY table` (catalog only, a brief lock taken politely; IF NOT EXISTS so that a job
//! resumed after it committed goes on) and an `IndexPartitions` step that builds each partition's
//! index concurrently and attaches it, then checks the index is valid. The drop becomes a
//! `DropPartitionedIndex` step: one plain DROP INDEX, each try bounded by lock_timeout.
//!
//! The statement is rewritten as text (PostgreSQL has no deparser for raw parse trees) and the
//! rewrite is checked on the parse tree: parsing it must give exactly the original statement with
//! CONCURRENTLY off, IF NOT EXISTS on and ONLY on the table, nothing else.

use crate::catalog::jobs::{self, Internal, Step};
use crate::error::{Failure, Result};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::CString;

/// When step `at` of the job is a CREATE INDEX CONCURRENTLY on a partitioned table: the job's
/// steps with it replaced (saved, the cursor still on it). None for any other step.
pub fn split(job: i64, steps: &[Step], at: usize) -> Result<Option<Vec<Step>>> {
    let step = &steps[at];
    let Some(top) = step.top_level.as_ref() else { return Ok(None) };
    if top.kind == "drop_index" {
        return Ok(drop_step(job, steps, at));
    }
    if top.kind != "create_index" {
        return Ok(None);
    }
    let Some(table) = &top.relation else { return Ok(None) };
    let partitioned = Spi::get_one_with_args::<bool>(
        "SELECT relkind = 'p' FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1)",
        &[table.as_str().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !partitioned {
        return Ok(None);
    }
    let Some(index) = &top.index else {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("CREATE INDEX CONCURRENTLY on partitioned table {table} needs an index name"),
        )
        .detail("pg_migrate builds it partition by partition, and follows the index by its name.")
        .hint("Name the index (CREATE INDEX CONCURRENTLY name ON …) and apply the version again, or use SELECT migrate.create_index(…)."));
    };
    let Some(on_only) = on_only(&step.sql) else {
        return Err(Failure::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("CREATE INDEX CONCURRENTLY {index} on partitioned table {table} could not be rewritten to build it partition by partition"),
        )
        .detail(format!("Statement: {}", crate::ddl::retry::fragment(&step.sql)))
        .hint("Write it as CREATE [UNIQUE] INDEX CONCURRENTLY name ON table …, or use SELECT migrate.create_index(…)."));
    };
    let mut first = super::partitions::sql_step(on_only)?;
    let mut second = Step::internal(
        Internal::IndexPartitions { index: index.clone(), check: Some(0) },
        format!("-- pg_migrate: build {index} on each partition of {table} concurrently and attach it"),
    );
    super::partitions::take_place_of(step, &mut first);
    super::partitions::take_place_of(step, &mut second);
    Ok(Some(replace(job, steps, at, vec![first, second])))
}

/// A DROP INDEX CONCURRENTLY of a partitioned index, as a `DropPartitionedIndex` step.
fn drop_step(job: i64, steps: &[Step], at: usize) -> Option<Vec<Step>> {
    let step = &steps[at];
    let index = step.top_level.as_ref()?.relation.clone()?;
    let partitioned = Spi::get_one_with_args::<bool>(
        "SELECT relkind = 'I' FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1)",
        &[index.as_str().into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !partitioned {
        return None;
    }
    let mut instead = Step::internal(
        Internal::DropPartitionedIndex { index: index.clone() },
        format!("-- pg_migrate: drop partitioned index {index} (one DROP INDEX, each try bounded by lock_timeout)"),
    );
    super::partitions::take_place_of(step, &mut instead);
    Some(replace(job, steps, at, vec![instead]))
}

/// The job's steps with step `at` replaced by `instead` (which take its place in the migration:
/// its version is done only after the last of them), saved; the cursor stays at `at`.
fn replace(job: i64, steps: &[Step], at: usize, instead: Vec<Step>) -> Vec<Step> {
    let mut all = steps[..at].to_vec();
    all.extend(instead);
    all.extend_from_slice(&steps[at + 1..]);
    jobs::replace_steps(job, &all, at);
    all
}

/// `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ON [ONLY] table …` as
/// `CREATE [UNIQUE] INDEX IF NOT EXISTS name ON ONLY table …`, if that is what it is.
fn on_only(sql: &str) -> Option<String> {
    let mut words = Words { text: sql, at: 0 };
    let mut out = String::new();
    let take = |w: &mut Words, want: &[&str]| -> Option<(usize, usize)> {
        let (start, end) = w.next()?;
        want.iter().any(|k| sql[start..end].eq_ignore_ascii_case(k)).then_some((start, end))
    };
    let (start, create_end) = take(&mut words, &["create"])?;
    out.push_str(&sql[start..create_end]);
    let (s, e) = words.next()?;
    let mut word = &sql[s..e];
    if word.eq_ignore_ascii_case("unique") {
        out.push_str(" UNIQUE");
        let (s, e) = words.next()?;
        word = &sql[s..e];
    }
    if !word.eq_ignore_ascii_case("index") {
        return None;
    }
    out.push_str(" INDEX IF NOT EXISTS ");
    take(&mut words, &["concurrently"])?;
    let (s, e) = words.next()?;
    let (name, mut next) = if sql[s..e].eq_ignore_ascii_case("if") {
        take(&mut words, &["not"])?;
        take(&mut words, &["exists"])?;
        let n = words.next()?;
        (n, words.next()?)
    } else {
        ((s, e), words.next()?)
    };
    if sql[name.0..name.1].eq_ignore_ascii_case("on") {
        return None;
    }
    out.push_str(&sql[name.0..name.1]);
    if !sql[next.0..next.1].eq_ignore_ascii_case("on") {
        return None;
    }
    out.push_str(" ON ONLY ");
    let table = words.next()?;
    next = if sql[table.0..table.1].eq_ignore_ascii_case("only") { words.next()? } else { table };
    out.push_str(&sql[next.0..]);
    same_but_on_only(sql, &out).then_some(out)
}

/// Words of a statement's head: identifiers, keywords and quoted identifiers, skipping spaces
/// and comments; (start, end) byte offsets.
struct Words<'a> {
    text: &'a str,
    at: usize,
}

impl Words<'_> {
    fn next(&mut self) -> Option<(usize, usize)> {
        let b = self.text.as_bytes();
        loop {
            while self.at < b.len() && b[self.at].is_ascii_whitespace() {
                self.at += 1;
            }
            if self.text[self.at..].starts_with("--") {
                self.at += self.text[self.at..].find('\n').unwrap_or(self.text.len() - self.at);
            } else if self.text[self.at..].starts_with("/*") {
                self.at += self.text[self.at..].find("*/")? + 2;
            } else {
                break;
            }
        }
        let start = self.at;
        if start >= b.len() {
            return None;
        }
        if b[start] == b'"' {
            let mut i = start + 1;
            loop {
                let close = self.text[i..].find('"')? + i;
                if b.get(close + 1) == Some(&b'"') {
                    i = close + 2;
                } else {
                    self.at = close + 1;
                    break;
                }
            }
        } else {
            while self.at < b.len() && (b[self.at].is_ascii_alphanumeric() || b[self.at] == b'_' || b[self.at] == b'.' || b[self.at] == b'$' || b[self.at] >= 0x80 || b[self.at] == b'"') {
                if b[self.at] == b'"' {
                    // a qualified name's quoted part: schema."name"
                    let close = self.text[self.at + 1..].find('"')? + self.at + 1;
                    self.at = close + 1;
                } else {
                    self.at += 1;
                }
            }
            if self.at == start {
                return None;
            }
        }
        Some((start, self.at))
    }
}

/// Whether `rewritten` parses as `original` with CONCURRENTLY off, IF NOT EXISTS on and ONLY on
/// its table, and nothing else changed (equal() ignores locations).
fn same_but_on_only(original: &str, rewritten: &str) -> bool {
    unsafe fn index_stmt(sql: &str) -> Option<*mut pg_sys::IndexStmt> {
        unsafe {
            let text = CString::new(sql).ok()?;
            let raws = pg_sys::pg_parse_query(text.as_ptr());
            if raws.is_null() || (*raws).length != 1 {
                return None;
            }
            let raw = pg_sys::list_nth(raws, 0) as *mut pg_sys::RawStmt;
            ((*(*raw).stmt).type_ == pg_sys::NodeTag::T_IndexStmt).then_some((*raw).stmt as *mut pg_sys::IndexStmt)
        }
    }
    crate::ddl::subxact::run_and_roll_back(|| unsafe {
        let (Some(a), Some(b)) = (index_stmt(original), index_stmt(rewritten)) else { return false };
        (*a).concurrent = false;
        (*a).if_not_exists = true;
        (*(*a).relation).inh = false;
        pg_sys::equal(a as *const std::ffi::c_void, b as *const std::ffi::c_void)
    })
    .unwrap_or(false)
}
