//! Attacks by a deployer: a real non-superuser LOGIN role with EXECUTE on pg_migrate's functions
//! that owns its own schema, trying to make a superuser, a member of its role or any other
//! session run its code with their rights (issue 13, docs/security.md). Each test performs the
//! attack through the deployer's own connection, shows by outcome that it failed (the deployer is
//! not superuser, no file written by the server, no row outside a batch changed, nothing
//! recorded), and that the legitimate use still works.
//!
//! The payload most attacks carry: `dep.pwn(v)`, which records who runs it (`dep.seen`), tries to
//! make the deployer superuser (it works only when a superuser runs it) and leaves
//! `search_path = dep, pg_catalog, public` in the session that ran it, where the deployer's own
//! `dep.lower()` waits for the next unqualified `lower()`.

use pg_migrate_integration::{attack_cluster, DEPLOYER_PAYLOAD, exec, fails, is_superuser, one, pg_command, pg_cron_available, Client, Cluster};
use std::process::Stdio;


/// A cluster with database "app", the roles deployer (owns schema dep), lead (a member of
/// deployer: a team lead or an operator) and stranger, and the payload.
fn setup() -> (Cluster, Client) {
    let (pg, mut admin) = attack_cluster("app", &[]);
    exec(&mut admin, "CREATE TABLE public.owned_by_postgres (id int PRIMARY KEY, v text);");
    exec(&mut admin, DEPLOYER_PAYLOAD);
    (pg, admin)
}

