//! Issue 13, findings 5 and 7: a deployer can never act with anyone else's rights, nor stop
//! anyone else's work. The attacker, mallory, is a real non-superuser LOGIN role with EXECUTE on
//! the migrate functions and a schema of her own, connecting herself. Her victims are the
//! superuser and alice, another deployer. Each test performs the attack, checks by outcome that
//! it failed, and checks that the legitimate use still works.

use pg_migrate_integration::{db_error, kill_worker, one, pg_major, wait_until, Client, Cluster};

/// The advisory key space job workers of 0.2.0 held a lock in, and the key deployers took.
const OLD_JOB_KEY_SPACE: i32 = 1886218599;
const OLD_DEPLOY_KEY: i64 = 0x7067_6d69_6772_6174;

fn setup(pg: &Cluster) {
    pg.create_db("app");
    pg.connect("app")
        .batch_execute(
            "CREATE ROLE mallory LOGIN; CREATE ROLE alice LOGIN; CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
             CREATE SCHEMA mallory AUTHORIZATION mallory; CREATE SCHEMA alice AUTHORIZATION alice;
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA migrate TO mallory, alice;
             GRANT ALL ON ALL PROCEDURES IN SCHEMA migrate TO mallory, alice;
             CREATE TABLE public.admin_t (id bigint PRIMARY KEY, v int);
             INSERT INTO public.admin_t SELECT g, g % 100 FROM generate_series(1, 5000) g;",
        )
        .unwrap();
    for role in ["mallory", "alice"] {
        pg.connect_as("app", role)
            .batch_execute(&format!(
                "CREATE TABLE {role}.t (id bigint PRIMARY KEY, v int, w int);
                 INSERT INTO {role}.t SELECT g, g % 100 FROM generate_series(1, 5000) g;"
            ))
            .unwrap();
    }
}

/// A session of `role` that keeps a snapshot open: a CREATE INDEX CONCURRENTLY started after it
/// waits until it ends.
fn old_snapshot(pg: &Cluster, role: &str) -> Client {
    let mut c = pg.connect_as("app", role);
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class;").unwrap();
    c
}

/// The pid of `job`'s worker once it waits for the old snapshot, as the superuser sees it.
fn waiting_worker(pg: &Cluster, job: i64) -> i32 {
    let mut admin = pg.connect("app");
    let sql = format!(
        "SELECT j.worker_alive AND a.wait_event_type IS NOT DISTINCT FROM 'Lock' FROM migrate.jobs j JOIN pg_stat_activity a ON a.pid = j.worker_pid WHERE j.job = {job}"
    );
    assert!(pg.wait_for("app", 30, &sql), "the worker of job {job} waits for the old snapshot");
    one(&mut admin, &format!("SELECT worker_pid FROM migrate.jobs WHERE job = {job}"))
}

