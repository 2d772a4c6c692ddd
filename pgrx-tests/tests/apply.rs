//! apply / rollback through a real client, with commits and several sessions.

use pg_migrate_integration::{db_error, wait_until, Cluster};
use std::time::Duration;

#[test]
fn two_sessions_applying_the_same_version_apply_it_once() {
    let pg = Cluster::start();
    pg.create_db("app");
    let up = "CREATE TABLE users (id bigint PRIMARY KEY);\nINSERT INTO audit_marker VALUES (1);\n-- migrate:allow mixed-ddl-and-data";
    pg.connect("app").batch_execute("CREATE TABLE audit_marker (n int)").unwrap();

    // Session A applies inside an open transaction, so it holds the deploy lock (the row of
    // migrate.deploy_lock).
    let mut a = pg.connect("app");
    let mut tx = a.transaction().unwrap();
    let state: String = tx.query_one("SELECT migrate.apply('1_users', $1)", &[&up]).unwrap().get(0);
    assert_eq!(state, "applied");

    // Session B applies the same version at the same time: it must wait for A.
    let (mut b, notices) = pg.connect_with_notices("app", "postgres");
    let b = std::thread::spawn(move || {
        let state: String = b.query_one("SELECT migrate.apply('1_users', $1)", &[&up]).unwrap().get(0);
        let seen = notices.lock().unwrap().clone();
        (state, seen)
    });
    let mut watcher = pg.connect("app");
    assert!(
        wait_until(10, || {
            watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'transactionid'",
                    &[],
                )
                .unwrap()
                .get::<_, i64>(0)
                == 1
        }),
        "session B should wait for A's lock on the row of migrate.deploy_lock"
    );
    tx.commit().unwrap();

    let (state_b, notices) = b.join().unwrap();
    assert_eq!(state_b, "applied");
    assert!(
        notices.iter().any(|n| n.contains("already applied; nothing to do")),
        "B gets a NOTICE: {notices:?}"
    );
    let mut check = pg.connect("app");
    let runs: i64 = check.query_one("SELECT count(*) FROM audit_marker", &[]).unwrap().get(0);
    assert_eq!(runs, 1, "the up SQL ran exactly once");
    let events: i64 = check
        .query_one("SELECT count(*) FROM migrate.events WHERE version = '1_users'", &[])
        .unwrap()
        .get(0);
    assert_eq!(events, 1);
}

#[test]
fn a_failing_migration_leaves_no_trace_in_the_schema_or_history() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    c.batch_execute("CREATE TABLE accounts (id int PRIMARY KEY); INSERT INTO accounts VALUES (1), (2);")
        .unwrap();

    let up = "CREATE TABLE ledger (id int);\n\
              ALTER TABLE accounts ADD COLUMN balance numeric;\n\
              -- the next one fails: duplicate key\n\
              INSERT INTO accounts VALUES (1);\n\
              -- migrate:allow mixed-ddl-and-data";
    let err = c.query_one("SELECT migrate.apply('2_ledger', $1, 'DROP TABLE ledger;')", &[&up]).unwrap_err();
    let (code, message, detail, hint) = db_error(&err);
    assert_eq!(code, "23505", "the original SQLSTATE reaches the client");
    assert!(message.starts_with("statement 3/3 (line 4) of up SQL of version \"2_ledger\" failed: duplicate key"), "{message}");
    assert!(detail.contains("Statement: INSERT INTO accounts VALUES (1)"), "{detail}");
    assert!(hint.contains("Nothing was applied"), "{hint}");

    // The same session is alive and sees nothing of the migration.
    let ledger: bool = c.query_one("SELECT to_regclass('ledger') IS NOT NULL", &[]).unwrap().get(0);
    let balance: i64 = c
        .query_one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'balance'", &[])
        .unwrap()
        .get(0);
    let recorded: i64 = c.query_one("SELECT count(*) FROM migrate.migrations", &[]).unwrap().get(0);
    assert!(!ledger);
    assert_eq!(balance, 0);
    assert_eq!(recorded, 0);

    // Fixed, it applies.
    let fixed = "CREATE TABLE ledger (id int);\nALTER TABLE accounts ADD COLUMN balance numeric;";
    let state: String = c.query_one("SELECT migrate.apply('2_ledger', $1, 'DROP TABLE ledger; ALTER TABLE accounts DROP COLUMN balance;')", &[&fixed]).unwrap().get(0);
    assert_eq!(state, "applied");
}

