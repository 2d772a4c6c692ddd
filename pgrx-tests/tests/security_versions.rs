//! Versions belong to the role that applied them (issue 13: a deployer can never act with anyone
//! else's rights). Every attack is made by a real non-superuser LOGIN role in its own session:
//! alice and bob are deployers with EXECUTE on pg_migrate's functions, each owning a schema.

use pg_migrate_integration::{db_error, fails, is_superuser, one, pg_major, Client, Cluster};

fn start() -> Cluster {
    let pg = Cluster::start();
    pg.connect("postgres").batch_execute("CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;").unwrap();
    pg
}

/// A database with pg_migrate where alice and bob may deploy, each into a schema of its own
/// (their search_path is "$user", public).
fn database(pg: &Cluster, db: &str) {
    pg.create_db(db);
    pg.connect(db)
        .batch_execute(
            "CREATE SCHEMA alice AUTHORIZATION alice;
             CREATE SCHEMA bob AUTHORIZATION bob;
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA migrate TO alice, bob;",
        )
        .unwrap();
}

fn state(c: &mut Client, version: &str) -> String {
    one(c, &format!("SELECT coalesce((SELECT state FROM migrate.status() WHERE version = '{version}'), 'none')"))
}

fn exists(c: &mut Client, relation: &str) -> bool {
    one(c, &format!("SELECT to_regclass('{relation}') IS NOT NULL"))
}

/// A cluster with database "app" ready for alice and bob, and a session of each.
fn alice_and_bob() -> (Cluster, Client, Client) {
    let pg = start();
    database(&pg, "app");
    let alice = pg.connect_as("app", "alice");
    let bob = pg.connect_as("app", "bob");
    (pg, alice, bob)
}

#[test]
fn a_late_baseline_from_a_deployer_is_refused_and_applies_still_run() {
    let (pg, mut alice, mut bob) = alice_and_bob();
    alice.batch_execute("SELECT migrate.apply('1_a', 'CREATE TABLE a1 (id int);')").unwrap();

    // The attack of the review: a baseline above every version makes every later apply a no-op.
    let (code, message, detail, hint) = fails(&mut bob, "SELECT migrate.baseline(repeat('z', 200))");
    assert_eq!(code, "42501");
    assert!(message.starts_with("permission denied to record baseline \"zzz"), "{message}");
    assert!(detail.contains("1 version is recorded") && detail.contains("role \"postgres\""), "{detail}");
    assert!(hint.contains("ask role \"postgres\""), "{hint}");
    let mut admin = pg.connect("app");
    assert_eq!(one::<i64>(&mut admin, "SELECT count(*) FROM migrate.migrations WHERE is_baseline"), 0);
    assert_eq!(one::<i64>(&mut admin, "SELECT count(*) FROM migrate.events WHERE action = 'baseline'"), 0);

    // Later applies of both deployers still run their SQL.
    let s: String = alice.query_one("SELECT migrate.apply('2_a', 'CREATE TABLE a2 (id int);')", &[]).unwrap().get(0);
    assert_eq!(s, "applied");
    let s: String = bob.query_one("SELECT migrate.apply('3_b', 'CREATE TABLE b3 (id int);')", &[]).unwrap().get(0);
    assert_eq!(s, "applied");
    assert!(exists(&mut admin, "alice.a2") && exists(&mut admin, "bob.b3"));

    // The extension owner may still record a baseline once history has begun; it is its own.
    admin.batch_execute("SELECT migrate.baseline('4_base')").unwrap();
    assert_eq!(one::<String>(&mut admin, "SELECT owner::text FROM migrate.status() WHERE version = '4_base'"), "postgres");
    assert_eq!(state(&mut admin, "4_base"), "baseline");
}