#[test]
fn advisory_locks_held_by_another_role_stop_no_job_and_no_deploy() {
    let pg = Cluster::start();
    setup(&pg);
    // mallory takes the keys of the next jobs and the key deployers used to take, and keeps them.
    let mut mallory = pg.connect_as("app", "mallory");
    mallory
        .query(
            "SELECT pg_advisory_lock($1, g) FROM generate_series(1, 20) g",
            &[&OLD_JOB_KEY_SPACE],
        )
        .unwrap();
    mallory.query("SELECT pg_advisory_lock($1)", &[&OLD_DEPLOY_KEY]).unwrap();

    // The superuser deploys: the apply does not wait for mallory's key (it would fail with
    // 55P03 after lock_timeout), its job starts and ends, and the version is applied.
    let mut admin = pg.connect("app");
    admin.batch_execute("SET lock_timeout = '3s'").unwrap();
    let state: String = one(
        &mut admin,
        "SELECT migrate.apply('1_admin_idx', 'CREATE INDEX CONCURRENTLY admin_t_v_idx ON public.admin_t (v);')",
    );
    assert_eq!(state, "applying");
    admin.batch_execute("SET statement_timeout = '60s'").unwrap();
    admin.batch_execute("CALL migrate.wait_version('1_admin_idx')").unwrap();
    let (version_state, valid): (String, bool) = admin
        .query_one(
            "SELECT (SELECT state FROM migrate.status() WHERE version = '1_admin_idx'),
                    (SELECT indisvalid FROM pg_index WHERE indexrelid = 'admin_t_v_idx'::regclass)",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((version_state.as_str(), valid), ("applied", true));

    // alice's job and the next deploys run too.
    let mut alice = pg.connect_as("app", "alice");
    let job: i64 = one(&mut alice, "SELECT migrate.run_async('CREATE INDEX CONCURRENTLY t_v_idx ON alice.t (v)')");
    alice.batch_execute("SET statement_timeout = '60s'").unwrap();
    alice.batch_execute(&format!("CALL migrate.wait({job})")).unwrap();
    let state: String = one(&mut alice, "SELECT migrate.apply('2_alice', 'ALTER TABLE alice.t ADD COLUMN note text;')");
    assert_eq!(state, "applied");

    // A job whose key mallory holds is not taken for a live one: worker_alive is true only while
    // its real worker runs.
    let alive: bool = one(&mut admin, &format!("SELECT worker_alive FROM migrate.jobs WHERE job = {job}"));
    assert!(!alive, "job {job} has ended; mallory's lock on its key does not make it look alive");

    // Nor can she hold what deployers take turns on now.
    for sql in ["SELECT FROM migrate.deploy_lock FOR UPDATE", "BEGIN; LOCK TABLE migrate.deploy_lock"] {
        let (code, ..) = db_error(&mallory.batch_execute(sql).unwrap_err());
        assert_eq!(code, "42501", "{sql}");
        mallory.batch_execute("ROLLBACK").unwrap();
    }
}

#[test]
fn a_dead_worker_stays_dead_and_cancel_never_signals_a_pid_that_is_not_the_worker() {
    let pg = Cluster::start();
    setup(&pg);
    let mut admin = pg.connect("app");
    let mut mallory = pg.connect_as("app", "mallory");

    // mallory's job loses its worker; then she takes the job's old key to make it look alive.
    let mut old = old_snapshot(&pg, "mallory");
    let job: i64 = one(&mut mallory, "SELECT migrate.run_async('CREATE INDEX CONCURRENTLY t_v_idx ON mallory.t (v)')");
    let pid = waiting_worker(&pg, job);
    let alive: bool = one(&mut mallory, &format!("SELECT worker_alive FROM migrate.jobs WHERE job = {job}"));
    assert!(alive, "her real worker runs");
    kill_worker(&mut admin, job, pid);
    mallory.query("SELECT pg_advisory_lock($1, $2::int)", &[&OLD_JOB_KEY_SPACE, &(job as i32)]).unwrap();
    let alive: bool = one(&mut mallory, &format!("SELECT worker_alive FROM migrate.jobs WHERE job = {job}"));
    assert!(!alive, "her lock does not make the dead worker look alive");

    // So the job is resumed and finishes.
    old.batch_execute("COMMIT").unwrap();
    let resumed: i64 = one(&mut mallory, "SELECT migrate.resume_jobs()");
    assert_eq!(resumed, 1);
    mallory.batch_execute("SET statement_timeout = '60s'").unwrap();
    mallory.batch_execute(&format!("CALL migrate.wait({job})")).unwrap();
    let (state, attempts): (String, i32) = mallory
        .query_one("SELECT state, attempts FROM migrate.jobs WHERE job = $1", &[&job])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("done", 2));

    // A second job loses its worker, and the pid its row remembers now belongs to another
    // backend: the superuser's session in the middle of a statement (the test writes that pid
    // into the row, as pid reuse would).
    let mut old = old_snapshot(&pg, "mallory");
    let job: i64 = one(&mut mallory, "SELECT migrate.run_async('CREATE INDEX CONCURRENTLY t_w_idx ON mallory.t (w)')");
    let pid = waiting_worker(&pg, job);
    kill_worker(&mut admin, job, pid);
    mallory.query("SELECT pg_advisory_lock($1, $2::int)", &[&OLD_JOB_KEY_SPACE, &(job as i32)]).unwrap();
    let mut victim = pg.connect("app");
    let victim_pid: i32 = one(&mut victim, "SELECT pg_backend_pid()");
    admin
        .execute("UPDATE migrate.all_jobs SET worker_pid = $2 WHERE id = $1", &[&job, &victim_pid])
        .unwrap();
    let alive: bool = one(&mut mallory, &format!("SELECT worker_alive FROM migrate.jobs WHERE job = {job}"));
    assert!(!alive, "a live backend with the remembered pid is not the job's worker");

    let sleeper = std::thread::spawn(move || victim.query_one("SELECT pg_sleep(3)", &[]).map(|_| ()));
    assert!(wait_until(10, || {
        admin
            .query_one("SELECT state = 'active' FROM pg_stat_activity WHERE pid = $1", &[&victim_pid])
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false)
    }));
    let state: String = one(&mut mallory, &format!("SELECT migrate.cancel({job})"));
    assert_eq!(state, "cancelled");
    let slept = sleeper.join().unwrap();
    assert!(slept.is_ok(), "mallory's cancel interrupted the superuser's statement: {slept:?}");
    old.batch_execute("COMMIT").unwrap();

    // Cancelling with no live worker settles the job at once.
    let (state, alive): (String, bool) = mallory
        .query_one("SELECT state, worker_alive FROM migrate.jobs WHERE job = $1", &[&job])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((state.as_str(), alive), ("cancelled", false));
}

