//! Streaming replicas on real servers (a standby made with `pg_basebackup -R`, on its own port):
//! jobs survive a failover in the middle of their work, and a backfill waits for a replica whose
//! replay is behind (docs/ha.md).

use pg_migrate_integration::{exec, one, wait_until, Client, Cluster};

const PRIMARY: &[&str] = &[
    "shared_preload_libraries = 'pg_migrate'",
    "migrate.database_name = 'app'",
    "wal_level = replica",
    "max_wal_senders = 5",
    // pg_rewind needs it (the clusters have no data checksums)
    "wal_log_hints = on",
];

/// The standby's replay has reached everything the primary has written so far.
fn caught_up(primary: &mut Client, standby: &Cluster) -> bool {
    let lsn: String = one(primary, "SELECT pg_current_wal_lsn()::text");
    standby.wait_for("app", 60, &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"))
}

/// A session whose snapshot stays open: CREATE INDEX CONCURRENTLY waits for it to end.
fn hold_old_snapshot(pg: &Cluster) -> Client {
    let mut old = pg.connect("app");
    exec(&mut old, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM ev");
    old
}

/// A primary with a backfill (every row counts the updates it gets) and a concurrent index build
/// under way is stopped with `-m immediate`; its standby is promoted. Nobody calls pg_migrate
/// on the new primary: its launcher (which sat idle while the server was in recovery) resumes
/// both jobs. Every row ends updated exactly once, the index ends valid with no INVALID
/// leftover, the version ends applied.
#[test]
fn jobs_resume_on_the_promoted_standby_after_a_failover() {
    let primary = Cluster::start_with(PRIMARY);
    primary.create_db("app");
    let mut c = primary.connect("app");
    // scripts/failover-repeat.sh runs this test again and again with more rows.
    let rows: i64 = std::env::var("PG_MIGRATE_FAILOVER_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(40_000);
    exec(&mut c, &format!("CREATE TABLE ev (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, note text);
                  INSERT INTO ev SELECT g, 0, md5(g::text) FROM generate_series(1, {rows}) g;"));
    let standby = primary.standby(&[]);
    assert!(standby.wait_for("app", 120, &format!("SELECT count(*) = {rows} FROM ev")), "the standby replays the table");
    // On the standby, in recovery, the launcher is not running (it starts after promotion).
    let launchers: i64 = one(&mut standby.connect("app"), "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_migrate launcher'");
    assert_eq!(launchers, 0, "no launcher on a server in recovery");

    let backfill: i64 = one(&mut c, r#"SELECT migrate.backfill_start('ev', 'n = n + 1', options => '{"batch_size": 500, "sleep_ms": 200}')"#);
    let old = hold_old_snapshot(&primary);
    assert_eq!(one::<String>(&mut c, "SELECT migrate.apply('2_idx', 'CREATE INDEX CONCURRENTLY ev_note_idx ON ev (note);')"), "applying");
    let index_job: i64 = one(&mut c, "SELECT job FROM migrate.jobs WHERE version = '2_idx'");
    assert!(
        primary.wait_for("app", 60, &format!("SELECT rows_done >= 3000 FROM migrate.progress WHERE job = {backfill}")),
        "the backfill made progress on the primary"
    );
    assert!(primary.wait_for("app", 60, &format!("SELECT worker_alive FROM migrate.jobs WHERE job = {index_job}")));
    assert!(caught_up(&mut c, &standby));
    let done_before: i64 = one(&mut c, &format!("SELECT rows_done FROM migrate.progress WHERE job = {backfill}"));
    assert!(done_before < rows, "the backfill was still running at the failover");

    drop((c, old));
    primary.stop("immediate");
    standby.promote();

    assert!(
        standby.wait_for("app", 180 + (rows as u64) / 1000, &format!("SELECT count(*) = 2 FROM migrate.jobs WHERE job IN ({backfill}, {index_job}) AND state = 'done'")),
        "the promoted standby's launcher resumed both jobs and they finished"
    );
    let mut s = standby.connect("app");
    let counts: Vec<(i32, i64)> = s
        .query("SELECT n, count(*) FROM ev GROUP BY n ORDER BY n", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(counts, vec![(1, rows)], "every row updated exactly once across the failover");
    let indexes: Vec<String> = s
        .query("SELECT indexrelid::regclass || ' ' || indisvalid FROM pg_index WHERE indrelid = 'ev'::regclass ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes, vec!["ev_note_idx true", "ev_pkey true"], "the index is valid, no INVALID leftover");
    assert_eq!(one::<String>(&mut s, "SELECT state FROM migrate.status() WHERE version = '2_idx'"), "applied");
    let attempts: i32 = one(&mut s, &format!("SELECT attempts FROM migrate.jobs WHERE job = {backfill}"));
    assert!(attempts >= 2, "the backfill was resumed, not restarted from scratch: attempts {attempts}");
}

/// A standby whose replay is paused falls behind; the backfill's batches wait while its replay
/// lag is above max_replica_lag_ms, say so in migrate.progress, and go on once replay resumes.
#[test]
fn a_backfill_waits_while_a_replica_lags_and_goes_on_when_it_catches_up() {
    let primary = Cluster::start_with(PRIMARY);
    primary.create_db("app");
    let mut c = primary.connect("app");
    exec(&mut c, "CREATE TABLE ev (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, note text);
                  INSERT INTO ev SELECT g, 0, md5(g::text) FROM generate_series(1, 20000) g;");
    let standby = primary.standby(&["cluster_name = 'replica_one'"]);
    assert!(caught_up(&mut c, &standby));
    let mut s = standby.connect("app");
    exec(&mut s, "SELECT pg_wal_replay_pause()");
    // Something for the standby to be behind on: writes until pg_stat_replication shows the paused
    // standby's replay lag above a second (the lag is measured when the standby acknowledges WAL).
    assert!(
        wait_until(60, || {
            exec(&mut c, "UPDATE ev SET note = note || 'x' WHERE id <= 100");
            one::<bool>(&mut c, "SELECT coalesce(max(replay_lag) > interval '1 second', false) FROM pg_stat_replication")
        }),
        "pg_stat_replication shows the paused standby's growing replay lag"
    );
    let backfill: i64 = one(&mut c, r#"SELECT migrate.backfill_start('ev', 'n = n + 1', options => '{"batch_size": 200, "max_replica_lag_ms": 300}')"#);
    assert!(
        primary.wait_for("app", 60, &format!("SELECT waiting_for IS NOT NULL FROM migrate.progress WHERE job = {backfill}")),
        "the backfill says it waits"
    );
    let first: i64 = one(&mut c, &format!("SELECT rows_done FROM migrate.progress WHERE job = {backfill}"));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let later: i64 = one(&mut c, &format!("SELECT rows_done FROM migrate.progress WHERE job = {backfill}"));
    assert_eq!(first, later, "no batch ran while the replica was behind");
    assert!(later < 20000);
    let waiting: Option<String> = one(&mut c, &format!("SELECT waiting_for FROM migrate.progress WHERE job = {backfill}"));
    let waiting = waiting.expect("migrate.progress says what the backfill waits for");
    assert!(waiting.contains("replica_one"), "{waiting}");

    exec(&mut s, "SELECT pg_wal_replay_resume()");
    assert!(
        wait_until(120, || one::<String>(&mut c, &format!("SELECT state FROM migrate.jobs WHERE job = {backfill}")) == "done"),
        "the backfill goes on and finishes once replay resumes"
    );
    assert_eq!(one::<i64>(&mut c, "SELECT count(*) FROM ev WHERE n <> 1"), 0);
    let waiting: Option<String> = one(&mut c, &format!("SELECT waiting_for FROM migrate.progress WHERE job = {backfill}"));
    assert_eq!(waiting, None);
}

/// A long read on the standby while contract takes its short ACCESS EXCLUSIVE lock on the
/// primary: the lock is replayed on the standby, where it conflicts with the read. Replay waits
/// for the read up to max_standby_streaming_delay (here 2 s; 30 s by default), then cancels it
/// (40001, "conflict with recovery"); meanwhile the standby's replay lags. What docs/ha.md tells
/// operators to choose between.
#[test]
fn contract_on_the_primary_cancels_a_long_read_on_the_standby_after_max_standby_streaming_delay() {
    let primary = Cluster::start_with(PRIMARY);
    primary.create_db("app");
    let mut c = primary.connect("app");
    exec(&mut c, "CREATE TABLE ev (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, note text);
                  INSERT INTO ev SELECT g, 0, md5(g::text) FROM generate_series(1, 2000) g;");
    let standby = primary.standby(&["max_standby_streaming_delay = 2s"]);
    assert!(caught_up(&mut c, &standby));
    let change: i64 = one(&mut c, r#"SELECT migrate.expand_column('ev', 'n', new_type => 'bigint', backfill => '{"sleep_ms": 0}')"#);
    let backfill: i64 = one(&mut c, &format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {change}"));
    exec(&mut c, &format!("CALL migrate.wait({backfill}, '60 s')"));
    assert!(caught_up(&mut c, &standby));

    // The long read on the standby: it holds ACCESS SHARE on ev for 60 s.
    let reader_conn = standby.conn_string("app", "postgres");
    let reader = std::thread::spawn(move || {
        let mut r = postgres::Client::connect(&reader_conn, postgres::NoTls).unwrap();
        let started = std::time::Instant::now();
        let outcome = r.query_one("SELECT count(*), pg_sleep(60) FROM ev", &[]).map(|_| ());
        (outcome.err().and_then(|e| e.as_db_error().map(|d| d.code().code().to_string())), started.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    exec(&mut c, &format!("CALL migrate.wait({job}, '120 s')"));
    let (code, lasted) = reader.join().unwrap();
    assert_eq!(code.as_deref(), Some("40001"), "the standby's read is cancelled by the replayed lock");
    assert!(lasted < std::time::Duration::from_secs(50), "cancelled after about max_standby_streaming_delay, not at its end: {lasted:?}");
    assert!(caught_up(&mut c, &standby), "replay goes on after the cancel");
    assert_eq!(
        one::<String>(&mut standby.connect("app"), "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'ev'::regclass AND attname = 'n'"),
        "bigint",
        "the standby has the contracted column"
    );
}

/// A switchover: the primary is stopped cleanly (`-m fast`: its job workers are interrupted)
/// while a backfill runs, the standby is promoted and finishes the job, and the old primary
/// rejoins as a standby of the new one with `pg_rewind`. It replays the finished work; its
/// launcher stays idle while it is a standby.
#[test]
fn after_a_switchover_the_old_primary_rejoins_as_a_standby_and_replays_the_finished_job() {
    let primary = Cluster::start_with(PRIMARY);
    primary.create_db("app");
    let mut c = primary.connect("app");
    exec(&mut c, "CREATE TABLE ev (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, note text);
                  INSERT INTO ev SELECT g, 0, md5(g::text) FROM generate_series(1, 20000) g;");
    let standby = primary.standby(&[]);
    let backfill: i64 = one(&mut c, r#"SELECT migrate.backfill_start('ev', 'n = n + 1', options => '{"batch_size": 500, "sleep_ms": 200}')"#);
    assert!(primary.wait_for("app", 60, &format!("SELECT rows_done >= 2000 FROM migrate.progress WHERE job = {backfill}")));
    drop(c);
    primary.stop("fast");
    standby.promote();
    assert!(
        standby.wait_for("app", 180, &format!("SELECT state = 'done' FROM migrate.jobs WHERE job = {backfill}")),
        "the new primary finishes the backfill"
    );
    assert_eq!(one::<i64>(&mut standby.connect("app"), "SELECT count(*) FROM ev WHERE n <> 1"), 0);

    // The old primary rewinds to the new one's timeline and follows it.
    let source = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", standby.port);
    let out = pg_migrate_integration::pg_command("pg_rewind")
        .args(["--target-pgdata", primary.data_dir().to_str().unwrap(), "--source-server", &source])
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_rewind: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    primary.follow(&standby);
    primary.start_again();
    let mut new_primary = standby.connect("app");
    assert!(caught_up(&mut new_primary, &primary), "the old primary replays the new one's WAL");
    let mut old = primary.connect("app");
    assert!(one::<bool>(&mut old, "SELECT pg_is_in_recovery()"));
    assert_eq!(one::<i64>(&mut old, "SELECT count(*) FROM ev WHERE n <> 1"), 0);
    assert_eq!(one::<String>(&mut old, &format!("SELECT state FROM migrate.jobs WHERE job = {backfill}")), "done");
    let launchers: i64 = one(&mut old, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_migrate launcher'");
    assert_eq!(launchers, 0, "no launcher while it is a standby");
}

/// Logical replication does not carry DDL: lint warns about an ALTER TABLE of a published table,
/// and expand_column on one says in a NOTICE that the subscribers need the new column too.
#[test]
fn changes_to_a_published_table_are_reported() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    exec(&mut c, "CREATE TABLE shipments (id bigint PRIMARY KEY, carrier text); CREATE PUBLICATION shipments_pub FOR TABLE shipments;
                  CREATE TABLE staging (id bigint PRIMARY KEY, carrier text);");
    let found: Vec<String> = c
        .query("SELECT rule || ': ' || message FROM migrate.lint('ALTER TABLE shipments ADD COLUMN tracking text; ALTER TABLE staging ADD COLUMN tracking text') WHERE rule = 'ddl-on-published-table'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("ALTER TABLE shipments, which is in publication shipments_pub"), "{found:?}");
    let (mut n, notices) = pg.connect_with_notices("app", "postgres");
    let _: i64 = n.query_one("SELECT migrate.expand_column('shipments', 'carrier', new_name => 'carrier_code')", &[]).unwrap().get(0);
    let said = notices.lock().unwrap().join("\n");
    assert!(said.contains("is in publication shipments_pub") && said.contains("\"carrier_code\""), "{said}");
}

/// A replica that is gone (its walsender has ended) is not in pg_stat_replication: a backfill
/// that was waiting for it goes on, so that a standby that never comes back cannot stop
/// migrations forever (docs/ha.md).
#[test]
fn a_backfill_does_not_wait_for_a_replica_that_is_gone() {
    let primary = Cluster::start_with(PRIMARY);
    primary.create_db("app");
    let mut c = primary.connect("app");
    exec(&mut c, "CREATE TABLE ev (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, note text);
                  INSERT INTO ev SELECT g, 0, md5(g::text) FROM generate_series(1, 5000) g;");
    let standby = primary.standby(&["cluster_name = 'replica_gone'"]);
    assert!(caught_up(&mut c, &standby));
    exec(&mut standby.connect("app"), "SELECT pg_wal_replay_pause()");
    assert!(wait_until(60, || {
        exec(&mut c, "UPDATE ev SET note = note || 'x' WHERE id <= 100");
        one::<bool>(&mut c, "SELECT coalesce(max(replay_lag) > interval '1 second', false) FROM pg_stat_replication")
    }));
    let backfill: i64 = one(&mut c, r#"SELECT migrate.backfill_start('ev', 'n = n + 1', options => '{"batch_size": 200, "max_replica_lag_ms": 300}')"#);
    assert!(primary.wait_for("app", 60, &format!("SELECT coalesce(waiting_for LIKE '%replica_gone%', false) FROM migrate.progress WHERE job = {backfill}")));
    standby.stop("immediate");
    assert!(
        wait_until(120, || one::<String>(&mut c, &format!("SELECT state FROM migrate.jobs WHERE job = {backfill}")) == "done"),
        "the backfill finishes once the replica is gone"
    );
    assert_eq!(one::<i64>(&mut c, "SELECT count(*) FROM ev WHERE n <> 1"), 0);
}
