//! `migrate.all_changes`: the only code that reads and writes it.

use crate::ddl::session::{as_extension_owner, caller_names};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::{Deserialize, Serialize};

/// One change as stored. `spec` holds what its kind needs later (see `expand::spec`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    pub change: i64,
    pub kind: String,
    pub relation: i64,
    pub table_name: String,
    pub column_name: Option<String>,
    pub new_column: Option<String>,
    pub object_name: Option<String>,
    pub spec: serde_json::Value,
    pub phase: String,
    pub backfill_job: Option<i64>,
    pub job: Option<i64>,
    pub version: Option<String>,
    pub owner: i64,
    /// State of the backfill job and of the other job, joined in by `get`.
    #[serde(default)]
    pub backfill_state: Option<String>,
    #[serde(default)]
    pub job_state: Option<String>,
}

impl Change {
    pub fn relation_oid(&self) -> pg_sys::Oid {
        pg_sys::Oid::from(self.relation as u32)
    }
}

/// A change about to be recorded.
pub struct New<'a> {
    pub kind: &'a str,
    pub relation: pg_sys::Oid,
    pub table_name: &'a str,
    pub column_name: Option<&'a str>,
    pub new_column: Option<&'a str>,
    pub object_name: Option<&'a str>,
    pub spec: serde_json::Value,
    pub phase: &'a str,
    pub backfill_job: Option<i64>,
    pub job: Option<i64>,
}

/// The id the next change will get: the sync trigger's name needs it before the row exists.
pub fn next_id() -> i64 {
    as_extension_owner(|| {
        Spi::get_one::<i64>("SELECT nextval('migrate.all_changes_change_seq')")
            .ok()
            .flatten()
            .expect("sequence value")
    })
}

/// Records a change made by the current user, in the migration version being applied if any.
pub fn insert(id: i64, c: &New) {
    let (by, _) = caller_names();
    let owner = unsafe { pg_sys::GetUserId() };
    let version = crate::version::applying();
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO migrate.all_changes
                    (change, kind, relation, table_name, column_name, new_column, object_name, spec, phase,
                     backfill_job, job, version, owner, created_by, ended_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                     CASE WHEN $9 = 'done' THEN clock_timestamp() END)",
            &[
                id.into(),
                c.kind.into(),
                c.relation.into(),
                c.table_name.into(),
                c.column_name.into(),
                c.new_column.into(),
                c.object_name.into(),
                JsonB(c.spec.clone()).into(),
                c.phase.into(),
                c.backfill_job.into(),
                c.job.into(),
                version.as_deref().into(),
                owner.into(),
                by.as_str().into(),
            ],
        )
        .expect("insert change")
    })
}

const SELECT: &str = "SELECT to_jsonb(c) || jsonb_build_object(
        'relation', c.relation::bigint, 'owner', c.owner::bigint, 'backfill_state', bj.state, 'job_state', j.state)
   FROM migrate.all_changes c
   LEFT JOIN migrate.all_jobs bj ON bj.id = c.backfill_job
   LEFT JOIN migrate.all_jobs j ON j.id = c.job
  WHERE c.change = $1";

/// The change if the current user may act on it (a member of its owner role).
pub fn get(change: i64) -> Option<Change> {
    read(&format!("{SELECT} AND pg_catalog.pg_has_role($2::oid, c.owner, '{}')", super::ACT_AS), change)
}

/// As `get`, locked until the end of the transaction: contract and abort of one change are
/// serialised.
pub fn lock(change: i64) -> Option<Change> {
    read(&format!("{SELECT} AND pg_catalog.pg_has_role($2::oid, c.owner, '{}') FOR UPDATE OF c", super::ACT_AS), change)
}

fn read(sql: &str, change: i64) -> Option<Change> {
    let user = unsafe { pg_sys::GetUserId() };
    as_extension_owner(|| {
        Spi::get_one_with_args::<JsonB>(sql, &[change.into(), user.into()])
            .ok()
            .flatten()
            .map(|j| serde_json::from_value(j.0).expect("change row deserialises"))
    })
}

/// The open change (expand_column, add_column, drop_column) modifying columns of `relation`.
pub fn open_column_change(relation: pg_sys::Oid) -> Option<(i64, String, String)> {
    as_extension_owner(|| {
        Spi::get_three_with_args::<i64, String, String>(
            "SELECT change, kind, coalesce(column_name::text, '') FROM migrate.all_changes
              WHERE relation = $1 AND phase IN ('open', 'contracting')
                AND kind IN ('expand_column', 'add_column')
              ORDER BY change LIMIT 1",
            &[relation.into()],
        )
        .ok()
        .and_then(|(a, b, c)| Some((a?, b?, c?)))
    })
}

/// Moves a change to `phase` (ending it when the phase is final), optionally with its job.
pub fn set_phase(change: i64, phase: &str, job: Option<i64>) {
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE migrate.all_changes
                SET phase = $2, job = coalesce($3, job),
                    ended_at = CASE WHEN $2 IN ('contracted', 'aborted', 'done') THEN clock_timestamp() END
              WHERE change = $1",
            &[change.into(), phase.into(), job.into()],
        )
        .expect("update change")
    })
}

/// The changes `version` made that are still in effect, newest first: what its generated down
/// SQL aborts (an earlier apply of the same version was rolled back, so its changes are aborted).
fn made_by_version(version: &str) -> Vec<i64> {
    as_extension_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT change FROM migrate.all_changes
                      WHERE version = $1 AND phase <> 'aborted'
                      ORDER BY change DESC",
                    None,
                    &[version.into()],
                )
                .map(|rows| rows.filter_map(|r| r.get::<i64>(1).ok().flatten()).collect())
                .unwrap_or_default()
        })
    })
}

/// Soft-dropped columns still in place, of `relation` or of every table: (change, table, column).
pub fn deprecated(relation: Option<pg_sys::Oid>) -> Vec<(i64, pg_sys::Oid, String)> {
    let user = unsafe { pg_sys::GetUserId() };
    as_extension_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT change, relation, new_column::text FROM migrate.all_changes
                      WHERE kind = 'drop_column' AND phase = 'open' AND ($1::oid IS NULL OR relation = $1)
                        AND pg_catalog.pg_has_role($2::oid, owner, 'MEMBER')
                      ORDER BY change",
                    None,
                    &[relation.into(), user.into()],
                )
                .map(|rows| {
                    rows.filter_map(|r| Some((r.get::<i64>(1).ok()??, r.get::<pg_sys::Oid>(2).ok()??, r.get::<String>(3).ok()??)))
                        .collect()
                })
                .unwrap_or_default()
        })
    })
}

/// Down SQL for a version that gave none: aborting, newest first, the changes its up SQL made.
pub fn undo_script(version: &str) -> Option<String> {
    let changes = made_by_version(version);
    if changes.is_empty() {
        return None;
    }
    Some(changes.iter().map(|c| format!("SELECT migrate.abort({c});\n")).collect())
}

/// Replaces a change's spec (contract records the objects it builds).
pub fn set_spec(change: i64, spec: &serde_json::Value) {
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE migrate.all_changes SET spec = $2 WHERE change = $1",
            &[change.into(), JsonB(spec.clone()).into()],
        )
        .expect("update change spec")
    })
}
