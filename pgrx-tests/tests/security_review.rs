//! Attacks found by a hostile review of the first 0.3.0 draft (docs/security.md, "What was
//! tested"): each one succeeded against that draft and is a regression test now. Every attack is
//! made by the real non-superuser LOGIN role `deployer` (owner of schema `dep`) or `stranger`,
//! and each test asserts the promised outcome: the attacker's code never runs as anyone else,
//! the attacker does not become superuser, nobody's deploys are blocked.
//!
//! The payload: `dep.pwn_as()`, which records who runs it in `dep.seen` and tries
//! `ALTER ROLE deployer SUPERUSER` (which only works when a superuser runs it).

use pg_migrate_integration::{attack_cluster, DEPLOYER_PAYLOAD, exec, fails, is_superuser, one, Client, Cluster};
use std::time::Duration;


/// A cluster with database "app", the roles deployer (owns schema dep), lead (a member of
/// deployer) and stranger, and the payload.
fn setup() -> (Cluster, Client) {
    let (pg, mut admin) = attack_cluster("app", &[]);
    exec(&mut admin, DEPLOYER_PAYLOAD);
    (pg, admin)
}

/// (role, via) pairs the payload ran as, distinct and sorted.
fn payload_ran_as(admin: &mut Client) -> Vec<(String, String)> {
    admin
        .query("SELECT DISTINCT who, via FROM dep.seen ORDER BY 1, 2", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The promise of docs/security.md, checked after each attack.
fn deployer_acted_only_as_itself(admin: &mut Client) {
    let ran = payload_ran_as(admin);
    let super_now = is_superuser(admin, "deployer");
    assert!(
        ran.iter().all(|(who, _)| who == "deployer") && !super_now,
        "HOLE: the deployer's code ran as {ran:?}; deployer is superuser now: {super_now}"
    );
}

/// Hole 1 (high): `owner::check` decides "the owner's own session" (down SQL runs UNRESTRICTED)
/// from `GetSessionUserId()`. After `SET SESSION AUTHORIZATION deployer` in a superuser's
/// session (what pg_dump --use-set-session-authorization scripts do, and the obvious reading of
/// the restricted-rollback HINT "run it in a session that logs in as deployer"), the session user
/// IS deployer, so the deployer's down SQL runs unrestricted, and `RESET SESSION AUTHORIZATION`
/// (allowed: the authenticated user is a superuser) gives it the superuser back for the rest of
/// the script. Fix: compare with the *authenticated* user (`GetAuthenticatedUserId()`), or always
/// run another session's rollback restricted.
#[test]
fn rollback_after_set_session_authorization_still_runs_the_down_sql_restricted() {
    let (pg, mut admin) = setup();
    let mut deployer = pg.connect_as("app", "deployer");
    exec(
        &mut deployer,
        "SELECT migrate.apply('20260101000000_x',
            $up$CREATE TABLE dep.x (id int)$up$,
            $down$DROP TABLE dep.x; RESET SESSION AUTHORIZATION; SELECT dep.pwn_as('down')$down$)",
    );
    // The superuser acts "as the deployer" to roll its version back: the down SQL still runs
    // restricted, so its RESET SESSION AUTHORIZATION is refused and nothing is rolled back.
    exec(&mut admin, "SET SESSION AUTHORIZATION deployer");
    let (code, message, detail, _) = fails(&mut admin, "SELECT migrate.rollback('20260101000000_x')");
    assert_eq!(code, "42501", "{message}");
    assert!(message.contains("session_authorization") && detail.contains("logged in as role \"postgres\""), "{message} / {detail}");
    exec(&mut admin, "RESET SESSION AUTHORIZATION");
    deployer_acted_only_as_itself(&mut admin);
    let kept: bool = one(&mut admin, "SELECT to_regclass('dep.x') IS NOT NULL");
    assert!(kept, "the failed rollback was undone");
    // In the deployer's own login session the same rollback runs unrestricted, as before; its
    // RESET SESSION AUTHORIZATION is harmless there (the deployer logged in as itself).
    let mut deployer = pg.connect_as("app", "deployer");
    let state: String = one(&mut deployer, "SELECT migrate.rollback('20260101000000_x')");
    assert_eq!(state, "rolled_back");
    deployer_acted_only_as_itself(&mut admin);
}

/// Hole 5 (low: needs the victim's search_path to list a deployer-writable schema before an
/// explicit pg_catalog, the very state the 0.2.0 attacks left behind): migrate.wait() says every
/// operator in it is schema-qualified, but `line IS DISTINCT FROM last_line` looks up `=` on the
/// caller's search_path. dep.=(text, text) runs as the caller once per poll. (Type names in its
/// DECLARE, `text` and `timestamptz`, resolve the same way: a dep.text domain with a CHECK is a
/// second route.) Fix: `(line IS NULL) <> (last_line IS NULL) OR line OPERATOR(pg_catalog.<>)
/// last_line`, and pg_catalog.text / pg_catalog.timestamptz in DECLARE.
#[test]
fn wait_runs_no_equality_operator_or_type_of_the_callers_search_path() {
    let (pg, mut admin) = setup();
    let mut deployer = pg.connect_as("app", "deployer");
    exec(
        &mut deployer,
        "CREATE FUNCTION dep.texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN PERFORM dep.pwn_as('wait'); RETURN a OPERATOR(pg_catalog.=) b; END $f$;
         CREATE OPERATOR dep.= (LEFTARG = text, RIGHTARG = text, FUNCTION = dep.texteq);",
    );
    let job: i64 = one(&mut deployer, "SELECT migrate.backfill_start('dep.t', 'b = a', NULL, '{\"manual\": true}')");
    exec(&mut admin, "SET search_path = dep, pg_catalog, public");
    // The job is manual and never runs: wait() polls until its timeout.
    let _ = admin.batch_execute(&format!("CALL migrate.wait({job}, '1 second')"));
    exec(&mut admin, "RESET search_path");
    deployer_acted_only_as_itself(&mut admin);
}

/// Hole 2 (high): when a migration statement's lock is not granted in time, `ddl::blockers::
/// describe` names the blocker with `string_agg(format('pid %s (role %s, …', l.pid, …))`,
/// unqualified and NOT pinned: it runs on the search_path the migration itself set. A deployer
/// defines dep.format(text, integer, text, text, text, text, text), an exact match that beats
/// pg_catalog.format(text, VARIADIC "any"), and holds an ACCESS SHARE lock on its own table
/// (any SELECT in an open transaction). A superuser applies a migration of the app schema that
/// begins with the usual `SET search_path = dep, public`: the first try times out, describe()
/// runs dep.format as the superuser (in the main transaction, not the failed subtransaction), the
/// retry succeeds once the deployer commits, and the deployer is superuser. The same function
/// runs in job workers (worker/executor.rs) with the job's stored search_path. Fix: run
/// describe() (and every internal query) under `with_pinned_search_path`, qualify
/// pg_catalog.format / string_agg / coalesce-args.
#[test]
fn the_lock_wait_report_runs_no_function_of_the_migrations_search_path() {
    let (pg, mut admin) = setup();
    let mut deployer = pg.connect_as("app", "deployer");
    exec(
        &mut deployer,
        "CREATE FUNCTION dep.format(f text, a integer, b text, c text, d text, e text, g text) RETURNS text
         LANGUAGE plpgsql AS $f$
         BEGIN PERFORM dep.pwn_as('format'); RETURN pg_catalog.format(f, a, b, c, d, e, g); END $f$;",
    );
    let holder = std::thread::spawn({
        let conn = pg.conn_string("app", "deployer");
        move || {
            let mut c = Client::connect(&conn, postgres::NoTls).unwrap();
            c.batch_execute("BEGIN; SELECT count(*) FROM dep.t; SELECT pg_sleep(1.5); COMMIT;").unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    exec(&mut admin, "SET migrate.lock_timeout = '200ms'");
    let state: String = one(
        &mut admin,
        "SELECT migrate.apply('20260102000000_y', 'SET search_path = dep, public; ALTER TABLE t ADD COLUMN c int')",
    );
    holder.join().unwrap();
    assert_eq!(state, "applied");
    exec(&mut admin, "RESET search_path");
    deployer_acted_only_as_itself(&mut admin);
}

/// Hole 3 (high, no timing needed): a job's worker adopts the search_path its creator had when
/// the job was queued, then runs pg_migrate's own `worker::cleanup::invalid_indexes` query,
/// `SELECT coalesce(array_agg(indexrelid), '{}') FROM pg_catalog.pg_index …`, unpinned, before
/// every CREATE INDEX CONCURRENTLY step. pg_catalog.array_agg is polymorphic (anynonarray), so a
/// dep.array_agg(oid) is an exact match and wins; with a non-strict final function it runs even
/// over zero rows. A superuser applies a migration `SET search_path = dep, public; CREATE INDEX
/// CONCURRENTLY …`: the worker logs in as the superuser and runs the deployer's aggregate. (The
/// worker's first query, `$1 % 2147483647` with $1 bigint, has no exact match in pg_catalog
/// either: a `%(bigint, integer)` on the owner role's default search_path, e.g. a writable public
/// schema, runs in every worker of that role.) Fix: pin search_path in the worker for all of
/// pg_migrate's own queries and set the job's search_path only around the user's statements;
/// qualify pg_catalog.array_agg and cast the modulus (`% 2147483647::bigint`).
#[test]
fn a_job_worker_runs_its_own_queries_on_a_pinned_search_path() {
    let (pg, mut admin) = setup();
    let mut deployer = pg.connect_as("app", "deployer");
    exec(
        &mut deployer,
        "CREATE FUNCTION dep.agg_final(s oid[]) RETURNS oid[] LANGUAGE plpgsql AS $f$
         BEGIN PERFORM dep.pwn_as('array_agg'); RETURN s; END $f$;
         CREATE AGGREGATE dep.array_agg(oid) (SFUNC = pg_catalog.array_append, STYPE = oid[], FINALFUNC = dep.agg_final);",
    );
    let state: String = one(
        &mut admin,
        "SELECT migrate.apply('20260103000000_z', 'SET search_path = dep, public; CREATE INDEX CONCURRENTLY t_a_idx ON t (a)')",
    );
    assert_eq!(state, "applying");
    exec(&mut admin, "RESET search_path");
    assert!(
        pg.wait_for("app", 60, "SELECT state = 'done' FROM migrate.jobs ORDER BY job DESC LIMIT 1"),
        "the index job ends"
    );
    deployer_acted_only_as_itself(&mut admin);
}

/// Hole 6 (medium, availability): a job's worker proves it is the job's only worker, and
/// migrate.jobs shows `worker_alive`, through the session advisory lock
/// (migrate.job_lock_space(), job id), which any role can take: job_lock_space() is executable
/// by PUBLIC and job ids come from a sequence. A deployer that holds the locks of the next job
/// ids keeps every role's background work from starting: the worker finds the lock taken and
/// exits at once, the job stays `queued` with worker_alive = true (so resume_orphans() leaves it
/// alone), and since only one version may have background work in flight, every later
/// migrate.apply() of every role is refused ("still applying in background job …") for as long
/// as the deployer's session lives. Fix: take the liveness lock in a key space no user can
/// reach (e.g. record the worker's pid and backend start time in the job row and check
/// pg_stat_activity), or verify the lock holder's pid is a pg_migrate worker of this job.
#[test]
fn advisory_locks_held_by_a_deployer_do_not_stop_background_work() {
    let (pg, mut admin) = setup();
    let mut deployer = pg.connect_as("app", "deployer");
    // The key space 0.2.0's workers used (migrate.job_lock_space(), gone since).
    exec(&mut deployer, "SELECT count(pg_advisory_lock(1886218599, g)) FROM generate_series(1, 100) g");
    exec(&mut admin, "CREATE TABLE public.big (id int PRIMARY KEY, v text)");
    let state: String = one(&mut admin, "SELECT migrate.apply('20260104000000_w', 'CREATE INDEX CONCURRENTLY big_v_idx ON public.big (v)')");
    assert_eq!(state, "applying");
    let ran = pg.wait_for("app", 20, "SELECT state = 'done' FROM migrate.jobs ORDER BY job DESC LIMIT 1");
    let (job_state, alive): (String, bool) =
        admin.query_one("SELECT state, worker_alive FROM migrate.jobs ORDER BY job DESC LIMIT 1", &[]).map(|r| (r.get(0), r.get(1))).unwrap();
    drop(deployer);
    assert!(ran, "HOLE: the superuser's index job never ran while the deployer held its advisory lock: state {job_state}, worker_alive {alive}");
}

/// Hole 8 (medium, multi-deployer): versions are global, and apply() of a version that another
/// role already applied with the same up SQL is a silent no-op ("already applied; nothing to
/// do", result `applied`). Migration files are usually public (a shared repository), so one
/// deployer can apply another deployer's next migration first: its up SQL runs as the first
/// deployer, which then owns what it created (here the second deployer's table in a schema both
/// may create in), holds the version (and its down SQL: it may pass its own) and the second
/// deployer can neither roll it back nor repair it (42501, not a member). Fix: when the recorded
/// owner is not the caller and the caller is not a member of it, refuse with an error naming the
/// owner instead of reporting success.
#[test]
fn applying_a_version_another_deployer_applied_first_is_refused() {
    let (pg, mut admin) = setup();
    exec(
        &mut admin,
        "CREATE ROLE deployer2 LOGIN;
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA migrate TO deployer2;
         CREATE SCHEMA shared;
         GRANT USAGE, CREATE ON SCHEMA shared TO deployer, deployer2;",
    );
    let up = "CREATE TABLE shared.orders (id int PRIMARY KEY, card text)";
    let mut deployer = pg.connect_as("app", "deployer");
    deployer
        .execute("SELECT migrate.apply('20260105000000_orders', $1, 'SELECT 1')", &[&up])
        .unwrap();
    let mut deployer2 = pg.connect_as("app", "deployer2");
    let state: String = deployer2
        .query_one("SELECT migrate.apply('20260105000000_orders', $1, 'DROP TABLE shared.orders')", &[&up])
        .map(|r| r.get(0))
        .unwrap_or_else(|e| format!("error: {e}"));
    let owner: String = one(&mut admin, "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'shared' AND tablename = 'orders'");
    assert!(
        state.starts_with("error") || owner == "deployer2",
        "HOLE: deployer2's apply reported {state:?}, yet its table shared.orders belongs to {owner}"
    );
}

/// Hole 4 (high where `public` is writable, as in every database created before PostgreSQL 15
/// and pg_upgraded since, or after `GRANT CREATE ON SCHEMA public TO PUBLIC`): the first query
/// of every job worker, `pg_try_advisory_lock(migrate.job_lock_space(), ($1 % 2147483647)::int)`
/// (worker/job.rs), runs before any search_path is set, on the job owner's default
/// `"$user", public`. $1 is bigint and 2147483647 an integer: pg_catalog has no exact
/// `%(bigint, integer)`, so `public.%(bigint, integer)` wins. Any role that may create in public
/// (here `stranger`, which has no pg_migrate rights to speak of) runs its function as the owner
/// of the next job, e.g. a superuser's `migrate.run_async('VACUUM …')`. Fix: pin search_path
/// (pg_catalog, pg_temp) in the worker right after connecting, and write `$1 % 2147483647::bigint`.
#[test]
fn an_operator_in_public_never_runs_in_a_superusers_job_worker() {
    let (pg, mut admin) = setup();
    exec(&mut admin, "GRANT CREATE ON SCHEMA public TO PUBLIC; CREATE TABLE public.big (id int PRIMARY KEY, v text)");
    let mut stranger = pg.connect_as("app", "stranger");
    exec(
        &mut stranger,
        "CREATE FUNCTION public.int8mod4(a bigint, b integer) RETURNS bigint LANGUAGE plpgsql AS $f$
         BEGIN
             INSERT INTO dep.seen VALUES (current_user::text, 'int8mod4');
             BEGIN EXECUTE 'ALTER ROLE stranger SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
             RETURN a OPERATOR(pg_catalog.%) b::bigint;
         END $f$;
         CREATE OPERATOR public.% (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = public.int8mod4);",
    );
    let _job: i64 = one(&mut admin, "SELECT migrate.run_async('VACUUM public.big')");
    assert!(pg.wait_for("app", 60, "SELECT state = 'done' FROM migrate.jobs ORDER BY job DESC LIMIT 1"), "the job ends");
    let ran = payload_ran_as(&mut admin);
    let stranger_super = is_superuser(&mut admin, "stranger");
    assert!(
        ran.is_empty() && !stranger_super,
        "HOLE: stranger's operator ran in the superuser's job worker as {ran:?}; stranger is superuser now: {stranger_super}"
    );
}

/// Hole 7 (medium, availability): apply/rollback serialise on
/// `pg_advisory_xact_lock(0x7067_6d69_6772_6174)` (catalog/history.rs LOCK_KEY). Advisory locks
/// need no privilege: any role that can connect, here `stranger`, takes the same key with a
/// session-level `pg_advisory_lock` and every migrate.apply()/rollback() of every role waits
/// for as long as that session lives (no lock_timeout applies to it; the error after
/// statement_timeout does not name the holder). Fix: take the lock with a lock_timeout and name
/// the holder, or serialise on a row lock of a catalog row only pg_migrate can lock (e.g.
/// `SELECT … FROM migrate.<lock table> FOR UPDATE`, with SELECT revoked from PUBLIC).
#[test]
fn an_advisory_lock_held_by_any_role_does_not_block_applies() {
    let (pg, mut admin) = setup();
    let mut stranger = pg.connect_as("app", "stranger");
    exec(&mut stranger, "SELECT pg_advisory_lock(8099562754323669364)");
    exec(&mut admin, "SET statement_timeout = '3s'");
    let outcome = admin.query_one("SELECT migrate.apply('20260106000000_k', 'CREATE TABLE public.k (id int)')", &[]);
    drop(stranger);
    assert!(outcome.is_ok(), "HOLE: a stranger's advisory lock blocked the superuser's apply: {:?}", outcome.err());
}