#[test]
fn a_first_baseline_works_and_only_its_owner_forgets_it() {
    let pg = start();
    database(&pg, "app");
    let mut bob = pg.connect_as("app", "bob");

    // In an empty database a deployer's baseline begins the history.
    let s: String = bob.query_one("SELECT migrate.baseline('100_existing')", &[]).unwrap().get(0);
    assert_eq!(s, "applied");
    assert_eq!(one::<String>(&mut bob, "SELECT owner::text FROM migrate.status() WHERE version = '100_existing'"), "bob");
    let (mut alice, notices) = pg.connect_with_notices("app", "alice");
    alice.batch_execute("SELECT migrate.apply('050_old', 'CREATE TABLE old (id int);')").unwrap();
    assert!(!exists(&mut alice, "alice.old"), "covered by the baseline: nothing ran");
    let seen = notices.lock().unwrap().clone();
    assert!(
        seen.iter().any(|n| n.ends_with("is covered by baseline \"100_existing\" of role \"bob\"; nothing to do")),
        "the NOTICE says whose baseline skipped it: {seen:?}"
    );

    // A second baseline from a deployer is refused, even above every version.
    let (code, ..) = fails(&mut alice, "SELECT migrate.baseline('200_mine')");
    assert_eq!(code, "42501");

    // Only bob (or a member of bob) can forget it.
    let (code, message, detail, hint) = fails(&mut alice, "SELECT migrate.rollback('100_existing')");
    assert_eq!(code, "42501");
    assert_eq!(message, "permission denied to roll back version \"100_existing\" of role \"bob\"");
    assert!(detail.contains("Role \"alice\" is not a member of \"bob\""), "{detail}");
    assert!(hint.contains("migrate.status()"), "{hint}");
    // A bare rollback() stops at a baseline instead of forgetting it.
    let (code, message, _, hint) = fails(&mut bob, "SELECT migrate.rollback()");
    assert_eq!(code, "55000");
    assert!(message.contains("is a baseline"), "{message}");
    assert!(hint.contains("SELECT migrate.rollback('100_existing')"), "{hint}");
    assert_eq!(state(&mut bob, "100_existing"), "baseline");

    let s: String = bob.query_one("SELECT migrate.rollback('100_existing')", &[]).unwrap().get(0);
    assert_eq!(s, "rolled_back");
    assert_eq!(state(&mut bob, "100_existing"), "rolled_back");
    // Nothing is skipped any more.
    let s: String = alice.query_one("SELECT migrate.apply('050_old', 'CREATE TABLE old (id int);')", &[]).unwrap().get(0);
    assert_eq!(s, "applied");
    assert!(exists(&mut alice, "alice.old"));
}

#[test]
fn a_deployer_cannot_roll_back_resume_or_repair_another_deployers_version() {
    let (pg, mut alice, mut bob) = alice_and_bob();
    alice
        .batch_execute(
            "SELECT migrate.apply('0_base', 'CREATE TABLE base (id int);', 'DROP TABLE base;');
             SELECT migrate.apply('1_users', 'CREATE TABLE users (id int);', 'DROP TABLE users;');",
        )
        .unwrap();
    let checksum: String = one(&mut alice, "SELECT checksum FROM migrate.status() WHERE version = '1_users'");

    for call in [
        "SELECT migrate.rollback()",
        "SELECT migrate.rollback('1_users')",
        "SELECT * FROM migrate.rollback_to('0_base')",
        "SELECT migrate.repair('1_users', 'CREATE TABLE users (id int); DROP SCHEMA alice CASCADE;')",
    ] {
        let (code, message, detail, hint) = fails(&mut bob, call);
        assert_eq!(code, "42501", "{call}");
        assert!(message.contains("version \"1_users\" of role \"alice\""), "{call}: {message}");
        assert!(detail.contains("belongs to role \"alice\""), "{call}: {detail}");
        assert!(hint.starts_with("Ask role \"alice\""), "{call}: {hint}");
    }
    // Nothing changed: the table, the state, the recorded checksum, the event log.
    let mut admin = pg.connect("app");
    assert!(exists(&mut admin, "alice.users"));
    assert_eq!(state(&mut bob, "1_users"), "applied");
    assert_eq!(one::<String>(&mut bob, "SELECT checksum FROM migrate.status() WHERE version = '1_users'"), checksum);
    assert_eq!(
        one::<i64>(&mut bob, "SELECT count(*) FROM migrate.events WHERE action IN ('rollback', 'repair')"),
        0
    );

    // The owner does all of it itself.
    alice.batch_execute("SELECT migrate.repair('1_users', 'CREATE TABLE users (id int); -- reviewed')").unwrap();
    let s: String = alice.query_one("SELECT migrate.rollback()", &[]).unwrap().get(0);
    assert_eq!(s, "rolled_back");
    assert!(!exists(&mut admin, "alice.users"));

    // A rolled-back version applied again by someone else is theirs from then on.
    bob.batch_execute("SELECT migrate.apply('1_users', 'CREATE TABLE users (id int);', 'DROP TABLE users;')").unwrap();
    assert_eq!(one::<String>(&mut bob, "SELECT owner::text FROM migrate.status() WHERE version = '1_users'"), "bob");
    assert!(exists(&mut bob, "bob.users"));
}