#[test]
fn rollback_and_rollback_to_are_recorded_and_all_or_nothing() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    c.batch_execute(
        "SELECT migrate.apply('1', 'CREATE TABLE a (i int);', 'DROP TABLE a;');
         SELECT migrate.apply('2', 'ALTER TABLE a ADD COLUMN j int;', 'ALTER TABLE a DROP COLUMN j;');
         SELECT migrate.apply('3', 'ALTER TABLE a ADD COLUMN k int;', 'ALTER TABLE a DROP COLUMN k; SELECT 1/0;');",
    )
    .unwrap();

    // Version 3's down fails: rollback_to('1') must leave 2 and 3 applied and the columns there.
    let err = c.query("SELECT * FROM migrate.rollback_to('1')", &[]).unwrap_err();
    let (code, message, ..) = db_error(&err);
    assert_eq!(code, "22012");
    assert!(message.contains("statement 2/2 (line 1) of down SQL of version \"3\" failed: division by zero"), "{message}");
    let states: Vec<(String, String)> = c
        .query("SELECT version, state FROM migrate.status()", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(states, vec![("1".into(), "applied".into()), ("2".into(), "applied".into()), ("3".into(), "applied".into())]);
    let cols: i64 = c.query_one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'a'", &[]).unwrap().get(0);
    assert_eq!(cols, 3);

    // Rolling back 2 while 3 is applied is refused with a HINT.
    let err = c.query_one("SELECT migrate.rollback('2')", &[]).unwrap_err();
    let (code, message, detail, hint) = db_error(&err);
    assert_eq!(code, "55000");
    assert_eq!(message, "version \"2\" is not the latest applied version");
    assert_eq!(detail, "Applied after it: 3.");
    assert!(hint.contains("rollback_to"), "{hint}");

    // Nothing was rolled back by the failed attempts.
    let rolled: i64 = c.query_one("SELECT count(*) FROM migrate.events WHERE action = 'rollback'", &[]).unwrap().get(0);
    assert_eq!(rolled, 0);
}

