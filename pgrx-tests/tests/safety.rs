//! Lint in front of apply, and plan's lock measurements, through a real client on committed
//! tables (a #[pg_test] transaction already holds every lock on the tables it creates).

use pg_migrate_integration::{db_error, Cluster};

fn setup(pg: &Cluster) -> postgres::Client {
    pg.create_db("app");
    let mut c = pg.connect("app");
    c.batch_execute(
        "CREATE TABLE users (id int PRIMARY KEY, email text, legacy text);
         INSERT INTO users SELECT g, 'u' || g, 'x' FROM generate_series(1, 1000) g;
         ALTER TABLE users ADD CONSTRAINT users_id_positive CHECK (id > 0) NOT VALID;",
    )
    .unwrap();
    c
}

#[test]
fn apply_refuses_error_findings_and_applies_allowed_ones() {
    let pg = Cluster::start();
    let mut c = setup(&pg);
    let up = "CREATE INDEX users_email ON users (email);\nALTER TABLE users DROP COLUMN legacy;";
    let err = c.query_one("SELECT migrate.apply('2_cleanup', $1)", &[&up]).unwrap_err();
    let (code, message, detail, hint) = db_error(&err);
    assert_eq!(code, "42P17");
    assert_eq!(message, "up SQL of version \"2_cleanup\" breaks lint rule index-not-concurrent at statement 1 (line 1) (and 1 more finding)");
    let lines: Vec<&str> = detail.lines().collect();
    assert_eq!(lines.len(), 2, "{detail}");
    assert!(lines[0].starts_with("statement 1 (line 1) index-not-concurrent: CREATE INDEX users_email on existing table users"), "{detail}");
    assert!(lines[1].starts_with("statement 2 (line 2) drop-column: DROP COLUMN legacy of existing table users"), "{detail}");
    assert!(hint.contains("migrate.create_index"), "{hint}");
    assert!(hint.ends_with("add the comment line -- migrate:allow index-not-concurrent, drop-column to the up SQL."), "{hint}");

    // Nothing ran, nothing was recorded.
    let (columns, versions): (i64, i64) = c
        .query_one(
            "SELECT (SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'legacy'),
                    (SELECT count(*) FROM migrate.migrations)",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((columns, versions), (1, 0));

    // Allowed: it runs, the accepted rules are recorded, warnings arrive as NOTICEs.
    let (mut c, notices) = pg.connect_with_notices("app", "postgres");
    let allowed = format!("-- migrate:allow index-not-concurrent, drop-column\n{up}");
    let state: String = c.query_one("SELECT migrate.apply('2_cleanup', $1)", &[&allowed]).unwrap().get(0);
    assert_eq!(state, "applied");
    let accepted: Vec<String> = c
        .query_one("SELECT lint_accepted FROM migrate.migrations WHERE version = '2_cleanup'", &[])
        .unwrap()
        .get(0);
    assert_eq!(accepted, vec!["drop-column", "index-not-concurrent"]);
    let notices = notices.lock().unwrap().clone();
    assert!(
        notices.iter().any(|n| n.contains("breaks lint rule(s) drop-column, index-not-concurrent with permission")),
        "{notices:?}"
    );
    let legacy: i64 = c
        .query_one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'legacy'", &[])
        .unwrap()
        .get(0);
    assert_eq!(legacy, 0);

    // A warning does not refuse; it is a NOTICE.
    let (mut c, notices) = pg.connect_with_notices("app", "postgres");
    c.query_one("SELECT migrate.apply('3_flags', 'ALTER TABLE users ADD COLUMN a text;\nALTER TABLE users ADD COLUMN b json;')", &[])
        .unwrap();
    let notices = notices.lock().unwrap().clone();
    assert!(notices.iter().any(|n| n.contains("statement-after-access-exclusive")), "{notices:?}");
    assert!(notices.iter().any(|n| n.contains("prefer-jsonb")), "{notices:?}");
    assert!(!notices.iter().any(|n| n.contains("missing-lock-timeout")), "apply sets lock_timeout itself: {notices:?}");
}

/// (relation, lock_mode, rewrites, note) rows of a plan.
fn plan(c: &mut postgres::Client, sql: &str) -> Vec<(Option<String>, Option<String>, Option<bool>, String)> {
    c.query("SELECT relation, lock_mode, rewrites, note FROM migrate.plan($1)", &[&sql])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn lock_of(rows: &[(Option<String>, Option<String>, Option<bool>, String)], relation: &str) -> (Option<String>, Option<bool>) {
    let row = rows
        .iter()
        .find(|r| r.0.as_deref() == Some(relation))
        .unwrap_or_else(|| panic!("no row for {relation}: {rows:?}"));
    (row.1.clone(), row.2)
}

#[test]
fn plan_measures_the_locks_each_statement_takes() {
    let pg = Cluster::start();
    let mut c = setup(&pg);
    let s = |m: &str| Some(m.to_string());

    assert_eq!(lock_of(&plan(&mut c, "CREATE INDEX users_email ON users (email)"), "public.users"), (s("ShareLock"), Some(false)));
    assert_eq!(lock_of(&plan(&mut c, "ALTER TABLE users ADD COLUMN x int"), "public.users"), (s("AccessExclusiveLock"), Some(false)));
    assert_eq!(lock_of(&plan(&mut c, "ALTER TABLE users ALTER COLUMN id TYPE bigint"), "public.users"), (s("AccessExclusiveLock"), Some(true)));
    assert_eq!(
        lock_of(&plan(&mut c, "ALTER TABLE users VALIDATE CONSTRAINT users_id_positive"), "public.users"),
        (s("ShareUpdateExclusiveLock"), Some(false))
    );
    let rows = plan(&mut c, "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()");
    assert_eq!(lock_of(&rows, "public.users"), (s("AccessExclusiveLock"), Some(true)), "a volatile default rewrites");
    assert_eq!(lock_of(&rows, "public.users_pkey").1, Some(true), "and rebuilds the indexes");

    // Inside the caller's transaction, plan leaves no lock and no change behind.
    let mut tx = c.transaction().unwrap();
    tx.query("SELECT * FROM migrate.plan('ALTER TABLE users ADD COLUMN y int')", &[]).unwrap();
    let (locks, columns): (i64, i64) = tx
        .query_one(
            "SELECT (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'users'::regclass),
                    (SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'y')",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((locks, columns), (0, 0));
    tx.rollback().unwrap();

    // Blocked by another session: plan gives up after migrate.lock_timeout and says so.
    let mut blocker = pg.connect("app");
    blocker.batch_execute("BEGIN; LOCK TABLE users IN ACCESS SHARE MODE;").unwrap();
    c.batch_execute("SET migrate.lock_timeout = '100ms'").unwrap();
    let started = std::time::Instant::now();
    let rows = plan(&mut c, "ALTER TABLE users ADD COLUMN z int;\nSELECT 1;");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].3.starts_with("failed: lock not granted within migrate.lock_timeout (100 ms)") && rows[0].3.ends_with("the 1 later statement(s) were not run"),
        "{}",
        rows[0].3
    );
    blocker.batch_execute("COMMIT").unwrap();
}