/// PostgreSQL 16 made SET ROLE a separate option of a role membership: a member granted
/// `WITH SET FALSE` (and INHERIT FALSE) may not become the role, nor use its rights. pg_migrate
/// runs a version's SQL with its owner's rights, so such a member must not act on the owner's
/// versions either. (On 15 every member may SET ROLE to the role: nothing to test there.)
#[test]
fn a_member_without_the_set_option_cannot_act_on_the_owners_versions() {
    if pg_major() < 16 {
        eprintln!("skipped on PostgreSQL {}: memberships have no SET option before 16", pg_major());
        return;
    }
    let (pg, mut alice, mut bob) = alice_and_bob();
    alice
        .batch_execute("SELECT migrate.apply('1_users', 'CREATE TABLE users (id int);', 'DROP TABLE users;')")
        .unwrap();
    let mut admin = pg.connect("app");
    admin.batch_execute("GRANT alice TO bob WITH INHERIT FALSE, SET FALSE").unwrap();
    let (code, ..) = fails(&mut bob, "SET ROLE alice");
    assert_eq!(code, "42501", "PostgreSQL refuses bob SET ROLE alice");
    for call in [
        "SELECT migrate.rollback('1_users')",
        "SELECT migrate.repair('1_users', 'CREATE TABLE users (id int); DROP SCHEMA alice CASCADE;')",
    ] {
        let (code, message, ..) = fails(&mut bob, call);
        assert_eq!(code, "42501", "{call}: {message}");
    }
    assert!(exists(&mut admin, "alice.users"));
    assert_eq!(state(&mut admin, "1_users"), "applied");

    // With the SET option (the default of GRANT) bob may act as alice, as on 15.
    admin.batch_execute("REVOKE alice FROM bob; GRANT alice TO bob WITH INHERIT FALSE, SET TRUE").unwrap();
    let s: String = bob.query_one("SELECT migrate.rollback('1_users')", &[]).unwrap().get(0);
    assert_eq!(s, "rolled_back");
    assert!(!exists(&mut admin, "alice.users"));
}

