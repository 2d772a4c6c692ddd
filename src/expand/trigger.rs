//! The generated sync trigger of an expand_column change: a BEFORE INSERT OR UPDATE row trigger
//! that keeps the old and the new column in step while both application versions write.
//!
//! It only assigns to NEW, so it never writes another row and cannot loop. It fires last among
//! the table's BEFORE triggers (triggers fire in name order, hence the `zz_` prefix), so it syncs
//! the values the application's own triggers have settled on. It does nothing for the writes of
//! its change's backfill (see `backfill::marker`): the backfill sets the new column
//! from the old one, and the old column must never be rewritten from a lossy new value.

use super::facts::Table;
use super::rewrite::{self, quote};
use crate::error::Result;

pub struct Sync<'a> {
    pub change: i64,
    pub table: &'a Table,
    pub old: &'a str,
    pub new: &'a str,
    /// Expressions over the row's columns: the new value from the old, the old from the new.
    pub up: &'a str,
    pub down: &'a str,
    /// The old column's default, which the trigger applies while the change is open (see
    /// `column`: a default left on the old column would hide which column an INSERT set).
    pub old_default: Option<&'a str>,
    pub backfill_job: i64,
}

pub fn trigger_name(change: i64) -> String {
    format!("zz_migrate_sync_{change}")
}

fn update_trigger_name(change: i64) -> String {
    format!("zz_migrate_sync_{change}_update")
}

/// Named after the table and the change, so that a function left behind by an earlier
/// installation (whose change ids started again at 1) does not stand in the way.
pub fn function_name(table: &Table, change: i64) -> String {
    let suffix = format!("_migrate_sync_{change}");
    let prefix = rewrite::shorten(&table.relname, rewrite::MAX_IDENTIFIER - suffix.len());
    format!("{}.{}", quote(&table.schema), quote(&format!("{prefix}{suffix}")))
}

/// What makes a change's sync trigger: its function (none for the compiled trigger), then the
/// triggers.
pub struct Made {
    pub function: Option<String>,
    pub triggers: String,
}