/// The roles the payload ran as, distinct and sorted.
fn payload_ran_as(admin: &mut Client) -> Vec<String> {
    admin
        .query("SELECT DISTINCT who FROM dep.seen ORDER BY who", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The victim's search_path is what it was, and its unqualified lower() is pg_catalog's.
fn victim_unharmed(victim: &mut Client, admin: &mut Client, path_before: &str) {
    let path: String = one(victim, "SELECT current_setting('search_path')");
    assert_eq!(path, path_before, "the deployer's set_config survived into the caller's session");
    let lowered: String = one(victim, "SELECT lower('X')");
    assert_eq!(lowered, "x");
    assert!(!is_superuser(admin, "deployer"), "the deployer became superuser");
    assert!(!payload_ran_as(admin).iter().any(|w| w != "deployer"), "the deployer's code ran as {:?}", payload_ran_as(admin));
}

fn manual_backfill(deployer: &mut Client, assignments: &str) -> i64 {
    deployer
        .query_one("SELECT migrate.backfill_start('dep.t', $1, NULL, '{\"manual\": true}')", &[&assignments])
        .unwrap_or_else(|e| panic!("backfill_start: {e} {:?}", e.as_db_error().map(|d| (d.message(), d.detail()))))
        .get(0)
}

fn count(c: &mut Client, sql: &str) -> i64 {
    one(c, sql)
}

/// Finding 1: backfill_batch and backfill_verify run the job owner's expressions in the caller's
/// session. They now run as the owner, security-restricted, with every setting undone.
#[test]
fn batches_and_verify_run_the_owners_code_as_the_owner_and_leave_the_callers_session_alone() {
    let (pg, mut admin) = setup();
    let mut deployer = pg.connect_as("app", "deployer");
    let job = manual_backfill(&mut deployer, "b = dep.pwn(a)");

    // A superuser running a batch (by hand, or pg_cron's session).
    let mut victim = pg.connect("app");
    let before: String = one(&mut victim, "SELECT current_setting('search_path')");
    let updated: i64 = one(&mut victim, &format!("SELECT migrate.backfill_batch({job}, 10)"));
    assert_eq!(updated, 10, "the legitimate batch still runs");
    victim_unharmed(&mut victim, &mut admin, &before);

    // A member of the deployer role verifying, then finishing the job.
    let mut lead = pg.connect_as("app", "lead");
    let before: String = one(&mut lead, "SELECT current_setting('search_path')");
    let differing: i64 = one(&mut lead, &format!("SELECT migrate.backfill_verify({job})"));
    assert_eq!(differing, 90);
    while one::<i64>(&mut lead, &format!("SELECT migrate.backfill_batch({job})")) > 0 {}
    victim_unharmed(&mut lead, &mut admin, &before);

    // The superuser verifying the finished job.
    let before: String = one(&mut victim, "SELECT current_setting('search_path')");
    assert_eq!(one::<i64>(&mut victim, &format!("SELECT migrate.backfill_verify({job})")), 0);
    victim_unharmed(&mut victim, &mut admin, &before);
    assert_eq!(count(&mut admin, "SELECT count(*) FROM dep.t WHERE b IS DISTINCT FROM a"), 0, "every row was backfilled");

    // The stranger cannot run the deployer's batches at all.
    let mut stranger = pg.connect_as("app", "stranger");
    let (code, ..) = fails(&mut stranger, &format!("SELECT migrate.backfill_verify({job})"));
    assert_eq!(code, "42704");
}

/// The same attack on a pg_cron session: the superuser's scheduled command runs a batch of the
/// deployer's job, then an unqualified lower() in the same command.
#[test]
fn a_pg_cron_session_running_batches_is_not_hijacked() {
    if !pg_cron_available("a_pg_cron_session_running_batches_is_not_hijacked") {
        return;
    }
    let (pg, mut admin) = attack_cluster(
        "app",
        &[
            "shared_preload_libraries = 'pg_cron,pg_migrate'",
            "cron.database_name = 'app'",
            "cron.use_background_workers = on",
            "max_worker_processes = 16",
        ],
    );
    exec(&mut admin, "CREATE EXTENSION pg_cron; CREATE TABLE cron_saw (path text, lowered text);");
    exec(&mut admin, DEPLOYER_PAYLOAD);
    let mut deployer = pg.connect_as("app", "deployer");
    let job = manual_backfill(&mut deployer, "b = dep.pwn(a)");
    let command = format!(
        "SELECT migrate.backfill_batch({job}); INSERT INTO public.cron_saw SELECT current_setting('search_path'), lower('X');"
    );
    exec(&mut admin, &format!("SELECT cron.schedule('batches', '* * * * *', $cmd${command}$cmd$)"));
    assert!(pg.wait_for("app", 150, "SELECT count(*) > 0 FROM public.cron_saw"), "pg_cron ran the command");
    exec(&mut admin, "SELECT cron.unschedule('batches')");
    let (path, lowered): (String, String) = admin.query_one("SELECT path, lowered FROM public.cron_saw LIMIT 1", &[]).map(|r| (r.get(0), r.get(1))).unwrap();
    assert!(!path.contains("dep"), "the deployer's search_path reached the cron session: {path}");
    assert_eq!(lowered, "x");
    assert!(count(&mut admin, "SELECT count(*) FROM dep.t WHERE b IS NOT NULL") > 0, "the batch ran");
    assert!(!is_superuser(&mut admin, "deployer"));
    assert_eq!(payload_ran_as(&mut admin), vec!["deployer".to_string()]);
}

/// Under SECURITY_RESTRICTED_OPERATION the owner's code cannot switch roles or leave temporary
/// objects behind in the caller's session either.
#[test]
fn batches_refuse_role_switches_and_temporary_objects() {
    let (pg, mut admin) = setup();
    exec(
        &mut admin,
        "SET ROLE deployer;
         CREATE FUNCTION dep.temp_table(v text) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN
             CREATE TEMP TABLE IF NOT EXISTS planted (x int);
             RETURN v;
         END $f$;
         RESET ROLE;",
    );
    let mut deployer = pg.connect_as("app", "deployer");
    let job = manual_backfill(&mut deployer, "b = dep.temp_table(a)");
    let mut victim = pg.connect("app");
    let (code, message, ..) = fails(&mut victim, &format!("SELECT migrate.backfill_batch({job}, 10)"));
    assert_eq!(code, "42501", "{message}");
    assert!(message.contains("security-restricted"), "{message}");
    assert_eq!(count(&mut victim, "SELECT count(*) FROM pg_class WHERE relname = 'planted'"), 0);
    assert_eq!(count(&mut admin, "SELECT count(*) FROM dep.t WHERE b IS NOT NULL"), 0, "the batch was rolled back");
}

/// Finding 2: contract evaluates the change's `up` (its last check) and queues its job: as the
/// change's owner, whoever contracts.
#[test]
fn a_superuser_contracting_a_deployers_change_runs_its_code_as_the_deployer() {
    let (pg, mut admin) = setup();
    exec(
        &mut admin,
        "SET ROLE deployer;
         CREATE TABLE dep.c (id int PRIMARY KEY, v int);
         INSERT INTO dep.c SELECT g, g FROM generate_series(1, 50) g;
         -- NULL for every row, so that contract's last check evaluates it on all of them
         CREATE FUNCTION dep.evil(v int) RETURNS bigint LANGUAGE plpgsql AS $f$
         BEGIN
             INSERT INTO dep.seen VALUES (current_user::text, 'evil');
             PERFORM dep.become_superuser();
             RETURN NULL;
         END $f$;
         RESET ROLE;",
    );
    let mut deployer = pg.connect_as("app", "deployer");
    let change: i64 = one(
        &mut deployer,
        "SELECT migrate.expand_column('dep.c', 'v', new_type => 'bigint', up => 'dep.evil(v)', down => 'v::int', backfill => '{\"manual\": true}')",
    );
    let job: i64 = one(&mut deployer, &format!("SELECT job FROM migrate.changes WHERE change = {change}"));
    while one::<i64>(&mut deployer, &format!("SELECT migrate.backfill_batch({job})")) > 0 {}
    exec(&mut admin, "TRUNCATE dep.seen");

    let mut victim = pg.connect("app");
    let contract_job: i64 = one(&mut victim, &format!("SELECT migrate.contract({change})"));
    assert!(count(&mut admin, "SELECT count(*) FROM dep.seen") > 0, "contract's last check evaluated up()");
    assert_eq!(payload_ran_as(&mut admin), vec!["deployer".to_string()]);
    assert!(!is_superuser(&mut admin, "deployer"));
    let owner: String = one(&mut admin, &format!("SELECT owner::text FROM migrate.jobs WHERE job = {contract_job}"));
    assert_eq!(owner, "deployer", "the contract job belongs to the change's owner");
    exec(&mut victim, &format!("CALL migrate.wait({contract_job}, '60 seconds')"));
    let phase: String = one(&mut admin, &format!("SELECT phase FROM migrate.all_changes WHERE change = {change}"));
    assert_eq!(phase, "contracted", "the legitimate contract still completes");
}

/// Finding 3: verify(version) of another role's version runs the recorded SQL as that role, and
/// only for its members; effects outside the database cannot be caused with the verifier's rights.
#[test]
fn verifying_a_deployers_version_never_runs_it_as_the_verifier() {
    let (pg, mut admin) = setup();
    let marker = std::env::temp_dir().join(format!("pg_migrate_pwned_{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    exec(
        &mut admin,
        &format!(
            "SET ROLE deployer;
             -- harmless when the deployer runs it; a shell command when a superuser does
             CREATE FUNCTION dep.maybe_pwn() RETURNS void LANGUAGE plpgsql AS $f$
             BEGIN
                 INSERT INTO dep.seen VALUES (current_user::text, 'verify');
                 IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                     EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {}''';
                 END IF;
             END $f$;
             RESET ROLE;",
            marker.display()
        ),
    );
    let mut deployer = pg.connect_as("app", "deployer");
    exec(
        &mut deployer,
        "SELECT migrate.apply('1', 'CREATE TABLE dep.v1 (id int); SELECT dep.maybe_pwn();', 'DROP TABLE dep.v1;')",
    );

    let mut victim = pg.connect("app");
    let differences = count(&mut victim, "SELECT count(*) FROM migrate.verify('1')");
    assert_eq!(differences, 0, "the legitimate verify still works");
    assert!(!marker.exists(), "the server ran the deployer's shell command");
    assert_eq!(payload_ran_as(&mut admin), vec!["deployer".to_string()]);

    let mut lead = pg.connect_as("app", "lead");
    assert_eq!(count(&mut lead, "SELECT count(*) FROM migrate.verify('1')"), 0);

    let mut stranger = pg.connect_as("app", "stranger");
    let (code, message, _, hint) = fails(&mut stranger, "SELECT * FROM migrate.verify('1')");
    assert_eq!(code, "42501");
    assert!(message.contains("\"1\"") && message.contains("deployer"), "{message}");
    assert!(hint.contains("migrate.verify(up, down)"), "{hint}");
    assert!(!marker.exists());
}

/// Finding 4: an expression must be one expression on its own, so that it stays inside the
/// parentheses pg_migrate puts around it.
#[test]
fn expressions_cannot_close_their_parentheses() {
    let (pg, mut admin) = setup();
    let mut deployer = pg.connect_as("app", "deployer");
    let jobs_before = count(&mut admin, "SELECT count(*) FROM migrate.all_jobs");
    let changes_before = count(&mut admin, "SELECT count(*) FROM migrate.all_changes");
    for sql in [
        "SELECT migrate.backfill_start('dep.t', 'b = a', 'true) OR (true', '{\"manual\": true}')",
        "SELECT migrate.backfill_start('dep.t', 'b = a) OR (true', NULL, '{\"manual\": true}')",
        "SELECT migrate.backfill_start('dep.t', 'b = (a', 'true)', '{\"manual\": true}')",
        "SELECT migrate.expand_column('dep.t', 'a', new_type => 'varchar(20)', up => 'a) FROM dep.t --', down => 'a')",
        "SELECT migrate.add_check('dep.t', 't_a', 'a IS NOT NULL) OR (true')",
    ] {
        let (code, message, ..) = fails(&mut deployer, sql);
        assert_eq!(code, "42601", "{sql}: {message}");
    }
    assert_eq!(count(&mut admin, "SELECT count(*) FROM migrate.all_jobs"), jobs_before, "nothing was queued");
    assert_eq!(count(&mut admin, "SELECT count(*) FROM migrate.all_changes"), changes_before, "nothing was recorded");

    // A filter with OR and parentheses of its own stays inside the batch's key range.
    let job: i64 = one(&mut deployer, "SELECT migrate.backfill_start('dep.t', 'b = a', '(id < 0) OR (true)', '{\"manual\": true}')");
    assert_eq!(one::<i64>(&mut deployer, &format!("SELECT migrate.backfill_batch({job}, 10)")), 10);
    assert_eq!(count(&mut admin, "SELECT count(*) FROM dep.t WHERE b IS NOT NULL"), 10, "one batch, ten rows");
    exec(&mut admin, "INSERT INTO dep.t VALUES (1000, 'late', NULL)");
    while one::<i64>(&mut deployer, &format!("SELECT migrate.backfill_batch({job})")) > 0 {}
    assert_eq!(count(&mut admin, "SELECT count(*) FROM dep.t WHERE b IS NOT NULL"), 100, "rows inserted after the start are not the backfill's");
}

/// Finding 8: nothing a session can set silences a change's sync trigger.
#[test]
fn no_session_can_pass_itself_off_as_a_backfill() {
    let (pg, mut admin) = setup();
    let mut deployer = pg.connect_as("app", "deployer");
    let change: i64 = one(
        &mut deployer,
        "SELECT migrate.expand_column('dep.t', 'a', new_name => 'a2', up => 'upper(a)', down => 'lower(a2)', backfill => '{\"manual\": true}')",
    );
    let job: i64 = one(&mut deployer, &format!("SELECT job FROM migrate.changes WHERE change = {change}"));

    // Once the library is loaded, the setting cannot be changed at all.
    let mut app = pg.connect_as("app", "stranger");
    exec(&mut admin, "GRANT UPDATE, SELECT ON dep.t TO stranger");
    let _: Option<i64> = one(&mut app, "SELECT migrate.backfill_writing()");
    for sql in [
        format!("SET migrate.backfill_job = '{job}'"),
        format!("SELECT set_config('migrate.backfill_job', '{job}', false)"),
    ] {
        let (code, message, ..) = fails(&mut app, &sql);
        assert_eq!(code, "55P02", "{sql}: {message}");
    }

    // In a session that never loaded the library, SET makes a placeholder: the trigger still
    // syncs, because it asks the library, not the setting.
    let mut fresh = pg.connect_as("app", "stranger");
    let _ = fresh.batch_execute(&format!("SET migrate.backfill_job = '{job}'"));
    exec(&mut fresh, "UPDATE dep.t SET a = 'changed' WHERE id = 1");
    let synced: String = one(&mut admin, "SELECT a2 FROM dep.t WHERE id = 1");
    assert_eq!(synced, "CHANGED", "the update reached the new column");

    // The backfill itself is still recognised: it does not write the old column back.
    while one::<i64>(&mut deployer, &format!("SELECT migrate.backfill_batch({job})")) > 0 {}
    assert_eq!(count(&mut admin, "SELECT count(*) FROM dep.t WHERE a2 IS DISTINCT FROM upper(a)"), 0);
    assert_eq!(count(&mut admin, "SELECT count(*) FROM dep.t WHERE a <> 'changed' AND a NOT LIKE 'A%'"), 0, "old values untouched");
}

/// Finding 9: migrate.wait() cannot be made to run an operator from the caller's search_path.
#[test]
fn wait_runs_no_operator_of_the_callers_search_path() {
    let (pg, mut admin) = setup();
    exec(
        &mut admin,
        "SET ROLE deployer;
         -- wait() raises its error right after, which would roll back a row or ALTER ROLE:
         -- a sequence counts the calls whatever happens to the transaction
         CREATE SEQUENCE dep.operator_calls;
         GRANT USAGE ON SEQUENCE dep.operator_calls TO PUBLIC;
         CREATE FUNCTION dep.cat(text, bigint) RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN
             PERFORM pg_catalog.nextval('dep.operator_calls');
             PERFORM dep.become_superuser();
             RETURN $1 OPERATOR(pg_catalog.||) $2::text;
         END $f$;
         CREATE OPERATOR dep.|| (LEFTARG = text, RIGHTARG = bigint, FUNCTION = dep.cat);
         RESET ROLE;",
    );
    let mut deployer = pg.connect_as("app", "deployer");
    let job = manual_backfill(&mut deployer, "b = a");
    let mut victim = pg.connect("app");
    exec(&mut victim, "SET search_path = dep, public");
    let (code, _, _, hint) = fails(&mut victim, &format!("CALL migrate.wait({job}, '0.3 seconds')"));
    assert_eq!(code, "57014");
    assert!(hint.contains(&format!("migrate.cancel({job})")), "{hint}");
    let called: bool = one(&mut admin, "SELECT is_called FROM dep.operator_calls");
    assert!(!called, "wait() ran the attacker's || operator");
    assert!(!is_superuser(&mut admin, "deployer"));
}

/// Finding 10: names Postgres would cut are refused before anything is recorded.
#[test]
fn names_over_63_bytes_are_refused_up_front() {
    let (pg, mut admin) = setup();
    let mut deployer = pg.connect_as("app", "deployer");
    let changes_before = count(&mut admin, "SELECT count(*) FROM migrate.all_changes");
    for sql in [
        "SELECT migrate.expand_column('dep.t', 'a', new_name => repeat('n', 70))",
        "SELECT migrate.create_index('dep.t', '(a)', name => repeat('i', 70))",
        "SELECT migrate.add_column('dep.t', repeat('c', 64), 'int')",
        "SELECT migrate.add_check('dep.t', repeat('k', 64), 'id > 0')",
    ] {
        let (code, message, detail, hint) = fails(&mut deployer, sql);
        assert_eq!(code, "42622", "{sql}: {message}");
        assert!(detail.contains("63 bytes") && hint.contains("Nothing was changed"), "{detail} / {hint}");
    }
    assert_eq!(count(&mut admin, "SELECT count(*) FROM migrate.all_changes"), changes_before);
    // 63 bytes is fine.
    let change: i64 = one(&mut deployer, "SELECT migrate.expand_column('dep.t', 'a', new_name => repeat('n', 63))");
    assert!(change > 0);
}

/// Finding 12: create_index and drop_index refuse a table the caller does not own at once.
#[test]
fn index_jobs_on_tables_of_others_are_refused_at_once() {
    let (pg, mut admin) = setup();
    exec(&mut admin, "CREATE INDEX owned_v_idx ON public.owned_by_postgres (v)");
    let mut deployer = pg.connect_as("app", "deployer");
    let changes_before = count(&mut admin, "SELECT count(*) FROM migrate.all_changes");
    let jobs_before = count(&mut admin, "SELECT count(*) FROM migrate.all_jobs");
    for sql in [
        "SELECT migrate.create_index('pg_class', '(relname)')",
        "SELECT migrate.create_index('public.owned_by_postgres', '(v)')",
        "SELECT migrate.drop_index('public.owned_v_idx')",
    ] {
        let (code, message, ..) = fails(&mut deployer, sql);
        assert_eq!(code, "42501", "{sql}: {message}");
        assert!(message.starts_with("must be owner of table"), "{message}");
    }
    assert_eq!(count(&mut admin, "SELECT count(*) FROM migrate.all_changes"), changes_before);
    assert_eq!(count(&mut admin, "SELECT count(*) FROM migrate.all_jobs"), jobs_before);
    // The lead, a member of the owning role, may.
    exec(&mut admin, "SET ROLE deployer; CREATE TABLE dep.i (id int, v int); RESET ROLE;");
    let mut lead = pg.connect_as("app", "lead");
    let change: i64 = one(&mut lead, "SELECT migrate.create_index('dep.i', '(v)')");
    assert!(change > 0);
}

/// Finding 11: with RUST_BACKTRACE=1 in the server's environment, no error a client sees carries
/// a Rust backtrace; text a SQL_ASCII database cannot give as UTF-8 is 22021, not XX000.
#[test]
fn errors_carry_no_rust_backtrace_and_bad_encoding_is_22021() {
    let pg = Cluster::start();
    let data = pg.data_dir();
    let data = data.to_str().unwrap();
    let quiet = |c: &mut std::process::Command| c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(quiet(pg_command("pg_ctl").args(["-D", data, "-m", "fast", "-w", "stop"])).success());
    let log = pg.log_path();
    assert!(quiet(pg_command("pg_ctl").args(["-D", data, "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"]).env("RUST_BACKTRACE", "1")).success());

    let mut admin = pg.connect("postgres");
    exec(&mut admin, "CREATE DATABASE ascii TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'");
    let mut c = pg.connect("ascii");
    exec(&mut c, "CREATE EXTENSION pg_migrate");
    let (code, message, detail, hint) = fails(&mut c, r"SELECT migrate.apply('1', E'CREATE TABLE caf\xe9 (id int);')");
    assert_eq!(code, "22021", "{message}");
    assert!(!hint.is_empty(), "a HINT says what to do");
    for text in [&message, &detail, &hint] {
        assert!(!text.contains("backtrace") && !text.contains(".rs:"), "a Rust backtrace reached the client: {text}");
    }
    // The same call with ASCII text works in that database.
    let state: String = one(&mut c, "SELECT migrate.apply('2', 'CREATE TABLE cafe (id int);')");
    assert_eq!(state, "applied");
}