#[test]
fn a_superuser_rolls_back_a_version_with_its_owners_rights_only() {
    let pg = start();
    database(&pg, "app");
    let marker = pg.dir.join("program_ran");
    let mut alice = pg.connect_as("app", "alice");
    alice
        .batch_execute(&format!(
            "SELECT migrate.apply('1_t', 'CREATE TABLE t1 (id int);',
                $$CREATE TABLE alice.who AS SELECT current_user::text AS cu;
                  SELECT set_config('search_path', 'alice', false);
                  DROP TABLE t1;$$);
             SELECT migrate.apply('2_super', 'CREATE TABLE t2 (id int);', 'DROP TABLE t2; ALTER ROLE alice SUPERUSER;');
             SELECT migrate.apply('3_program', 'CREATE TABLE t3 (id int);',
                $$DROP TABLE t3; COPY (SELECT 1) TO PROGRAM 'touch {}';$$);
             SELECT migrate.apply('4_set_role', 'CREATE TABLE t4 (id int);', 'DROP TABLE t4; RESET ROLE; ALTER ROLE alice SUPERUSER;');
             SELECT migrate.apply('5_temp', 'CREATE TABLE t5 (id int);', 'CREATE TEMP TABLE scratch (id int); DROP TABLE t5;');",
            marker.display()
        ))
        .unwrap();
    let mut admin = pg.connect("app");

    // A temporary table is refused inside the restricted rollback, with a clear error; the
    // owner's own session runs the same down SQL.
    let (code, message, detail, hint) = fails(&mut admin, "SELECT migrate.rollback()");
    assert_eq!(code, "42501");
    assert!(message.contains("of down SQL of version \"5_temp\" failed: cannot create temporary table within security-restricted operation"), "{message}");
    assert!(detail.contains("runs as its owner \"alice\" within a security-restricted operation"), "{detail}");
    assert!(hint.contains("logs in as \"alice\""), "{hint}");
    assert_eq!(state(&mut admin, "5_temp"), "applied");
    alice.batch_execute("SELECT migrate.rollback()").unwrap();
    assert!(!exists(&mut admin, "alice.t5"));

    // SET ROLE alice does not make it alice's own session: RESET ROLE would reach postgres.
    let (code, message, detail, _) = fails(&mut admin, "SET ROLE alice; SELECT migrate.rollback();");
    admin.batch_execute("RESET ROLE").unwrap();
    assert_eq!(code, "42501");
    // PostgreSQL names the user switch that comes with the restriction.
    assert!(message.contains("failed: cannot set parameter \"role\" within security-definer function"), "{message}");
    assert!(detail.contains("runs as its owner \"alice\""), "{detail}");
    assert!(!is_superuser(&mut admin, "alice"));
    assert!(exists(&mut admin, "alice.t4"), "the failed rollback changed nothing");
    // Alice's own session cannot escalate either: rolling it back fails as alice.
    let (code, ..) = fails(&mut alice, "SELECT migrate.rollback()");
    assert_eq!(code, "42501");
    assert!(!is_superuser(&mut admin, "alice"));
    admin.batch_execute("DELETE FROM migrate.migrations WHERE version = '4_set_role'; DROP TABLE alice.t4;").unwrap();

    // COPY TO PROGRAM runs nothing: alice may not.
    let (code, message, ..) = fails(&mut admin, "SELECT migrate.rollback()");
    assert_eq!(code, "42501");
    assert!(message.contains("version \"3_program\"") && message.contains("COPY to or from an external program"), "{message}");
    assert!(!marker.exists(), "no program ran");
    assert!(exists(&mut admin, "alice.t3"));
    admin.batch_execute("DELETE FROM migrate.migrations WHERE version = '3_program'; DROP TABLE alice.t3;").unwrap();

    // ALTER ROLE … SUPERUSER fails as alice.
    let (code, message, ..) = fails(&mut admin, "SELECT migrate.rollback()");
    assert_eq!(code, "42501");
    assert!(message.contains("version \"2_super\""), "{message}");
    assert!(!is_superuser(&mut admin, "alice"));
    assert!(exists(&mut admin, "alice.t2"));
    admin.batch_execute("DELETE FROM migrate.migrations WHERE version = '2_super'; DROP TABLE alice.t2;").unwrap();

    // The ordinary DDL of a down script works as alice, and nothing it set stays behind.
    let path_before: String = one(&mut admin, "SHOW search_path");
    let s: String = admin.query_one("SELECT migrate.rollback()", &[]).unwrap().get(0);
    assert_eq!(s, "rolled_back");
    assert_eq!(one::<String>(&mut admin, "SELECT cu FROM alice.who"), "alice");
    assert_eq!(one::<String>(&mut admin, "SELECT tableowner::text FROM pg_tables WHERE tablename = 'who'"), "alice");
    assert!(!exists(&mut admin, "alice.t1"));
    assert_eq!(one::<String>(&mut admin, "SHOW search_path"), path_before);
    // The history says who rolled it back and with whose rights the down SQL ran.
    assert_eq!(
        one::<String>(
            &mut admin,
            "SELECT actor || ' ' || (detail->>'owner') FROM migrate.events WHERE version = '1_t' AND action = 'rollback'"
        ),
        "postgres alice"
    );
    assert_eq!(one::<String>(&mut admin, "SELECT rolled_back_by::text FROM migrate.migrations WHERE version = '1_t'"), "postgres");
}