#[test]
fn rollback_to_runs_newest_first_and_commits_together() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    c.batch_execute(
        "SELECT migrate.apply('1', 'CREATE TABLE a (i int PRIMARY KEY);', 'DROP TABLE a;');
         SELECT migrate.apply('2', 'CREATE TABLE b (i int REFERENCES a DEFERRABLE);', 'DROP TABLE b;');
         SELECT migrate.apply('3', 'CREATE TABLE c (i int);', 'DROP TABLE c;');",
    )
    .unwrap();
    let done: Vec<String> = c
        .query("SELECT version FROM migrate.rollback_to('1')", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(done, vec!["3", "2"]);
    let left: Vec<String> = c
        .query("SELECT relname::text FROM pg_class WHERE relname IN ('a','b','c') ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec!["a"]);
    let actions: Vec<String> = c
        .query("SELECT version || ':' || action FROM migrate.events ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actions, vec!["1:apply", "2:apply", "3:apply", "3:rollback", "2:rollback"]);
}

#[test]
fn bad_input_gives_clear_errors_and_changes_nothing() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    let huge = format!("SELECT 1; -- {}", "x".repeat(10 * 1024 * 1024));
    let long_version = "9".repeat(5000);
    let cases: Vec<(&str, Vec<Option<String>>, &str, &str)> = vec![
        ("SELECT migrate.apply($1, $2)", vec![None, Some("SELECT 1".into())], "22004", "migration version must not be NULL"),
        ("SELECT migrate.apply($1, $2)", vec![Some("".into()), Some("SELECT 1".into())], "22023", "migration version must not be empty"),
        ("SELECT migrate.apply($1, $2)", vec![Some("1".into()), None], "22004", "up SQL of version \"1\" must not be NULL"),
        ("SELECT migrate.apply($1, $2)", vec![Some("1".into()), Some("".into())], "22023", "up SQL of version \"1\" is empty"),
        ("SELECT migrate.apply($1, $2)", vec![Some("1'; DROP TABLE x; --".into()), Some("SELECT 1".into())], "22023", "migration version \"1'; DROP TABLE x; --\" contains the character '\\''"),
        ("SELECT migrate.apply($1, $2)", vec![Some("v\n1".into()), Some("SELECT 1".into())], "22023", "migration version \"v\\n1\" contains the character '\\n'"),
        ("SELECT migrate.apply($1, $2)", vec![Some(long_version), Some("SELECT 1".into())], "22023", "migration version is too long (5000 characters)"),
        ("SELECT migrate.apply($1, $2)", vec![Some("1".into()), Some(huge)], "54000", "up SQL of version \"1\" is too large (10485773 bytes)"),
        ("SELECT migrate.apply($1, $2)", vec![Some("1".into()), Some("CREATE TABLE t (i int);\n  ALTER TABL t ADD x int;".into())], "42601", "syntax error at or near \"TABL\" in up SQL of version \"1\" at line 2, column 9"),
        ("SELECT migrate.apply($1, $2)", vec![Some("1".into()), Some("-- only a comment".into())], "22023", "up SQL of version \"1\" contains no statements"),
        ("SELECT migrate.rollback($1)", vec![Some("nope".into())], "42704", "unknown migration version \"nope\""),
        ("SELECT migrate.rollback()", vec![], "P0002", "there is no applied migration to roll back"),
        ("SELECT * FROM migrate.rollback_to($1)", vec![None], "22004", "migration version must not be NULL"),
        ("SELECT migrate.repair($1, $2)", vec![Some("nope".into()), Some("SELECT 1".into())], "42704", "unknown migration version \"nope\""),
    ];
    for (sql, args, code, message) in cases {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn postgres::types::ToSql + Sync)).collect();
        let err = c.query(sql, &params).expect_err(sql);
        let (got_code, got_message, ..) = db_error(&err);
        assert_eq!((got_code.as_str(), got_message.as_str()), (code, message), "{sql}");
        // The backend survived and nothing was recorded or created.
        let (n, t): (i64, bool) = c
            .query_one("SELECT (SELECT count(*) FROM migrate.migrations), to_regclass('t') IS NOT NULL", &[])
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
        assert_eq!((n, t), (0, false), "{sql}");
    }

    // Rollback without down SQL, with a HINT.
    c.execute("SELECT migrate.apply('1', 'CREATE TABLE t (i int);')", &[]).unwrap();
    let err = c.query_one("SELECT migrate.rollback()", &[]).unwrap_err();
    let (code, message, _, hint) = db_error(&err);
    assert_eq!(code, "55000");
    assert_eq!(message, "cannot roll back: no down SQL recorded for \"1\"");
    assert!(hint.contains("new forward migration"), "{hint}");
    let state: String = c.query_one("SELECT state FROM migrate.status()", &[]).unwrap().get(0);
    assert_eq!(state, "applied");
}

#[test]
fn checksum_mismatch_names_both_checksums() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    c.execute("SELECT migrate.apply('1', 'CREATE TABLE t (i int);')", &[]).unwrap();
    let err = c.query_one("SELECT migrate.apply('1', 'CREATE TABLE t (i bigint);')", &[]).unwrap_err();
    let (code, message, detail, hint) = db_error(&err);
    let old: String = c.query_one("SELECT migrate.checksum('CREATE TABLE t (i int);')", &[]).unwrap().get(0);
    let new: String = c.query_one("SELECT migrate.checksum('CREATE TABLE t (i bigint);')", &[]).unwrap().get(0);
    assert_eq!(code, "55000");
    assert_eq!(message, "version \"1\" is already applied with a different checksum");
    assert_eq!(detail, format!("Recorded checksum {old}, checksum of the given up SQL {new}."));
    assert!(hint.contains("migrate.repair('1'"), "{hint}");
}

#[test]
fn statement_timeout_stops_a_long_statement() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    c.batch_execute("SET migrate.statement_timeout = '300ms'").unwrap();
    let started = std::time::Instant::now();
    let err = c
        .query_one("SELECT migrate.apply('1', 'CREATE TABLE t (i int); SELECT pg_sleep(30);')", &[])
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "cancelled long before pg_sleep(30) ended");
    let (code, message, ..) = db_error(&err);
    assert_eq!(code, "57014");
    assert_eq!(message, "statement 2/2 (line 1) of up SQL of version \"1\" exceeded migrate.statement_timeout (300 ms)");
    let n: i64 = c.query_one("SELECT count(*) FROM migrate.migrations", &[]).unwrap().get(0);
    assert_eq!(n, 0);
    // The session is usable and the first statement's table is gone.
    let t: bool = c.query_one("SELECT to_regclass('t') IS NULL", &[]).unwrap().get(0);
    assert!(t);
}