/// The compiled trigger (`migrate.sync_row`, see sync_row.rs) when the expressions allow it and
/// `migrate.compiled_sync_trigger` is on; otherwise a generated PL/pgSQL function.
pub fn create(s: &Sync) -> Result<Made> {
    refuse_virtual_generated(s)?;
    // The schemas the caller's names resolve in now ("$user" resolved for the caller, not for
    // each writer, who could otherwise put a schema of their own in front).
    let search_path = pgrx::Spi::get_one::<String>(
        "SELECT coalesce(pg_catalog.string_agg(pg_catalog.quote_ident(s), ', '), '') FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) AS s",
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    if crate::gucs::compiled_sync_trigger() && crate::catalog::has_0_3_objects() && super::sync_row::can_compile(s) {
        // No WHEN clause: the function compares the values' bytes itself (sync_row.rs).
        return Ok(Made { function: None, triggers: triggers_sql(s, &super::sync_row::call(s, &search_path), false) });
    }
    let (function, triggers) = plpgsql(s, &search_path)?;
    Ok(Made { function: Some(function), triggers })
}

/// CREATE FUNCTION, and the CREATE TRIGGER statements. The function pins `search_path`, the
/// schemas `up` and `down` were checked in: they resolve their names as they did then.
fn plpgsql(s: &Sync, search_path: &str) -> Result<(String, String)> {
    let (old, new) = (quote(s.old), quote(s.new));
    let up = over_new(s.up, "up")?;
    let down = over_new(s.down, "down")?;
    let fill_old = match s.old_default {
        Some(d) => format!("\n            NEW.{old} := {d};"),
        None => String::new(),
    };
    let body = format!(
        r#"
#variable_conflict use_column
BEGIN
    IF {backfill_writing} OPERATOR(pg_catalog.=) {job} THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.{old} IS NULL AND NEW.{new} IS NULL THEN{fill_old}
            NEW.{new} := {up};
        ELSIF NEW.{new} IS NULL THEN
            NEW.{new} := {up};
        ELSIF NEW.{old} IS NULL THEN
            NEW.{old} := {down};
        END IF;
    ELSIF NEW.{old} IS DISTINCT FROM OLD.{old} THEN
        IF NEW.{new} IS NOT DISTINCT FROM OLD.{new} THEN
            NEW.{new} := {up};
        END IF;
    ELSIF NEW.{new} IS DISTINCT FROM OLD.{new} THEN
        NEW.{old} := {down};
    ELSIF NEW.{new} IS NULL THEN
        NEW.{new} := {up};
    END IF;
    RETURN NEW;
END
"#,
        job = s.backfill_job,
        backfill_writing = backfill_mark(),
    );
    let tag = dollar_tag(&body, s.change);
    let function = format!(
        "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SET search_path TO '{path}' AS {tag}{body}{tag}",
        path = search_path.replace('\'', "''"),
        name = function_name(s.table, s.change),
    );
    Ok((function, triggers_sql(s, &format!("{}()", function_name(s.table, s.change)), true)))
}

/// Two triggers on one function. With `when`, an UPDATE that changes neither column (and whose
/// row the backfill has reached) does not even call the function: its WHEN clause is checked
/// first.
fn triggers_sql(s: &Sync, call: &str, when: bool) -> String {
    let (old, new) = (quote(s.old), quote(s.new));
    let when = if when {
        format!("WHEN (NEW.{old} IS DISTINCT FROM OLD.{old} OR NEW.{new} IS DISTINCT FROM OLD.{new} OR NEW.{new} IS NULL)")
    } else {
        String::new()
    };
    format!(
        "CREATE TRIGGER {} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {call};
         CREATE TRIGGER {} BEFORE UPDATE ON {table} FOR EACH ROW {when} EXECUTE FUNCTION {call}",
        quote(&trigger_name(s.change)),
        quote(&update_trigger_name(s.change)),
        table = s.table.name,
    )
}

/// PostgreSQL 18 computes virtual generated columns after BEFORE triggers: a sync trigger would
/// read NULL where the backfill reads the value, and the two columns would disagree.
fn refuse_virtual_generated(s: &Sync) -> Result<()> {
    let mut used = rewrite::referenced(s.up, "up")?;
    used.extend(rewrite::referenced(s.down, "down")?);
    let virtual_ones = crate::ddl::session::with_pinned_search_path(|| {
        pgrx::Spi::get_one_with_args::<Vec<String>>(
            "SELECT coalesce(array_agg(attname::text ORDER BY attnum), '{}') FROM pg_catalog.pg_attribute
              WHERE attrelid = $1 AND attgenerated = 'v' AND NOT attisdropped AND attname::text = ANY ($2)",
            &[s.table.oid.into(), used.into()],
        )
        .ok()
        .flatten()
        .unwrap_or_default()
    });
    if virtual_ones.is_empty() {
        return Ok(());
    }
    Err(crate::error::Failure::new(
        pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("up or down of {} reads virtual generated column {}", s.table.name, virtual_ones.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")),
    )
    .detail("PostgreSQL computes virtual generated columns after BEFORE triggers: the sync trigger would see NULL where the backfill sees the value.")
    .hint("Nothing was changed. Write the generated column's expression into up or down instead of its name."))
}

/// Drops the change's triggers, and its PL/pgSQL function when it has one (the compiled trigger
/// has none: no "does not exist, skipping" notice about an object the user never had).
pub fn drop_sql(table: &Table, change: i64) -> String {
    let function = function_name(table, change);
    let has_function = crate::ddl::session::with_pinned_search_path(|| {
        pgrx::Spi::get_one_with_args::<bool>("SELECT pg_catalog.to_regprocedure($1) IS NOT NULL", &[format!("{function}()").into()])
            .ok()
            .flatten()
            .unwrap_or(true)
    });
    let mut sql = format!(
        "DROP TRIGGER IF EXISTS {} ON {table}; DROP TRIGGER IF EXISTS {} ON {table}",
        quote(&trigger_name(change)),
        quote(&update_trigger_name(change)),
        table = table.name,
    );
    if has_function {
        sql.push_str(&format!("; DROP FUNCTION IF EXISTS {function}()"));
    }
    sql
}

/// `expr` evaluated on the row being written. Plain column names become `NEW."col"`, which
/// PL/pgSQL evaluates without a query; an expression with subqueries or qualified names runs
/// as a query over the row instead.
fn over_new(expr: &str, label: &str) -> Result<String> {
    Ok(match rewrite::columns(expr, label, |c| format!("NEW.{}", quote(c)))? {
        Some(direct) => format!("({direct})"),
        None => format!("(SELECT (\n{expr}\n) FROM (SELECT NEW.*) AS migrate_row)"),
    })
}

/// How the trigger asks which backfill is writing: `migrate.backfill_writing()` (see
/// `backfill::marker`), or, while the database still has the SQL objects of pg_migrate 0.2.0 or
/// earlier (the library was updated, `ALTER EXTENSION pg_migrate UPDATE` not run yet), the
/// read-only setting those versions used.
fn backfill_mark() -> &'static str {
    if crate::catalog::has_0_3_objects() {
        "migrate.backfill_writing()"
    } else {
        "pg_catalog.current_setting('migrate.backfill_job', true)::bigint"
    }
}

/// A dollar-quote tag that does not occur in the body (the user's expressions are in it).
fn dollar_tag(body: &str, change: i64) -> String {
    let mut n = 0;
    loop {
        let tag = format!("$migrate_sync_{change}_{n}$");
        if !body.contains(&tag) {
            return tag;
        }
        n += 1;
    }
}
