//! Who may do what: migration SQL runs with the caller's privileges; nobody but pg_migrate
//! writes the catalog; the event log is append-only.

use pg_migrate_integration::{db_error, Cluster};

fn setup(pg: &Cluster) {
    pg.create_db("app");
    pg.connect("app")
        .batch_execute(
            "CREATE ROLE deployer LOGIN;
             CREATE ROLE stranger LOGIN;
             GRANT CREATE ON SCHEMA public TO deployer;
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA migrate TO deployer;
             CREATE TABLE owned_by_postgres (id int);",
        )
        .unwrap();
}

#[test]
fn migration_sql_runs_with_the_callers_privileges() {
    let pg = Cluster::start();
    setup(&pg);
    let mut d = pg.connect_as("app", "deployer");

    let err = d
        .query_one("SELECT migrate.apply('1', 'ALTER TABLE owned_by_postgres ADD COLUMN x int;')", &[])
        .unwrap_err();
    let (code, message, ..) = db_error(&err);
    assert_eq!(code, "42501");
    assert!(message.ends_with("failed: must be owner of table owned_by_postgres"), "{message}");

    // What it may do, it does, and the history says who did it.
    d.execute("SELECT migrate.apply('2', 'CREATE TABLE mine (id int);', 'DROP TABLE mine;')", &[]).unwrap();
    let mut admin = pg.connect("app");
    let (owner, applied_by, actor): (String, String, String) = admin
        .query_one(
            "SELECT (SELECT tableowner::text FROM pg_tables WHERE tablename = 'mine'),
                    (SELECT applied_by::text FROM migrate.migrations WHERE version = '2'),
                    (SELECT actor::text FROM migrate.events WHERE version = '2')",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!((owner.as_str(), applied_by.as_str(), actor.as_str()), ("deployer", "deployer", "deployer"));
    d.execute("SELECT migrate.rollback()", &[]).unwrap();
}

#[test]
fn nobody_writes_the_catalog_directly() {
    let pg = Cluster::start();
    setup(&pg);
    let mut d = pg.connect_as("app", "deployer");
    d.execute("SELECT migrate.apply('1', 'CREATE TABLE mine (id int);')", &[]).unwrap();

    for forgery in [
        "INSERT INTO migrate.migrations (version, state) VALUES ('999', 'applied')",
        "UPDATE migrate.migrations SET checksum = NULL",
        "DELETE FROM migrate.migrations",
        "INSERT INTO migrate.events (action, actor, session_role) VALUES ('apply', 'x', 'x')",
        "UPDATE migrate.events SET actor = 'someone_else'",
        "TRUNCATE migrate.events",
    ] {
        let err = d.execute(forgery, &[]).unwrap_err();
        assert_eq!(db_error(&err).0, "42501", "{forgery}");
    }
    // Reading is allowed.
    let n: i64 = d.query_one("SELECT count(*) FROM migrate.status()", &[]).unwrap().get(0);
    assert_eq!(n, 1);

    // Even the owner cannot rewrite the event log.
    let mut admin = pg.connect("app");
    for forgery in ["UPDATE migrate.events SET actor = 'x'", "DELETE FROM migrate.events", "TRUNCATE migrate.events"] {
        let err = admin.execute(forgery, &[]).unwrap_err();
        let (code, message, ..) = db_error(&err);
        assert_eq!(code, "42501", "{forgery}");
        assert!(message.starts_with("migrate.events is append-only"), "{message}");
    }

    // A role without EXECUTE cannot change history at all.
    let mut s = pg.connect_as("app", "stranger");
    for call in [
        "SELECT migrate.apply('2', 'SELECT 1')",
        "SELECT migrate.rollback()",
        "SELECT * FROM migrate.rollback_to('1')",
        "SELECT migrate.baseline('0')",
        "SELECT migrate.repair('1', 'SELECT 1')",
    ] {
        let err = s.execute(call, &[]).unwrap_err();
        assert_eq!(db_error(&err).0, "42501", "{call}");
    }
    let n: i64 = admin.query_one("SELECT count(*) FROM migrate.events", &[]).unwrap().get(0);
    assert_eq!(n, 1);
}

#[test]
fn functions_pin_their_search_path_against_hijacking() {
    let pg = Cluster::start();
    setup(&pg);
    pg.connect("app").batch_execute("GRANT CREATE ON DATABASE app TO deployer").unwrap();
    let mut d = pg.connect_as("app", "deployer");
    // A hostile schema first in the search_path shadowing what pg_migrate's own SQL uses.
    d.batch_execute(
        "CREATE SCHEMA evil;
         CREATE TABLE evil.pg_extension (extname name, extowner oid);
         CREATE FUNCTION evil.pg_advisory_xact_lock(bigint) RETURNS void LANGUAGE sql AS 'SELECT NULL::void';
         CREATE TABLE evil.migrations (version text);
         CREATE FUNCTION evil.pg_backend_pid() RETURNS int LANGUAGE sql AS 'SELECT 0';
         SET search_path = evil, public;",
    )
    .unwrap();
    d.execute("SELECT migrate.apply('1', 'CREATE TABLE here (id int);')", &[]).unwrap();
    // The migration's own SQL used the caller's search_path...
    let schema: String = d
        .query_one("SELECT schemaname::text FROM pg_tables WHERE tablename = 'here'", &[])
        .unwrap()
        .get(0);
    assert_eq!(schema, "evil");
    // ...while pg_migrate's catalog SQL did not.
    let n: i64 = d.query_one("SELECT count(*) FROM migrate.migrations", &[]).unwrap().get(0);
    assert_eq!(n, 1);
    let fake: i64 = d.query_one("SELECT count(*) FROM evil.migrations", &[]).unwrap().get(0);
    assert_eq!(fake, 0);
    // lint, plan and verify resolve the user's names with the caller's search_path too, and pin
    // it around their own queries: plan still finds its own backend's locks.
    let lock: String = d
        .query_one("SELECT lock_mode FROM migrate.plan('ALTER TABLE here ADD COLUMN x int') WHERE relation = 'evil.here'", &[])
        .unwrap()
        .get(0);
    assert_eq!(lock, "AccessExclusiveLock");
    let configs: Vec<String> = d
        .query(
            "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'migrate'
                -- these run or resolve the caller's SQL with the caller's search_path (their own
                -- catalog SQL is pinned inside); wait() is a procedure that COMMITs, which a SET
                -- clause forbids, so it (like wait_change and wait_version) schema-qualifies every name instead;
                -- backfill_writing() runs no SQL and is called by sync triggers on every row, where a
                -- SET clause would cost a GUC save and restore per call; sync_row() (the compiled sync
                -- trigger) resolves its expressions under the search_path its arguments carry
                AND p.proname NOT IN ('apply', 'rollback', 'rollback_to', 'run_async', 'wait', 'lint', 'plan', 'verify',
                                      'backfill_start', 'expand_column', 'add_column', 'add_check', 'create_index',
                                      'add_enum_value', 'wait_change', 'wait_version', 'backfill_writing', 'sync_row')
                AND NOT coalesce(p.proconfig::text LIKE '%search_path%', false)
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(configs.is_empty(), "functions without a pinned search_path: {configs:?}");
}