/// mallory's backfills that crawl: a row per batch, the longest pause allowed between batches.
const CRAWL: &str = r#"{"batch_size": 1, "sleep_ms": 60000}"#;

#[test]
fn one_role_cannot_take_every_worker_nor_sleep_for_an_hour() {
    let pg = Cluster::start();
    setup(&pg);
    let mut admin = pg.connect("app");
    let (mut mallory, notices) = pg.connect_with_notices("app", "mallory");

    // The pause between batches is bounded: as an option and as a setting.
    let err = mallory
        .query_one(
            r#"SELECT migrate.backfill_start('mallory.t', 'w = v', options => '{"batch_size": 1, "sleep_ms": 3600000}')"#,
            &[],
        )
        .unwrap_err();
    let (code, message, ..) = db_error(&err);
    assert_eq!(code, "22023");
    assert!(message.contains("sleep_ms must be a whole number from 0 to 60000, got 3600000"), "{message}");
    let (code, message, ..) = db_error(&mallory.batch_execute("SET migrate.backfill_sleep = '2min'").unwrap_err());
    assert_eq!(code, "22023");
    // PostgreSQL 17 names the unit in the range of this (its own) error message.
    let range = if pg_major() >= 17 { "(0 ms .. 60000 ms)" } else { "(0 .. 60000)" };
    assert!(message.contains(range), "{message}");
    let none: i64 = one(&mut admin, "SELECT count(*) FROM migrate.all_jobs");
    assert_eq!(none, 0, "nothing was queued");

    // Four crawling backfills: only migrate.max_workers_per_role (2) of them run.
    let mut mine = Vec::new();
    for _ in 0..4 {
        let job: i64 = mallory
            .query_one("SELECT migrate.backfill_start('mallory.t', 'w = v', options => $1::text::jsonb)", &[&CRAWL])
            .unwrap()
            .get(0);
        mine.push(job);
    }
    let running = "SELECT count(*) FILTER (WHERE state = 'running' AND pid IS NOT NULL) = 2
                      AND count(*) FILTER (WHERE state = 'queued' AND pid IS NULL) = 2
                 FROM migrate.workers WHERE owner = 'mallory'";
    assert!(pg.wait_for("app", 30, running), "two of mallory's backfills run, two wait");
    // Workers started at the same moment that found no room have given up by now (5 s): it stays so.
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert!(pg.wait_for("app", 1, running), "still two of mallory's backfills run, two wait");
    // A fifth is queued at once, and told why.
    let fifth: i64 = mallory
        .query_one("SELECT migrate.backfill_start('mallory.t', 'w = v', options => $1::text::jsonb)", &[&CRAWL])
        .unwrap()
        .get(0);
    mine.push(fifth);
    let said = notices.lock().unwrap().join("\n");
    assert!(
        said.contains(&format!(
            "job {fifth} is queued: role \"mallory\" already runs 2 workers, its migrate.max_workers_per_role (2)"
        )),
        "{said}"
    );

    // Everyone else's work goes on meanwhile: alice's job and the superuser's deploy.
    let mut alice = pg.connect_as("app", "alice");
    let job: i64 = one(&mut alice, "SELECT migrate.run_async('CREATE INDEX CONCURRENTLY t_v_idx ON alice.t (v)')");
    alice.batch_execute("SET statement_timeout = '60s'").unwrap();
    alice.batch_execute(&format!("CALL migrate.wait({job})")).unwrap();
    one::<String>(&mut admin, "SELECT migrate.apply('1_admin_idx', 'CREATE INDEX CONCURRENTLY admin_t_v_idx ON public.admin_t (v);')");
    admin.batch_execute("SET statement_timeout = '60s'").unwrap();
    admin.batch_execute("CALL migrate.wait_version('1_admin_idx')").unwrap();
    let state: String = one(&mut admin, "SELECT state FROM migrate.status() WHERE version = '1_admin_idx'");
    assert_eq!(state, "applied");

    // Who holds what: mallory and alice see their own jobs, pg_monitor's members everybody's.
    let count = |c: &mut Client| -> (i64, i64) {
        c.query_one(
            "SELECT count(*) FILTER (WHERE owner = 'mallory'), count(*) FILTER (WHERE owner <> 'mallory') FROM migrate.workers",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap()
    };
    assert_eq!(count(&mut mallory), (5, 0));
    assert_eq!(count(&mut alice), (0, 0), "alice's job has ended; she sees none of mallory's");
    let mut watcher = pg.connect_as("app", "watcher");
    assert_eq!(count(&mut watcher), (5, 0));
    assert!(pg.wait_for(
        "app",
        20,
        "SELECT coalesce(bool_and(waiting_for LIKE 'its pause between batches%'), false) FROM migrate.workers WHERE owner = 'mallory' AND pid IS NOT NULL"
    ));
    let waiting: String = one(&mut watcher, &format!("SELECT waiting_for FROM migrate.workers WHERE job = {fifth}"));
    assert!(waiting.contains("migrate.max_workers_per_role"), "{waiting}");

    // The legitimate use: her running backfills make progress, and an admin clears them all.
    let done: i64 = one(&mut mallory, "SELECT sum(rows_done)::bigint FROM migrate.progress");
    assert!(done >= 2, "{done}");
    for job in &mine {
        let state: String = admin.query_one("SELECT migrate.cancel($1)", &[job]).unwrap().get(0);
        assert_eq!(state, "cancelled");
    }
    assert!(pg.wait_for(
        "app",
        20,
        "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_migrate job worker'"
    ));
    assert_eq!(count(&mut watcher), (0, 0));
}

#[test]
fn a_stuck_job_of_one_role_is_named_with_its_owner_and_an_admin_clears_it() {
    let pg = Cluster::start();
    setup(&pg);
    let mut mallory = pg.connect_as("app", "mallory");
    // mallory's version waits for her own open snapshot: it stays applying as long as she likes.
    let mut old = old_snapshot(&pg, "mallory");
    let state: String = one(&mut mallory, "SELECT migrate.apply('1_mallory', 'CREATE INDEX CONCURRENTLY t_v_idx ON mallory.t (v);')");
    assert_eq!(state, "applying");
    let job: i64 = one(&mut mallory, "SELECT job_ids[1] FROM migrate.migrations WHERE version = '1_mallory'");
    let pid = waiting_worker(&pg, job);

    // Every other deployer is told which job of whom holds them up, and who can end it.
    let mut admin = pg.connect("app");
    let mut alice = pg.connect_as("app", "alice");
    for (who, c, sql) in [
        ("postgres", &mut admin, "SELECT migrate.apply('2_admin', 'ALTER TABLE public.admin_t ADD COLUMN note text;')"),
        ("alice", &mut alice, "SELECT migrate.apply('2_alice', 'ALTER TABLE alice.t ADD COLUMN note text;')"),
    ] {
        let (code, message, detail, hint) = db_error(&c.query_one(sql, &[]).unwrap_err());
        assert_eq!(code, "55006", "{who}");
        assert_eq!(message, format!("version \"1_mallory\" is still applying in background job {job} of role \"mallory\""));
        assert!(detail.contains("must wait until that job has ended"), "{detail}");
        assert!(detail.contains(&format!("Job {job} is running in worker pid {pid} since ")), "{detail}");
        assert!(detail.contains("waiting for Lock: virtualxid"), "{detail}");
        assert!(hint.contains(&format!("CALL migrate.wait({job})")), "{hint}");
        assert!(
            hint.contains(&format!("a member of role \"mallory\" or a superuser runs SELECT migrate.cancel({job})")),
            "{hint}"
        );
    }
    // alice cannot cancel mallory's job; the superuser can.
    let (code, ..) = db_error(&alice.query_one("SELECT migrate.cancel($1)", &[&job]).unwrap_err());
    assert_eq!(code, "42704");
    let state: String = admin.query_one("SELECT migrate.cancel($1)", &[&job]).unwrap().get(0);
    assert_eq!(state, "cancelled");
    assert!(pg.wait_for("app", 20, &format!("SELECT NOT worker_alive FROM migrate.jobs WHERE job = {job}")));
    old.batch_execute("COMMIT").unwrap();

    // Then everybody deploys again; mallory's version is failed and hers to resume.
    let state: String = one(&mut admin, "SELECT migrate.apply('2_admin', 'ALTER TABLE public.admin_t ADD COLUMN note text;')");
    assert_eq!(state, "applied");
    let state: String = one(&mut alice, "SELECT migrate.apply('2_alice', 'ALTER TABLE alice.t ADD COLUMN note text;')");
    assert_eq!(state, "applied");
    let state: String = one(&mut mallory, "SELECT state FROM migrate.status() WHERE version = '1_mallory'");
    assert_eq!(state, "failed");
}

#[test]
fn a_job_that_frees_every_advisory_lock_of_its_worker_gets_no_extra_worker() {
    let pg = Cluster::start();
    setup(&pg);
    let mut admin = pg.connect("app");
    let mut mallory = pg.connect_as("app", "mallory");
    // A worker's seat is a session-level lock; every batch of these backfills gives up all of
    // the session's advisory locks, then crawls.
    mallory
        .batch_execute(
            "CREATE FUNCTION mallory.free() RETURNS int LANGUAGE sql
               AS 'SELECT pg_catalog.pg_advisory_unlock_all(); SELECT 0';",
        )
        .unwrap();
    let start = |c: &mut Client| -> i64 {
        c.query_one(
            "SELECT migrate.backfill_start('mallory.t', 'w = v + mallory.free()', options => $1::text::jsonb)",
            &[&CRAWL],
        )
        .unwrap()
        .get(0)
    };
    let mut mine = vec![start(&mut mallory), start(&mut mallory)];
    let ran = "SELECT count(*) = 2 FROM migrate.all_jobs WHERE kind = 'backfill' AND attempts > 0";
    assert!(pg.wait_for("app", 30, ran), "both backfills run");
    assert!(pg.wait_for("app", 30, "SELECT sum(rows_done) >= 2 FROM migrate.progress"), "both ran a batch");
    // Seats freed by the batches were taken back (pg_locks shows them while the workers pause
    // between batches): a third backfill finds no room and waits.
    mine.push(start(&mut mallory));
    // A worker started for it (on a busy machine the first check may not see both workers yet)
    // finds no seat and gives up within 5 s of its start; the job stays queued. Or it takes the
    // seat one of the first two gave up between its batches: that worker stops instead, and its
    // job waits, running with no worker, to be resumed. Either way two workers run, one job waits.
    assert!(
        pg.wait_for(
            "app",
            60,
            "SELECT count(*) FILTER (WHERE pid IS NOT NULL) = 2 AND count(*) FILTER (WHERE pid IS NULL) = 1
               FROM migrate.workers WHERE owner = 'mallory'"
        ),
        "mallory runs no more than migrate.max_workers_per_role workers"
    );
    let seats: i64 = one(
        &mut admin,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = 0 AND objsubid = 20557 AND granted",
    );
    assert_eq!(seats, 4, "each running worker holds a cluster seat and a seat of its role");
    for job in &mine {
        let _: String = admin.query_one("SELECT migrate.cancel($1)", &[job]).unwrap().get(0);
    }
}
