//! Background jobs: non-transactional statements run by workers as top-level statements.

use pg_migrate_integration::{db_error, kill_worker, one, wait_until, Client, Cluster};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;


fn big_table(pg: &Cluster, rows: i64) {
    pg.connect("app")
        .batch_execute(&format!(
            "CREATE TABLE big (id bigserial PRIMARY KEY, val int NOT NULL, note text);
             INSERT INTO big (val, note) SELECT g % 10000, 'row ' || g FROM generate_series(1, {rows}) g;
             ANALYZE big;"
        ))
        .unwrap();
}

#[test]
fn concurrent_index_on_a_busy_table_ends_valid_and_writers_are_never_blocked() {
    let pg = Cluster::start();
    pg.create_db("app");
    big_table(&pg, 1_000_000);

    // Writers that would fail if they ever waited longer than a lock_timeout for a lock.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (stop, writes) = (stop.clone(), writes.clone());
            let mut c = pg.connect("app");
            std::thread::spawn(move || {
                c.batch_execute("SET lock_timeout = '250ms'").unwrap();
                let mut i: i64 = w;
                while !stop.load(Ordering::Relaxed) {
                    c.execute("INSERT INTO big (val, note) VALUES ($1, 'writer')", &[&((i % 1000) as i32)]).unwrap();
                    c.execute("UPDATE big SET note = 'updated' WHERE id = $1", &[&(i * 7 % 1_000_000 + 1)]).unwrap();
                    writes.fetch_add(2, Ordering::Relaxed);
                    i += 2;
                }
            })
        })
        .collect();

    let mut c = pg.connect("app");
    let state: String = one(
        &mut c,
        "SELECT migrate.apply('20240301_idx', 'ALTER TABLE big ADD COLUMN flag boolean;\nCREATE INDEX CONCURRENTLY big_val_idx ON big (val);', 'DROP INDEX CONCURRENTLY big_val_idx;\nALTER TABLE big DROP COLUMN flag;')",
    );
    assert_eq!(state, "applying");
    let job: i64 = one(&mut c, "SELECT job_ids[1] FROM migrate.migrations WHERE version = '20240301_idx'");

    // psql, the way a user follows a job: CALL migrate.wait() must not deadlock with the CIC.
    let (ok, out) = pg.psql("app", &["-c", &format!("CALL migrate.wait({job})")]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("job {job} is done")), "{out}");

    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("no writer statement failed or waited past its lock_timeout");
    }
    assert!(writes.load(Ordering::Relaxed) > 0);

    let valid: bool = one(&mut c, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_val_idx'::regclass");
    assert!(valid);
    let state: String = one(&mut c, "SELECT state FROM migrate.status() WHERE version = '20240301_idx'");
    assert_eq!(state, "applied");
    let actions: String = one(&mut c, "SELECT string_agg(action || ':' || to_state, ',' ORDER BY id) FROM migrate.events");
    assert_eq!(actions, "apply:applying,apply_done:applied");
    let (job_state, done, total): (String, i32, i32) = c
        .query_one("SELECT state, steps_done, steps_total FROM migrate.jobs WHERE job = $1", &[&job])
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!((job_state.as_str(), done, total), ("done", 1, 1));

    // And back: the down SQL drops the index concurrently in a job too.
    let state: String = one(&mut c, "SELECT migrate.rollback()");
    assert_eq!(state, "rolling_back");
    let job: i64 = one(&mut c, "SELECT max(job) FROM migrate.jobs");
    c.batch_execute(&format!("CALL migrate.wait({job})")).unwrap();
    let gone: bool = one(&mut c, "SELECT to_regclass('big_val_idx') IS NULL AND NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'big' AND column_name = 'flag')");
    assert!(gone);
    let state: String = one(&mut c, "SELECT state FROM migrate.status()");
    assert_eq!(state, "rolled_back");
}