#[test]
fn a_rollback_job_is_owned_by_the_versions_owner() {
    let pg = start();
    database(&pg, "app");
    let mut alice = pg.connect_as("app", "alice");
    alice
        .batch_execute(
            "SELECT migrate.apply('1_t', 'CREATE TABLE t (id int); CREATE TABLE who (cu text);', 'DROP TABLE t, who;');
             SELECT migrate.apply('2_idx', 'CREATE INDEX CONCURRENTLY t_idx ON t (id);',
                                  'DROP INDEX CONCURRENTLY t_idx; INSERT INTO who SELECT current_user;');",
        )
        .unwrap();
    // A job starts once the applying transaction has committed: wait in a transaction of its own.
    alice.batch_execute("CALL migrate.wait_version('2_idx')").unwrap();
    assert!(exists(&mut alice, "alice.t_idx"));

    let mut admin = pg.connect("app");
    let s: String = admin.query_one("SELECT migrate.rollback()", &[]).unwrap().get(0);
    assert_eq!(s, "rolling_back");
    let (job, owner): (i64, String) = admin
        .query_one(
            "SELECT j.job, j.owner::text FROM migrate.jobs j
              WHERE j.job = (SELECT job_ids[array_upper(job_ids, 1)] FROM migrate.migrations WHERE version = '2_idx')",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(owner, "alice", "job {job} runs as the version's owner, not as the superuser");
    admin.batch_execute("CALL migrate.wait_version('2_idx')").unwrap();
    assert_eq!(state(&mut admin, "2_idx"), "rolled_back");
    assert!(!exists(&mut admin, "alice.t_idx"));
    // The job's session was alice's: the statement after the index ran as alice.
    assert_eq!(one::<String>(&mut admin, "SELECT string_agg(cu, ',') FROM alice.who"), "alice");
    // Alice sees her job: it is hers.
    assert_eq!(one::<i64>(&mut alice, &format!("SELECT count(*) FROM migrate.jobs WHERE job = {job}")), 1);
}

#[test]
fn one_rollback_job_never_mixes_two_owners() {
    let (pg, mut alice, mut bob) = alice_and_bob();
    alice
        .batch_execute(
            "SELECT migrate.apply('0_keep', 'CREATE TABLE keep (id int);', 'DROP TABLE keep;');
             SELECT migrate.apply('1_a', 'CREATE TABLE a (id int);', 'DROP TABLE a;');",
        )
        .unwrap();
    bob.batch_execute(
        "SELECT migrate.apply('2_b', 'CREATE TABLE b (id int);
                                     CREATE INDEX CONCURRENTLY b_idx ON b (id);', 'DROP INDEX CONCURRENTLY b_idx; DROP TABLE b;')",
    )
    .unwrap();
    bob.batch_execute("CALL migrate.wait_version('2_b')").unwrap();
    let mut admin = pg.connect("app");
    let (code, message, detail, _) = fails(&mut admin, "SELECT * FROM migrate.rollback_to('0_keep')");
    assert_eq!(code, "0A000");
    assert_eq!(message, "cannot roll back versions of roles \"bob\" and \"alice\" in one background job");
    assert!(detail.contains("Nothing was rolled back"), "{detail}");
    assert_eq!(state(&mut admin, "2_b"), "applied");
    assert_eq!(state(&mut admin, "1_a"), "applied");
    assert!(exists(&mut admin, "bob.b_idx") && exists(&mut admin, "alice.a"));
}

#[test]
fn versions_recorded_before_owners_belong_to_their_applier() {
    let pg = start();
    pg.connect("postgres").batch_execute("CREATE DATABASE old").unwrap();
    let mut admin = pg.connect("old");
    admin
        .batch_execute(
            "CREATE EXTENSION pg_migrate VERSION '0.1.0';
             CREATE ROLE carol LOGIN;
             CREATE SCHEMA alice AUTHORIZATION alice;
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA migrate TO alice, bob, carol;",
        )
        .unwrap();
    pg.connect_as("old", "alice")
        .batch_execute("SELECT migrate.apply('1_a', 'CREATE TABLE a (id int);', 'DROP TABLE a;')")
        .unwrap();
    pg.connect_as("old", "carol").batch_execute("SELECT migrate.apply('2_c', 'SELECT 1;', 'SELECT 1;')").unwrap();
    admin.batch_execute("DROP OWNED BY carol; DROP ROLE carol; ALTER EXTENSION pg_migrate UPDATE;").unwrap();

    assert_eq!(
        one::<String>(&mut admin, "SELECT string_agg(version || '=' || coalesce(owner::text, 'NULL'), ' ' ORDER BY version) FROM migrate.migrations"),
        "1_a=alice 2_c=NULL"
    );
    // Nobody can act for a version whose role is gone, until a superuser names a new owner.
    let (code, message, detail, hint) = fails(&mut admin, "SELECT migrate.rollback()");
    assert_eq!(code, "42704");
    assert_eq!(message, "the owner of version \"2_c\" no longer exists");
    assert!(detail.contains("applied by role \"carol\""), "{detail}");
    assert!(hint.contains("UPDATE migrate.migrations SET owner"), "{hint}");
    admin.batch_execute("UPDATE migrate.migrations SET owner = 'bob' WHERE version = '2_c'").unwrap();
    let mut bob = pg.connect_as("old", "bob");
    assert_eq!(bob.query_one("SELECT migrate.rollback()", &[]).unwrap().get::<_, String>(0), "rolled_back");
    // The updated version's own: alice's version is alice's.
    let (code, ..) = fails(&mut bob, "SELECT migrate.rollback()");
    assert_eq!(code, "42501");
    let mut alice = pg.connect_as("old", "alice");
    assert_eq!(alice.query_one("SELECT migrate.rollback()", &[]).unwrap().get::<_, String>(0), "rolled_back");
    assert!(!exists(&mut alice, "alice.a"));
}

#[test]
fn resuming_a_failed_version_is_its_owners_and_runs_as_its_owner() {
    let pg = start();
    database(&pg, "app");
    let mut alice = pg.connect_as("app", "alice");
    // The statement after the index runs in the job too, and says whose session the job is.
    let up = "CREATE UNIQUE INDEX CONCURRENTLY t_id ON t (id);\nINSERT INTO who SELECT current_user;\n-- migrate:allow mixed-ddl-and-data";
    alice
        .batch_execute(
            "SELECT migrate.apply('1_t', 'CREATE TABLE t (id int); CREATE TABLE who (cu text);');
             INSERT INTO alice.t VALUES (1), (1);",
        )
        .unwrap();
    alice.execute("SELECT migrate.apply('2_unique', $1)", &[&up]).unwrap();
    assert!(alice.batch_execute("CALL migrate.wait_version('2_unique')").is_err(), "the duplicate fails the job");
    assert_eq!(state(&mut alice, "2_unique"), "failed");
    alice.batch_execute("DELETE FROM alice.t WHERE ctid = (SELECT max(ctid) FROM alice.t)").unwrap();

    // Applying the same up SQL again resumes alice's job: not bob's to do.
    let mut bob = pg.connect_as("app", "bob");
    let e = bob.execute("SELECT migrate.apply('2_unique', $1)", &[&up]).unwrap_err();
    let (code, message, ..) = db_error(&e);
    assert_eq!(code, "42501");
    assert_eq!(message, "permission denied to resume version \"2_unique\" of role \"alice\"");
    assert_eq!(state(&mut bob, "2_unique"), "failed");

    // A superuser may, and the job still runs as alice.
    let mut admin = pg.connect("app");
    let s: String = admin.query_one("SELECT migrate.apply('2_unique', $1)", &[&up]).unwrap().get(0);
    assert_eq!(s, "applying");
    let owner: String = one(
        &mut admin,
        "SELECT owner::text FROM migrate.jobs WHERE job = (SELECT job_ids[array_upper(job_ids, 1)] FROM migrate.migrations WHERE version = '2_unique')",
    );
    assert_eq!(owner, "alice");
    admin.batch_execute("CALL migrate.wait_version('2_unique')").unwrap();
    assert_eq!(state(&mut admin, "2_unique"), "applied");
    assert_eq!(one::<String>(&mut admin, "SELECT indexdef FROM pg_indexes WHERE indexname = 't_id'"), "CREATE UNIQUE INDEX t_id ON alice.t USING btree (id)");
    assert_eq!(one::<String>(&mut admin, "SELECT string_agg(cu, ',') FROM alice.who"), "alice");
}

#[test]
fn a_superuser_rolls_back_a_deployers_expand_as_the_deployer() {
    let pg = start();
    database(&pg, "app");
    let mut alice = pg.connect_as("app", "alice");
    alice
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, a text);
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g;
             SELECT migrate.apply('1_rename', $$SELECT migrate.expand_column('t', 'a', new_name => 'b')$$);",
        )
        .unwrap();
    let mut admin = pg.connect("app");
    let columns = "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                    WHERE attrelid = 'alice.t'::regclass AND attnum > 0 AND NOT attisdropped";
    assert_eq!(one::<String>(&mut admin, columns), "id,a,b");

    // The generated down SQL (SELECT migrate.abort(n)) works inside the restricted rollback.
    let s: String = admin.query_one("SELECT migrate.rollback('1_rename')", &[]).unwrap().get(0);
    assert_eq!(s, "rolled_back");
    assert_eq!(one::<String>(&mut admin, columns), "id,a");
    assert_eq!(one::<String>(&mut admin, "SELECT phase FROM migrate.all_changes"), "aborted");
    assert_eq!(one::<i64>(&mut admin, "SELECT count(*) FROM alice.t WHERE a = 'v' || id"), 2000);
}
