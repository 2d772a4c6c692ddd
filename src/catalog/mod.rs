//! The catalog: what pg_migrate remembers. The schema lives in `sql/*.sql` as readable SQL; this
//! module places it in the generated extension script, closes it off (EXECUTE on the functions
//! that change history or start work is revoked from PUBLIC: grant it to the roles that deploy
//! migrations), and holds the only code that reads and writes the catalog tables.

pub mod backfills;
pub mod changes;
pub mod history;
pub mod jobs;
pub mod workers;

/// Whether this database has the SQL objects of pg_migrate 0.3.0 or later. A package update
/// installs the new library first, and it runs against the old objects until `ALTER EXTENSION
/// pg_migrate UPDATE`: code that uses something 0.3.0 added (migrate.deploy_lock, the `owner` of
/// versions, the worker's backend_start in job rows, migrate.workers, migrate.backfill_writing())
/// asks here and keeps the earlier release's way otherwise.
pub fn has_0_3_objects() -> bool {
    crate::ddl::session::with_pinned_search_path(|| {
        pgrx::Spi::get_one::<bool>("SELECT extversion NOT IN ('0.1.0', '0.2.0') FROM pg_catalog.pg_extension WHERE extname = 'pg_migrate'")
            .ok()
            .flatten()
            .unwrap_or(false)
    })
}

/// Whether `member` may act as `role`, as `SET ROLE` decides: pg_migrate runs a version's or a
/// change's SQL with its owner's rights. PostgreSQL 16 made SET a separate option of each
/// membership (`GRANT r TO m WITH SET FALSE`: m may neither become r nor, with INHERIT FALSE,
/// use its rights); on 15 every member may SET ROLE. Superusers may act as anyone.
pub fn may_act_as(member: pgrx::pg_sys::Oid, role: pgrx::pg_sys::Oid) -> bool {
    #[cfg(feature = "pg15")]
    return unsafe { pgrx::pg_sys::is_member_of_role(member, role) };
    #[cfg(not(feature = "pg15"))]
    return unsafe { pgrx::pg_sys::member_can_set_role(member, role) };
}

/// The privilege that `pg_has_role(member, role, …)` checks for `may_act_as` in SQL.
#[cfg(feature = "pg15")]
pub const ACT_AS: &str = "MEMBER";
#[cfg(not(feature = "pg15"))]
pub const ACT_AS: &str = "SET";

pgrx::extension_sql_file!("../../sql/catalog.sql", name = "catalog", bootstrap);
pgrx::extension_sql_file!("../../sql/jobs.sql", name = "jobs", requires = ["catalog"]);
pgrx::extension_sql_file!("../../sql/backfill.sql", name = "backfill", requires = ["jobs"]);
pgrx::extension_sql_file!("../../sql/workers.sql", name = "workers", requires = ["backfill"]);
pgrx::extension_sql_file!("../../sql/deploy_lock.sql", name = "deploy_lock", requires = ["catalog"]);

pgrx::extension_sql!(
    r#"
REVOKE EXECUTE ON FUNCTION
    migrate.apply(text, text, text, text),
    migrate.rollback(text),
    migrate.rollback_to(text),
    migrate.baseline(text, text),
    migrate.repair(text, text),
    migrate.run_async(text),
    migrate.cancel(bigint),
    migrate.resume_jobs(),
    migrate.backfill_start(regclass, text, text, jsonb),
    migrate.backfill_batch(bigint, int),
    migrate.pause(bigint),
    migrate.resume(bigint),
    migrate.expand_column(regclass, text, text, text, text, text, jsonb),
    migrate.contract(bigint),
    migrate.abort(bigint),
    migrate.add_column(regclass, text, text, text, boolean),
    migrate.add_check(regclass, text, text),
    migrate.add_foreign_key(regclass, text[], regclass, text[], text, text),
    migrate.create_index(regclass, text, text, boolean),
    migrate.drop_index(regclass),
    migrate.drop_column(regclass, text),
    migrate.purge_deprecated(regclass),
    migrate.add_enum_value(text, text, text, text)
FROM PUBLIC;
"#,
    name = "privileges",
    finalize
);
