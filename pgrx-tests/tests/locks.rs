//! Lock politeness: short lock_timeout per statement, retries with backoff, blockers named.

use pg_migrate_integration::{db_error, wait_until, Cluster};
use std::time::Duration;

fn setup(pg: &Cluster) {
    pg.create_db("app");
    pg.connect("app")
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY);
             INSERT INTO users SELECT generate_series(1, 1000);
             CREATE TABLE marks (n serial, at timestamptz DEFAULT clock_timestamp());",
        )
        .unwrap();
}

// The first statement marks when the migration ran; writing a row next to DDL is what lint's
// mixed-ddl-and-data rule refuses, so the migration allows it explicitly.
const UP: &str = "INSERT INTO marks DEFAULT VALUES;\nALTER TABLE users ADD COLUMN email text;\n-- migrate:allow mixed-ddl-and-data";

#[test]
fn apply_retries_until_the_blocker_lets_go() {
    let pg = Cluster::start();
    setup(&pg);

    // A reader holds ACCESS SHARE on users in an open transaction.
    let mut blocker = pg.connect("app");
    blocker.batch_execute("BEGIN; SELECT count(*) FROM users;").unwrap();
    let blocker_pid: i32 = blocker.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);

    let (mut c, notices) = pg.connect_with_notices("app", "postgres");
    let migration = std::thread::spawn(move || {
        c.batch_execute("SET migrate.lock_timeout = '100ms'; SET migrate.retry_backoff = '50ms'; SET migrate.lock_retries = 30;")
            .unwrap();
        let state: String = c.query_one("SELECT migrate.apply('1_email', $1)", &[&UP]).unwrap().get(0);
        let seen = notices.lock().unwrap().clone();
        (state, seen)
    });

    // Let it fail a few tries, then release the lock.
    let mut watcher = pg.connect("app");
    let mut saw_waiter = false;
    assert!(wait_until(10, || {
        let waiting: i64 = watcher
            .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'users'::regclass", &[])
            .unwrap()
            .get(0);
        saw_waiter |= waiting > 0;
        saw_waiter
    }));
    std::thread::sleep(Duration::from_millis(700));
    blocker.batch_execute("COMMIT").unwrap();

    let (state, notices) = migration.join().unwrap();
    assert_eq!(state, "applied");
    let retries: Vec<&String> = notices.iter().filter(|n| n.contains("lock not granted")).collect();
    assert!(retries.len() >= 2, "several tries were needed: {notices:?}");
    assert!(
        retries[0].contains("statement 2/2 (line 2) of up SQL of version \"1_email\"")
            && retries[0].contains(&format!("held by pid {blocker_pid}"))
            && retries[0].contains("AccessExclusiveLock on relation public.users"),
        "{}",
        retries[0]
    );

    let mut c = pg.connect("app");
    let marks: i64 = c.query_one("SELECT count(*) FROM marks", &[]).unwrap().get(0);
    assert_eq!(marks, 1, "statement 1 ran once and was not undone by the retries of statement 2");
    let email: i64 = c
        .query_one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email'", &[])
        .unwrap()
        .get(0);
    assert_eq!(email, 1);
}

#[test]
fn apply_gives_up_and_names_the_blocker() {
    let pg = Cluster::start();
    setup(&pg);
    let mut blocker = pg.connect("app");
    blocker.batch_execute("BEGIN; SELECT count(*) AS holding_users_forever FROM users;").unwrap();
    let blocker_pid: i32 = blocker.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);

    let mut c = pg.connect("app");
    c.batch_execute("SET migrate.lock_timeout = '50ms'; SET migrate.retry_backoff = '10ms'; SET migrate.lock_retries = 2;")
        .unwrap();
    let err = c.query_one("SELECT migrate.apply('1_email', $1)", &[&UP]).unwrap_err();
    let (code, message, detail, hint) = db_error(&err);
    assert_eq!(code, "55P03");
    assert_eq!(message, "statement 2/2 (line 2) of up SQL of version \"1_email\" could not get its lock after 3 tries");
    assert!(detail.contains(&format!("held by pid {blocker_pid} (role postgres, idle in transaction")), "{detail}");
    assert!(detail.contains("holds AccessShareLock): SELECT pg_backend_pid()"), "the blocker's last query is shown: {detail}");
    assert!(hint.contains("migrate.lock_retries"), "{hint}");

    // Nothing happened: no history, no row in marks, no column.
    let (n, marks): (i64, i64) = c
        .query_one("SELECT (SELECT count(*) FROM migrate.migrations), (SELECT count(*) FROM marks)", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((n, marks), (0, 0));
    blocker.batch_execute("COMMIT").unwrap();
}

#[test]
fn migration_lock_waits_do_not_outlast_lock_timeout_for_other_sessions() {
    // While a migration waits for ACCESS EXCLUSIVE, new readers queue behind it. With
    // pg_migrate's lock_timeout they are released after each try instead of stalling.
    let pg = Cluster::start();
    setup(&pg);
    let mut blocker = pg.connect("app");
    blocker.batch_execute("BEGIN; SELECT count(*) FROM users;").unwrap();

    let conn = pg.conn_string("app", "postgres");
    let migration = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&conn, postgres::NoTls).unwrap();
        c.batch_execute("SET migrate.lock_timeout = '100ms'; SET migrate.retry_backoff = '100ms'; SET migrate.lock_retries = 8;")
            .unwrap();
        c.query_one("SELECT migrate.apply('1_email', $1)", &[&UP]).map(|_| ())
    });

    let mut reader = pg.connect("app");
    reader.batch_execute("SET statement_timeout = '5s'").unwrap();
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        reader.query_one("SELECT count(*) FROM users", &[]).unwrap();
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(25));
    }
    blocker.batch_execute("COMMIT").unwrap();
    migration.join().unwrap().unwrap();
    // Not a timing assertion on pg_migrate's speed: a reader stuck behind an unbounded
    // ACCESS EXCLUSIVE wait would hit the 5 s statement_timeout above and fail the unwrap.
    assert!(worst < Duration::from_secs(5));
}