#[test]
fn a_failing_unique_index_build_fails_the_job_and_leaves_no_invalid_index() {
    let pg = Cluster::start();
    pg.create_db("app");
    big_table(&pg, 50_000);
    let mut c = pg.connect("app");
    let state: String = one(&mut c, "SELECT migrate.apply('2_unique', 'CREATE UNIQUE INDEX CONCURRENTLY big_val_key ON big (val);')");
    assert_eq!(state, "applying");
    let job: i64 = one(&mut c, "SELECT max(job) FROM migrate.jobs");
    let err = c.batch_execute(&format!("CALL migrate.wait({job})")).unwrap_err();
    let (code, message, _, hint) = db_error(&err);
    assert_eq!(code, "23505", "the failed statement's own SQLSTATE");
    assert!(message.contains("could not create unique index \"big_val_key\""), "{message}");
    assert!(hint.contains("apply the version again to resume"), "{hint}");
    let kept: String = one(&mut c, &format!("SELECT last_sqlstate FROM migrate.jobs WHERE job = {job}"));
    assert_eq!(kept, "23505");
    let event: String = one(&mut c, "SELECT detail->>'sqlstate' FROM migrate.events WHERE action = 'apply_failed' ORDER BY id DESC LIMIT 1");
    assert_eq!(event, "23505", "the apply_failed event keeps it too");

    let (job_state, error): (String, String) = c
        .query_one("SELECT state, last_error FROM migrate.jobs WHERE job = $1", &[&job])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(job_state, "failed");
    assert!(error.contains("statement 1/1 (line 1) of up SQL of version \"2_unique\" failed: could not create unique index"), "{error}");
    let state: String = one(&mut c, "SELECT state FROM migrate.status()");
    assert_eq!(state, "failed");
    let event_error: String = one(&mut c, "SELECT error FROM migrate.events WHERE action = 'apply_failed'");
    assert!(event_error.contains("could not create unique index"), "{event_error}");
    let leftovers: i64 = one(&mut c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'big_val_key%'");
    assert_eq!(leftovers, 0, "no INVALID index is left behind");
}

#[test]
fn a_failed_attempt_is_in_the_event_log_after_the_rollback() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    let err = c
        .query_one("SELECT migrate.apply('7_broken', 'CREATE TABLE t (i int);\nALTER TABLE nope ADD COLUMN x int;')", &[])
        .unwrap_err();
    assert_eq!(db_error(&err).0, "42P01");
    assert!(pg.wait_for("app", 20, "SELECT EXISTS (SELECT 1 FROM migrate.events WHERE version = '7_broken')"));
    let (action, error, statement, line, sqlstate): (String, String, i64, i64, String) = c
        .query_one(
            "SELECT action, error, (detail->>'statement')::bigint, (detail->>'line')::bigint, detail->>'sqlstate' FROM migrate.events WHERE version = '7_broken'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .unwrap();
    assert_eq!((action.as_str(), statement, line, sqlstate.as_str()), ("apply_failed", 2, 2, "42P01"));
    assert!(error.contains("relation \"nope\" does not exist"), "{error}");
    // The attempt itself changed nothing.
    let (t, n): (bool, i64) = c
        .query_one("SELECT to_regclass('t') IS NULL, (SELECT count(*) FROM migrate.migrations)", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(t);
    assert_eq!(n, 0);
}

/// Holds a transaction open so that CREATE INDEX CONCURRENTLY waits for it (its snapshot is
/// older than the index build's).
fn hold_old_snapshot(pg: &Cluster) -> Client {
    let mut old = pg.connect("app");
    old.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class;").unwrap();
    old
}

fn worker_pid(pg: &Cluster, job: i64) -> i32 {
    let mut c = pg.connect("app");
    assert!(wait_until(20, || {
        c.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_migrate job worker' AND query LIKE 'CREATE INDEX%' AND wait_event_type = 'Lock'",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0)
            == 1
    }), "the CIC waits for the old snapshot");
    c.query_one("SELECT worker_pid FROM migrate.jobs WHERE job = $1", &[&job]).unwrap().get(0)
}

#[test]
fn a_killed_worker_is_resumed_and_the_job_finishes() {
    let pg = Cluster::start();
    pg.create_db("app");
    big_table(&pg, 20_000);
    let mut c = pg.connect("app");
    let mut old = hold_old_snapshot(&pg);
    one::<String>(&mut c, "SELECT migrate.apply('3_idx', 'CREATE INDEX CONCURRENTLY big_note_idx ON big (note);\nCREATE INDEX CONCURRENTLY big_val_idx ON big (val);')");
    let job: i64 = one(&mut c, "SELECT max(job) FROM migrate.jobs");
    let pid = worker_pid(&pg, job);
    kill_worker(&mut c, job, pid);
    old.batch_execute("COMMIT").unwrap();

    // Without shared_preload_libraries, resume_jobs() (or the next migrate.* call) resumes it.
    let resumed: i64 = one(&mut c, "SELECT migrate.resume_jobs()");
    assert_eq!(resumed, 1);
    c.batch_execute(&format!("CALL migrate.wait({job})")).unwrap();
    let (state, attempts): (String, i32) = c
        .query_one("SELECT state, attempts FROM migrate.jobs WHERE job = $1", &[&job])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("done", 2));
    let valid: i64 = one(&mut c, "SELECT count(*) FROM pg_index WHERE indrelid = 'big'::regclass AND indisvalid AND indexrelid::regclass::text IN ('big_note_idx', 'big_val_idx')");
    assert_eq!(valid, 2);
    let invalid: i64 = one(&mut c, "SELECT count(*) FROM pg_index WHERE indrelid = 'big'::regclass AND NOT indisvalid");
    assert_eq!(invalid, 0);
    let state: String = one(&mut c, "SELECT state FROM migrate.status()");
    assert_eq!(state, "applied");
}

#[test]
fn after_an_immediate_shutdown_the_launcher_resumes_the_job() {
    let pg = Cluster::start_with(&["shared_preload_libraries = 'pg_migrate'", "migrate.database_name = 'app'"]);
    pg.create_db("app");
    big_table(&pg, 20_000);
    let mut c = pg.connect("app");
    let old = hold_old_snapshot(&pg);
    one::<String>(&mut c, "SELECT migrate.apply('4_idx', 'CREATE INDEX CONCURRENTLY big_note_idx ON big (note);')");
    let job: i64 = one(&mut c, "SELECT max(job) FROM migrate.jobs");
    worker_pid(&pg, job);
    // The old transaction is still open: the build cannot have finished.
    pg.restart("immediate");
    drop((c, old));

    // Nobody calls pg_migrate: the launcher finds the job and a new worker finishes it.
    assert!(pg.wait_for("app", 60, &format!("SELECT state = 'done' FROM migrate.jobs WHERE job = {job}")));
    let mut c = pg.connect("app");
    let (valid, attempts): (bool, i32) = c
        .query_one(
            "SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_note_idx'::regclass), (SELECT attempts FROM migrate.jobs WHERE job = $1)",
            &[&job],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(valid);
    assert_eq!(attempts, 2);
    let state: String = one(&mut c, "SELECT state FROM migrate.status()");
    assert_eq!(state, "applied");
}

#[test]
fn fast_shutdown_interrupts_the_worker_and_the_next_call_resumes_it() {
    let pg = Cluster::start();
    pg.create_db("app");
    big_table(&pg, 20_000);
    let mut c = pg.connect("app");
    let old = hold_old_snapshot(&pg);
    one::<String>(&mut c, "SELECT migrate.apply('5_idx', 'CREATE INDEX CONCURRENTLY big_note_idx ON big (note);')");
    let job: i64 = one(&mut c, "SELECT max(job) FROM migrate.jobs");
    worker_pid(&pg, job);
    // The old transaction is still open, so the build is still waiting. pg_ctl -t 60: a worker
    // that ignored SIGTERM would make this fail.
    pg.restart("fast");
    drop((c, old));

    let mut c = pg.connect("app");
    // The next migrate.* call resumes it.
    let err = c.query_one("SELECT migrate.apply('6_next', 'SELECT 1')", &[]).unwrap_err();
    let (code, message, _, hint) = db_error(&err);
    assert_eq!(code, "55006");
    assert!(message.contains("\"5_idx\" is still applying in background job"), "{message}");
    assert!(hint.contains(&format!("CALL migrate.wait({job})")), "{hint}");
    c.batch_execute(&format!("CALL migrate.wait({job})")).unwrap();
    let valid: bool = one(&mut c, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_note_idx'::regclass");
    assert!(valid);
    let state: String = one(&mut c, "SELECT migrate.apply('6_next', 'SELECT 1')");
    assert_eq!(state, "applied");
}

#[test]
fn cancel_interrupts_the_statement_and_drops_the_half_built_index() {
    let pg = Cluster::start();
    pg.create_db("app");
    big_table(&pg, 20_000);
    let mut c = pg.connect("app");
    let mut old = hold_old_snapshot(&pg);
    one::<String>(&mut c, "SELECT migrate.apply('8_idx', 'CREATE INDEX CONCURRENTLY big_note_idx ON big (note);')");
    let job: i64 = one(&mut c, "SELECT max(job) FROM migrate.jobs");
    worker_pid(&pg, job);
    let state: String = c.query_one("SELECT migrate.cancel($1)", &[&job]).unwrap().get(0);
    assert_eq!(state, "cancelled");
    assert!(pg.wait_for("app", 20, &format!("SELECT NOT worker_alive FROM migrate.jobs WHERE job = {job}")));
    old.batch_execute("COMMIT").unwrap();
    let leftovers: i64 = one(&mut c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'big_note_idx%'");
    assert_eq!(leftovers, 0);
    let (version_state, action): (String, String) = c
        .query_one("SELECT (SELECT state FROM migrate.status()), (SELECT action FROM migrate.events ORDER BY id DESC LIMIT 1)", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((version_state.as_str(), action.as_str()), ("failed", "cancelled"));
    // The way back: a failed version can be rolled back (no down SQL here) or applied again.
    let state: String = one(&mut c, "SELECT migrate.apply('8_idx', 'CREATE INDEX CONCURRENTLY big_note_idx ON big (note);')");
    assert_eq!(state, "applying");
    c.batch_execute(&format!("CALL migrate.wait({job})")).unwrap();
    let state: String = one(&mut c, "SELECT state FROM migrate.status()");
    assert_eq!(state, "applied");
}

#[test]
fn jobs_run_as_their_owner_and_nologin_roles_are_refused_up_front() {
    let pg = Cluster::start();
    pg.create_db("app");
    big_table(&pg, 1_000);
    let mut admin = pg.connect("app");
    admin
        .batch_execute(
            "CREATE ROLE intruder LOGIN; CREATE ROLE ghost NOLOGIN;
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA migrate TO intruder, ghost;
             GRANT ALL ON ALL PROCEDURES IN SCHEMA migrate TO intruder;
             GRANT ghost TO intruder;",
        )
        .unwrap();

    let mut i = pg.connect_as("app", "intruder");
    let job: i64 = one(&mut i, "SELECT migrate.run_async('CREATE INDEX CONCURRENTLY stolen_idx ON big (val)')");
    let err = i.batch_execute(&format!("CALL migrate.wait({job})")).unwrap_err();
    assert!(db_error(&err).1.contains("must be owner of table big"), "{}", db_error(&err).1);
    let (owner, exists): (String, bool) = admin
        .query_one("SELECT owner::text, to_regclass('stolen_idx') IS NOT NULL FROM migrate.jobs WHERE job = $1", &[&job])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((owner.as_str(), exists), ("intruder", false));

    // A role without LOGIN gets a clear error when the job is queued, not a dead worker.
    i.batch_execute("SET ROLE ghost").unwrap();
    let err = i.query_one("SELECT migrate.run_async('VACUUM big')", &[]).unwrap_err();
    let (code, message, _, hint) = db_error(&err);
    assert_eq!(code, "42501");
    assert_eq!(message, "role \"ghost\" cannot log in, so a pg_migrate worker cannot run its job");
    assert!(hint.contains("ALTER ROLE \"ghost\" LOGIN"), "{hint}");
    let queued: i64 = one(&mut admin, "SELECT count(*) FROM migrate.all_jobs");
    assert_eq!(queued, 1);

    // Each role sees only its own jobs.
    let mut other = pg.connect_as("app", "intruder");
    other.batch_execute("RESET ROLE").unwrap();
    admin.batch_execute("CREATE ROLE bystander LOGIN").unwrap();
    let mut b = pg.connect_as("app", "bystander");
    let seen: i64 = one(&mut b, "SELECT count(*) FROM migrate.jobs");
    assert_eq!(seen, 0);
}

#[test]
fn no_free_worker_slot_is_a_clear_error_and_nothing_is_applied() {
    // The logical replication launcher takes one of the two slots, a running job the other.
    let pg = Cluster::start_with(&["max_worker_processes = 2"]);
    pg.create_db("app");
    big_table(&pg, 1_000);
    let mut c = pg.connect("app");
    let old = hold_old_snapshot(&pg);
    one::<String>(&mut c, "SELECT migrate.apply('9_idx', 'CREATE INDEX CONCURRENTLY big_note_idx ON big (note);')");
    let job: i64 = one(&mut c, "SELECT max(job) FROM migrate.jobs");
    worker_pid(&pg, job);
    let err = c.query_one("SELECT migrate.run_async('VACUUM big')", &[]).unwrap_err();
    let (code, message, detail, hint) = db_error(&err);
    assert_eq!(code, "53400");
    assert!(message.contains("no background worker slot is free"), "{message}");
    assert!(detail.contains("max_worker_processes is 2"), "{detail}");
    assert!(hint.contains("Raise max_worker_processes"), "{hint}");
    let jobs: i64 = one(&mut c, "SELECT count(*) FROM migrate.all_jobs");
    assert_eq!(jobs, 1);
    drop(old);
}

#[test]
fn max_workers_queues_extra_jobs_until_a_worker_is_free() {
    let pg = Cluster::start_with(&["migrate.max_workers = 1"]);
    pg.create_db("app");
    big_table(&pg, 1_000);
    let (mut c, notices) = pg.connect_with_notices("app", "postgres");
    let mut old = hold_old_snapshot(&pg);
    let first: i64 = one(&mut c, "SELECT migrate.run_async('CREATE INDEX CONCURRENTLY big_note_idx ON big (note)')");
    worker_pid(&pg, first);
    let second: i64 = one(&mut c, "SELECT migrate.run_async('CREATE INDEX CONCURRENTLY big_val_idx ON big (val)')");
    assert!(
        notices.lock().unwrap().iter().any(|n| n.contains(&format!("job {second} is queued: all migrate.max_workers (1) workers are busy"))),
        "{:?}",
        notices.lock().unwrap()
    );
    let state: String = c.query_one("SELECT state FROM migrate.jobs WHERE job = $1", &[&second]).unwrap().get(0);
    assert_eq!(state, "queued");
    old.batch_execute("COMMIT").unwrap();
    // When the first worker ends it starts the queued job; nobody else calls pg_migrate.
    assert!(pg.wait_for("app", 60, &format!("SELECT state = 'done' FROM migrate.jobs WHERE job = {second}")));
    let valid: i64 = one(&mut c, "SELECT count(*) FROM pg_index WHERE indrelid = 'big'::regclass AND indisvalid AND indexrelid::regclass::text IN ('big_note_idx', 'big_val_idx')");
    assert_eq!(valid, 2);
}

#[test]
fn a_job_uses_the_callers_search_path_and_settings_and_a_failed_rollback_resumes() {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut c = pg.connect("app");
    c.batch_execute("CREATE SCHEMA app; SET search_path = app, public;").unwrap();
    let state: String = one(
        &mut c,
        "SELECT migrate.apply('1_things', 'CREATE TABLE things (id int, v int);\nINSERT INTO things SELECT g, g FROM generate_series(1, 1000) g;\nCREATE INDEX CONCURRENTLY things_v_idx ON things (v);',
                              'DROP INDEX CONCURRENTLY things_v_idx;\nDROP TABLE things;')",
    );
    assert_eq!(state, "applying");
    let job: i64 = one(&mut c, "SELECT max(job) FROM migrate.jobs");
    c.batch_execute(&format!("CALL migrate.wait({job})")).unwrap();
    let schema: String = one(&mut c, "SELECT schemaname::text FROM pg_indexes WHERE indexname = 'things_v_idx'");
    assert_eq!(schema, "app");

    // A rollback whose job fails part-way: a view the down SQL does not know about blocks the
    // DROP TABLE after the index was dropped.
    c.batch_execute("CREATE VIEW app.things_view AS SELECT * FROM app.things").unwrap();
    let state: String = one(&mut c, "SELECT migrate.rollback()");
    assert_eq!(state, "rolling_back");
    let job: i64 = one(&mut c, "SELECT max(job) FROM migrate.jobs");
    let err = c.batch_execute(&format!("CALL migrate.wait({job})")).unwrap_err();
    assert!(db_error(&err).1.contains("cannot drop table things because other objects depend on it"), "{}", db_error(&err).1);
    let (version_state, steps_done): (String, i32) = c
        .query_one("SELECT (SELECT state FROM migrate.status()), (SELECT steps_done FROM migrate.jobs WHERE job = $1)", &[&job])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((version_state.as_str(), steps_done), ("failed", 1));

    // Applying it again is refused: part of the down SQL took effect.
    let up: String = one(&mut c, "SELECT up FROM migrate.migrations");
    let err = c.query_one("SELECT migrate.apply('1_things', $1)", &[&up]).unwrap_err();
    let (code, message, _, hint) = db_error(&err);
    assert_eq!(code, "55000");
    assert_eq!(message, "version \"1_things\" failed while it was being rolled back");
    assert!(hint.contains("migrate.rollback('1_things')"), "{hint}");

    // Rolling back again resumes the same job at the statement that failed.
    c.batch_execute("DROP VIEW app.things_view").unwrap();
    let state: String = one(&mut c, "SELECT migrate.rollback()");
    assert_eq!(state, "rolling_back");
    c.batch_execute(&format!("CALL migrate.wait({job})")).unwrap();
    let (state, gone, attempts): (String, bool, i32) = c
        .query_one(
            "SELECT (SELECT state FROM migrate.status()), to_regclass('app.things') IS NULL, (SELECT attempts FROM migrate.jobs WHERE job = $1)",
            &[&job],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!((state.as_str(), gone, attempts), ("rolled_back", true, 2));
}

#[test]
fn wait_version_waits_for_the_versions_job_and_fails_when_the_job_did() {
    let pg = Cluster::start();
    pg.create_db("app");
    big_table(&pg, 20_000);
    let (mut c, notices) = pg.connect_with_notices("app", "postgres");

    let (code, message, _, hint) = db_error(&c.batch_execute("CALL migrate.wait_version('0_nope')").unwrap_err());
    assert_eq!((code.as_str(), message.as_str()), ("42704", "pg_migrate: version \"0_nope\" is not known"));
    assert!(hint.contains("migrate.status()"), "{hint}");
    let (code, message, ..) = db_error(&c.batch_execute("BEGIN; CALL migrate.wait_version('0_nope')").unwrap_err());
    assert_eq!(code, "25001", "inside a transaction block it refuses before looking anything up");
    assert!(message.contains("wait_version()"), "the message names the procedure called: {message}");
    c.batch_execute("ROLLBACK").unwrap();

    // All in the caller's transaction: nothing to wait for.
    one::<String>(&mut c, "SELECT migrate.apply('1_plain', 'ALTER TABLE big ADD COLUMN flag boolean;')");
    c.batch_execute("CALL migrate.wait_version('1_plain')").unwrap();
    assert!(notices.lock().unwrap().iter().any(|n| n.contains("\"1_plain\" is applied; nothing to wait for")));

    // A job: the call returns when the version is applied.
    let state: String = one(&mut c, "SELECT migrate.apply('2_idx', 'CREATE INDEX CONCURRENTLY big_val_idx ON big (val);')");
    assert_eq!(state, "applying");
    notices.lock().unwrap().clear();
    c.batch_execute("CALL migrate.wait_version('2_idx')").unwrap();
    assert_eq!(one::<String>(&mut c, "SELECT state FROM migrate.status() WHERE version = '2_idx'"), "applied");
    let said = notices.lock().unwrap().join("\n");
    assert!(said.contains("is done") && !said.contains("nothing to wait for"), "{said}");

    // A cancelled job leaves the version failed: an error, so that a tool stops there.
    let mut old = hold_old_snapshot(&pg);
    one::<String>(&mut c, "SELECT migrate.apply('3_note_idx', 'CREATE INDEX CONCURRENTLY big_note_idx ON big (note);')");
    let job: i64 = one(&mut c, "SELECT max(job) FROM migrate.jobs");
    worker_pid(&pg, job);
    c.query_one("SELECT migrate.cancel($1)", &[&job]).unwrap();
    old.batch_execute("COMMIT").unwrap();
    let (code, message, _, hint) = db_error(&c.batch_execute("CALL migrate.wait_version('3_note_idx')").unwrap_err());
    assert_eq!(code, "55000");
    assert_eq!(message, format!("pg_migrate: version \"3_note_idx\" is failed: its job {job} was cancelled"));
    assert!(hint.contains("Apply the version again"), "{hint}");

    // A failed job: the job's error, as migrate.wait() reports it.
    // Applying it again resumes the job, and waiting for it succeeds.
    one::<String>(&mut c, "SELECT migrate.apply('3_note_idx', 'CREATE INDEX CONCURRENTLY big_note_idx ON big (note);')");
    c.batch_execute("CALL migrate.wait_version('3_note_idx')").unwrap();
    assert_eq!(one::<String>(&mut c, "SELECT state FROM migrate.status() WHERE version = '3_note_idx'"), "applied");

    one::<String>(&mut c, "SELECT migrate.apply('4_unique', 'CREATE UNIQUE INDEX CONCURRENTLY big_val_key ON big (val);')");
    let (code, message, ..) = db_error(&c.batch_execute("CALL migrate.wait_version('4_unique')").unwrap_err());
    assert_eq!(code, "23505");
    assert!(message.contains("could not create unique index \"big_val_key\""), "{message}");

    // The jobs of the changes its up SQL made: here expand_column's backfill, which the version
    // itself does not wait for (apply returns 'applied').
    let state: String = one(
        &mut c,
        r#"SELECT migrate.apply('5_val_bigint', $$SELECT migrate.expand_column('big', 'val', new_type => 'bigint',
                                               backfill => '{"batch_size": 1000, "sleep_ms": 20}')$$)"#,
    );
    assert_eq!(state, "applied");
    c.batch_execute("CALL migrate.wait_version('5_val_bigint')").unwrap();
    let (phase, missing): (String, i64) = c
        .query_one(
            "SELECT (SELECT phase FROM migrate.changes WHERE version = '5_val_bigint'),
                    (SELECT count(*) FROM big WHERE val_new IS NULL)",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((phase.as_str(), missing), ("ready to contract", 0), "the backfill had ended when the call returned");
}
