//! Contract carries what uses the old column to the new one inside its swap (issue 15): views
//! three levels deep (security_barrier with a check option, security_invoker, an INSTEAD OF
//! trigger, grants to another LOGIN role at table and column level, comments, a column default),
//! on a rename (replaced in place: same OIDs) and on a type change (dropped and recreated), while
//! writers go through the old and then the new column and through a view, and a non-superuser
//! reads through the views, none failing or waiting longer than its lock_timeout; row-level
//! security policies on the column (FORCE ROW LEVEL SECURITY) and on another table through a
//! subquery; views and a policy on a partitioned table and on one of its partitions; refusals
//! (materialized views, functions built on a view, a view or policy of a role the change's owner
//! cannot act for, a view or policy that cannot work on the new type, a join USING the column)
//! by SQLSTATE, with nothing changed.

use pg_migrate_integration::{exec, fails, one, wait_until, Client, Cluster};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A cluster with database "app": `deployer` (a non-superuser LOGIN role that owns schema app
/// and makes the changes), `reader` (LOGIN, only what it is granted), `other` (NOLOGIN).
/// Returns a superuser session and a session as deployer.
fn cast() -> (Cluster, Client, Client) {
    let pg = Cluster::start();
    pg.create_db("app");
    let mut admin = pg.connect("app");
    exec(
        &mut admin,
        "CREATE ROLE deployer LOGIN;
         CREATE ROLE reader LOGIN;
         CREATE ROLE other;
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA migrate TO deployer;
         GRANT ALL ON ALL PROCEDURES IN SCHEMA migrate TO deployer;
         CREATE SCHEMA app AUTHORIZATION deployer;
         GRANT USAGE ON SCHEMA app TO reader, other;",
    );
    let deployer = pg.connect_as("app", "deployer");
    (pg, admin, deployer)
}

fn rows(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).iter().map(|r| r.get::<_, String>(0)).collect()
}

/// CALL migrate.wait with a time limit; then the job must be done.
fn wait_job(c: &mut Client, job: i64, secs: u32) {
    let waited = c.batch_execute(&format!("CALL migrate.wait({job}, '{secs} seconds')"));
    let state: String = c
        .query_one("SELECT state || coalesce(': ' || last_error, '') FROM migrate.jobs WHERE job = $1", &[&job])
        .map(|r| r.get(0))
        .unwrap_or_else(|e| format!("{e}"));
    assert!(waited.is_ok() && state == "done", "job {job}: {waited:?}; state {state}");
}

fn wait_backfill(c: &mut Client, change: i64) {
    let job: i64 = one(c, &format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {change}"));
    wait_job(c, job, 120);
}

fn phase(c: &mut Client, change: i64) -> String {
    one(c, &format!("SELECT phase FROM migrate.all_changes WHERE change = {change}"))
}

/// What a refused contract must leave as it was: the table's columns, the views and their
/// definitions, the sync triggers, the jobs.
fn state(c: &mut Client) -> Vec<String> {
    rows(
        c,
        "SELECT line FROM (
           SELECT format('column %s.%s %s', attrelid::regclass, attname, format_type(atttypid, atttypmod)) AS line
             FROM pg_attribute a JOIN pg_class r ON r.oid = a.attrelid
            WHERE r.relnamespace = 'app'::regnamespace AND attnum > 0 AND NOT attisdropped
           UNION ALL
           SELECT format('view %s %s %s', c.oid::regclass, c.oid, pg_get_viewdef(c.oid))
             FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace AND c.relkind IN ('v', 'm')
           UNION ALL
           SELECT format('trigger %s', tgname) FROM pg_trigger WHERE tgname LIKE 'zz_migrate_sync_%'
           UNION ALL
           SELECT format('jobs %s', count(*)) FROM migrate.jobs
         ) s ORDER BY line COLLATE \"C\"",
    )
}

#[derive(Default, Debug)]
struct Report {
    name: String,
    statements: u64,
    errors: Vec<String>,
    slowest: Duration,
    slowest_sql: String,
    ended_by_swap: bool,
}

/// Runs `sql` (with the statement number as $1) as `user` until `stop`, with lock_timeout 2 s:
/// a statement that fails or waits longer is reported. `ends_at_swap`: a writer through the old
/// column of a rename, which stops when the swap has dropped it (42703).
fn client(pg: &Cluster, name: &str, user: &str, sql: String, ends_at_swap: bool, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) -> std::thread::JoinHandle<Report> {
    let mut c = pg.connect_as("app", user);
    let name = name.to_string();
    std::thread::spawn(move || {
        let mut r = Report { name, ..Default::default() };
        c.batch_execute("SET lock_timeout = '2s'").unwrap();
        let mut n: i64 = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let t0 = Instant::now();
            let res = c.execute(sql.as_str(), &[&n]);
            let took = t0.elapsed();
            r.statements += 1;
            count.fetch_add(1, Ordering::Relaxed);
            if took > r.slowest {
                r.slowest = took;
                r.slowest_sql = format!("{sql} ({n})");
            }
            if let Err(e) = res {
                if ends_at_swap && e.as_db_error().is_some_and(|d| d.code().code() == "42703") {
                    r.ended_by_swap = true;
                    break;
                }
                if r.errors.len() < 10 {
                    r.errors.push(format!("{sql} ({n}) after {took:?}: {e} {:?}", e.as_db_error().map(|d| (d.code().code().to_string(), d.message().to_string()))));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        r
    })
}

fn check(r: &Report) {
    eprintln!("{}: {} statements, slowest {:?}: {}", r.name, r.statements, r.slowest, r.slowest_sql);
    assert!(r.errors.is_empty(), "{}: failed statements: {:#?}", r.name, r.errors);
    assert!(r.slowest < Duration::from_secs(2), "{}: waited {:?} (lock_timeout is 2 s): {}", r.name, r.slowest, r.slowest_sql);
    assert!(r.statements > 0, "{} ran", r.name);
}

// ---------------------------------------------------------------------------------------------
// Views three levels deep, carried on a rename (in place) and on a type change (recreated)
// ---------------------------------------------------------------------------------------------

const VIEWS: &str = "
CREATE TABLE app.accounts (id bigint PRIMARY KEY, amount numeric NOT NULL, note text);
INSERT INTO app.accounts SELECT g, g % 1000, 'n' || g FROM generate_series(1, 20000) g;
CREATE VIEW app.positive WITH (security_barrier) AS
    SELECT id, amount, note FROM app.accounts WHERE amount >= 0
    WITH CASCADED CHECK OPTION;
CREATE VIEW app.even WITH (security_invoker = true) AS SELECT id, amount FROM app.positive WHERE id % 2 = 0;
CREATE VIEW app.summary AS SELECT count(*) AS n, sum(amount) AS sum_amount FROM app.even;
CREATE TABLE app.summary_log (n bigint);
CREATE FUNCTION app.log_summary() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN INSERT INTO app.summary_log VALUES (NEW.n); RETURN NEW; END $f$;
CREATE TRIGGER summary_insert INSTEAD OF INSERT ON app.summary FOR EACH ROW EXECUTE FUNCTION app.log_summary();
COMMENT ON TRIGGER summary_insert ON app.summary IS 'logs instead';
COMMENT ON VIEW app.positive IS 'accounts not in debt';
COMMENT ON COLUMN app.even.amount IS 'in cents';
ALTER VIEW app.positive ALTER COLUMN note SET DEFAULT 'via view';
GRANT SELECT, INSERT ON app.positive TO reader;
GRANT SELECT (id, amount) ON app.even TO reader;
GRANT SELECT ON app.summary TO reader;
";

/// What a view is, besides its definition: "name owner options comment column-comments
/// defaults grants triggers".
fn view_facts(c: &mut Client) -> Vec<String> {
    rows(
        c,
        "SELECT format('%s owner=%s options=%s comment=%s columns=%s grants=%s triggers=%s', c.relname, c.relowner::regrole,
                       c.reloptions, obj_description(c.oid, 'pg_class'),
                       (SELECT string_agg(format('%s:%s:%s:%s:%s', a.attname, format_type(a.atttypid, a.atttypmod),
                                                 col_description(c.oid, a.attnum), pg_get_expr(d.adbin, d.adrelid), a.attacl), ' ' ORDER BY a.attnum)
                          FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                         WHERE a.attrelid = c.oid AND a.attnum > 0),
                       c.relacl,
                       (SELECT string_agg(t.tgname || ':' || obj_description(t.oid, 'pg_trigger') || ':' || pg_get_triggerdef(t.oid), ' ')
                          FROM pg_trigger t WHERE t.tgrelid = c.oid))
           FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace AND c.relkind = 'v' ORDER BY c.relname",
    )
}

fn view_oids(c: &mut Client) -> Vec<String> {
    rows(c, "SELECT relname || ' ' || oid FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relkind = 'v' ORDER BY relname")
}

/// The whole story for one kind of change: views built, writers and a reader started, expand,
/// backfill, contract while they run, then the views checked as objects and as the reader sees
/// them. `rename`: amount becomes total (same type); otherwise amount becomes bigint.
fn carry_views(rename: bool) {
    let (pg, mut admin, mut c) = cast();
    exec(&mut c, VIEWS);
    exec(&mut admin, "VACUUM ANALYZE app.accounts");
    let before = view_facts(&mut c);
    let oids_before = view_oids(&mut c);
    let mut reader = pg.connect_as("app", "reader");
    let seen_before: String = one(&mut reader, "SELECT count(*) || ' ' || sum(amount) FROM app.even");

    let stop_old = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (old_count, count) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Through the old column: on a rename until the swap drops it; on a type change the column
    // keeps its name, so the same statements go on to the new column.
    let old_writer = client(
        &pg,
        "writer via amount",
        "deployer",
        "UPDATE app.accounts SET amount = $1::bigint % 500 WHERE id = ($1::bigint * 7919) % 20000 + 1".to_string(),
        rename,
        if rename { stop_old.clone() } else { stop.clone() },
        old_count.clone(),
    );
    // Through the views, as the reader: inserts through the check option, reads two levels up.
    let view_writer = client(
        &pg,
        "reader inserting through app.positive",
        "reader",
        "INSERT INTO app.positive (id, amount) VALUES (1000000 + $1::bigint, $1::bigint % 100)".to_string(),
        false,
        stop.clone(),
        count.clone(),
    );
    let view_reader = client(&pg, "reader reading app.even and app.summary", "reader", "SELECT $1::bigint, (SELECT sum(amount) FROM app.even), (SELECT n FROM app.summary)".to_string(), false, stop.clone(), count.clone());

    let expand = if rename {
        "SELECT migrate.expand_column('app.accounts', 'amount', new_name => 'total', backfill => '{\"sleep_ms\": 0}')"
    } else {
        "SELECT migrate.expand_column('app.accounts', 'amount', new_type => 'bigint', backfill => '{\"sleep_ms\": 0}')"
    };
    let change: i64 = one(&mut c, expand);
    let new_writer = rename.then(|| {
        client(&pg, "writer via total", "deployer", "UPDATE app.accounts SET total = $1::bigint % 300 WHERE id = ($1::bigint * 104729) % 20000 + 1".to_string(), false, stop.clone(), count.clone())
    });
    wait_backfill(&mut admin, change);

    let plan: String = one(&mut c, &format!("SELECT migrate.contract_plan({change})"));
    if rename {
        assert!(plan.contains("point views app.positive at the new column (CREATE OR REPLACE VIEW"), "{plan}");
    } else {
        assert!(plan.contains("drop and recreate views app.positive, app.even, app.summary on the new column (in that order"), "{plan}");
    }
    std::thread::sleep(Duration::from_millis(300));
    // A session in a long transaction holds a lock on a view that the swap locks (COMMENT takes
    // SHARE UPDATE EXCLUSIVE; the table stays free for contract's own statements): the swap's
    // tries time out and are retried while the clients go on, each waiting at most one try. On
    // the type change it is the top view, which the swap locks first: the reader's query locks
    // app.even before app.summary and then waits for the swap that waits for app.even, a
    // deadlock that the swap must lose.
    // It starts after contract() (whose rehearsal of the swap locks the views for a moment),
    // before contract's transaction commits and its job starts.
    let blocked = if rename { "app.positive" } else { "app.summary" };
    let mut blocker = pg.connect_as("app", "deployer");
    let at_contract = count.load(Ordering::Relaxed);
    let job: i64 = {
        let mut tx = c.transaction().unwrap();
        let job: i64 = tx.query_one("SELECT migrate.contract($1)", &[&change]).unwrap().get(0);
        exec(&mut blocker, &format!("BEGIN; COMMENT ON VIEW {blocked} IS 'being edited'"));
        tx.commit().unwrap();
        job
    };
    assert!(
        wait_until(60, || one::<i64>(&mut admin, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_migrate job worker' AND wait_event_type = 'Lock' AND query LIKE '%finish_contract%'") == 1),
        "the swap waits for the reader"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let blocked = count.load(Ordering::Relaxed);
    exec(&mut blocker, "ROLLBACK");
    wait_job(&mut c, job, 120);
    assert!(blocked > at_contract, "the clients ran while the swap was retried");
    assert_eq!(phase(&mut admin, change), "contracted");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    stop_old.store(true, Ordering::Relaxed);
    for h in [old_writer, view_writer, view_reader].into_iter().chain(new_writer) {
        let r = h.join().unwrap();
        check(&r);
        assert_eq!(r.ended_by_swap, rename && r.name == "writer via amount", "{}", r.name);
    }
    assert!(count.load(Ordering::Relaxed) > at_contract, "the clients ran during the contract");

    // The table: the old column is gone, no marker left.
    let columns = rows(&mut c, "SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'app.accounts'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum");
    let new_column = if rename { "total numeric" } else { "amount bigint" };
    assert_eq!(columns, vec!["id bigint", "note text", new_column]);
    // The views: on a rename the same objects; on a type change new ones, with the new type.
    let oids_after = view_oids(&mut c);
    if rename {
        assert_eq!(oids_after, oids_before, "CREATE OR REPLACE VIEW keeps the views");
    } else {
        assert!(oids_after.iter().zip(&oids_before).all(|(a, b)| a != b), "recreated: {oids_before:?} {oids_after:?}");
    }
    let after = view_facts(&mut c);
    let expected: Vec<String> = if rename { before.clone() } else { before.iter().map(|l| l.replace(" amount:numeric", " amount:bigint")).collect() };
    assert_eq!(after, expected, "owners, options, comments, defaults, grants and triggers of the views");
    assert!(after[1].contains("options={security_barrier=true,check_option=cascaded}"), "{}", after[1]);
    assert!(after[0].contains("options={security_invoker=true}"), "{}", after[0]);
    let def: String = one(&mut c, "SELECT pg_get_viewdef('app.positive'::regclass)");
    // (PostgreSQL 16 and later leave out the table name of a single-table view's columns.)
    let used = if rename { "total AS amount" } else { "amount" };
    assert!(def.contains(used) && !def.contains("pg_migrate"), "{def}");
    // What the reader sees: the same rows through the same views, and the check option holds.
    let column = if rename { "total" } else { "amount" };
    let truth: String = one(&mut admin, &format!("SELECT count(*) || ' ' || sum({column}) FROM app.accounts WHERE {column} >= 0 AND id % 2 = 0"));
    let seen: String = one(&mut reader, "SELECT count(*) || ' ' || sum(amount) FROM app.even");
    assert_eq!(seen, truth);
    assert_ne!(seen_before, "", "the reader read before");
    let n: String = one(&mut reader, "SELECT n::text FROM app.summary");
    assert_eq!(n, truth.split(' ').next().unwrap());
    let e = fails(&mut reader, "INSERT INTO app.positive (id, amount) VALUES (9999999, -5)");
    assert_eq!(e.0, "44000", "the check option holds: {e:?}");
    let e = fails(&mut reader, "SELECT * FROM app.accounts");
    assert_eq!(e.0, "42501", "the reader still has no rights on the table: {e:?}");
    exec(&mut reader, "INSERT INTO app.positive (id, amount) VALUES (9999998, 5)");
    let note: String = one(&mut c, "SELECT note FROM app.accounts WHERE id = 9999998");
    assert_eq!(note, "via view", "the view's column default");
    exec(&mut c, "INSERT INTO app.summary VALUES (7, 0)");
    let logged: i64 = one(&mut c, "SELECT n FROM app.summary_log");
    assert_eq!(logged, 7, "the INSTEAD OF trigger");
    let leftovers = rows(&mut c, "SELECT attname::text FROM pg_attribute WHERE attname::text LIKE 'pg_migrate%'");
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn views_are_replaced_in_place_on_a_rename_while_clients_run() {
    carry_views(true);
}

#[test]
fn views_are_recreated_on_a_type_change_while_clients_run() {
    carry_views(false);
}

// ---------------------------------------------------------------------------------------------
// Row-level security policies
// ---------------------------------------------------------------------------------------------

fn policies(c: &mut Client) -> Vec<String> {
    rows(c, "SELECT format('%s.%s %s %s using=%s check=%s', schemaname, policyname, cmd, roles, qual, with_check) FROM pg_policies ORDER BY 1")
}

#[test]
fn policies_are_rewritten_to_the_new_column() {
    let (pg, mut admin, mut c) = cast();
    exec(&mut admin, "CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; GRANT USAGE ON SCHEMA app TO alice, bob");
    exec(
        &mut c,
        "CREATE TABLE app.docs (id int PRIMARY KEY, owner_name name NOT NULL DEFAULT current_user, body text);
         INSERT INTO app.docs VALUES (1, 'alice', 'a1'), (2, 'alice', 'a2'), (3, 'alice', 'a3'), (4, 'bob', 'b1'), (5, 'bob', 'b2');
         ALTER TABLE app.docs ENABLE ROW LEVEL SECURITY;
         ALTER TABLE app.docs FORCE ROW LEVEL SECURITY;
         CREATE POLICY own_rows ON app.docs FOR SELECT TO alice, bob USING (owner_name = current_user);
         CREATE POLICY own_inserts ON app.docs FOR INSERT TO alice, bob WITH CHECK (owner_name = current_user AND body IS NOT NULL);
         CREATE POLICY owner_all ON app.docs TO deployer USING (true) WITH CHECK (true);
         CREATE TABLE app.comments (id int PRIMARY KEY, doc_id int NOT NULL, body text);
         INSERT INTO app.comments SELECT g, 1 + g % 5, 'c' || g FROM generate_series(1, 10) g;
         ALTER TABLE app.comments ENABLE ROW LEVEL SECURITY;
         CREATE POLICY on_own_docs ON app.comments FOR SELECT TO alice, bob
             USING (EXISTS (SELECT FROM app.docs d WHERE d.id = doc_id AND d.owner_name = current_user));
         GRANT SELECT, INSERT ON app.docs, app.comments TO alice, bob;",
    );
    let seen = |pg: &Cluster, who: &str| -> String {
        let mut s = pg.connect_as("app", who);
        one(&mut s, "SELECT (SELECT string_agg(body, ',' ORDER BY id) FROM app.docs) || ' / ' || (SELECT count(*) FROM app.comments)")
    };
    assert_eq!(seen(&pg, "alice"), "a1,a2,a3 / 6");
    assert_eq!(seen(&pg, "bob"), "b1,b2 / 4");
    let before = policies(&mut c);

    let change: i64 = one(&mut c, "SELECT migrate.expand_column('app.docs', 'owner_name', new_name => 'owner_role', backfill => '{\"sleep_ms\": 0}')");
    wait_backfill(&mut admin, change);
    let plan: String = one(&mut c, &format!("SELECT migrate.contract_plan({change})"));
    assert!(
        plan.contains(r#"rewrite policies "on_own_docs" on app.comments, "own_inserts" on app.docs, "own_rows" on app.docs to use the new column"#),
        "{plan}"
    );
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    wait_job(&mut c, job, 120);
    assert_eq!(phase(&mut admin, change), "contracted");

    let after = policies(&mut c);
    let expected: Vec<String> = before.iter().map(|p| p.replace("owner_name", "owner_role")).collect();
    assert_eq!(after, expected, "the same policies, commands and roles, on the new column");
    assert!(after.iter().any(|p| p.contains("own_rows SELECT {alice,bob} using=(owner_role = CURRENT_USER)")), "{after:#?}");
    let forced: bool = one(&mut c, "SELECT relforcerowsecurity AND relrowsecurity FROM pg_class WHERE oid = 'app.docs'::regclass");
    assert!(forced);
    assert_eq!(seen(&pg, "alice"), "a1,a2,a3 / 6");
    assert_eq!(seen(&pg, "bob"), "b1,b2 / 4");
    let mut alice = pg.connect_as("app", "alice");
    exec(&mut alice, "INSERT INTO app.docs (id, body) VALUES (6, 'a4')");
    let e = fails(&mut alice, "INSERT INTO app.docs (id, owner_role, body) VALUES (7, 'bob', 'forged')");
    assert_eq!(e.0, "42501", "WITH CHECK on the new column: {e:?}");
    assert_eq!(seen(&pg, "alice"), "a1,a2,a3,a4 / 6");
    assert_eq!(seen(&pg, "bob"), "b1,b2 / 4");
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

const TABLE: &str = "
CREATE TABLE app.t (id int PRIMARY KEY, amount numeric NOT NULL);
INSERT INTO app.t SELECT g, g FROM generate_series(1, 100) g;
CREATE VIEW app.v AS SELECT id, amount FROM app.t;
";

/// contract fails with `sqlstate` and an error naming `names`, and changes nothing; contract_plan
/// says it cannot contract (unless `rehearsed`: found only by contract's rehearsal of the swap,
/// which the read-only contract_plan cannot do).
fn refused(c: &mut Client, admin: &mut Client, change: i64, sqlstate: &str, names: &[&str], rehearsed: bool) -> (String, String, String, String) {
    let before = state(admin);
    let e = fails(c, &format!("SELECT migrate.contract({change})"));
    assert_eq!(e.0, sqlstate, "{e:?}");
    let said = format!("{} {} {}", e.1, e.2, e.3);
    for n in names {
        assert!(said.contains(n), "the error names {n}: {e:?}");
    }
    assert!(e.3.starts_with("Nothing was changed."), "{e:?}");
    assert_eq!(state(admin), before, "nothing changed");
    assert_eq!(phase(admin, change), "open");
    let plan: String = one(c, &format!("SELECT migrate.contract_plan({change})"));
    assert_eq!(plan.starts_with("cannot contract:"), !rehearsed, "{plan}");
    e
}

#[test]
fn refused_materialized_views_and_functions_built_on_a_recreated_view() {
    let (_pg, mut admin, mut c) = cast();
    exec(&mut c, TABLE);
    exec(&mut c, "CREATE MATERIALIZED VIEW app.totals AS SELECT sum(amount) AS s FROM app.t");
    let change: i64 = one(&mut c, "SELECT migrate.expand_column('app.t', 'amount', new_type => 'bigint', backfill => '{\"sleep_ms\": 0}')");
    wait_backfill(&mut admin, change);
    let e = refused(&mut c, &mut admin, change, "2BP01", &["materialized view app.totals"], false);
    assert!(e.3.contains("DROP MATERIALIZED VIEW"), "the hint gives the plan: {e:?}");
    exec(&mut c, "DROP MATERIALIZED VIEW app.totals");
    // Through a view that the type change makes contract recreate.
    exec(&mut c, "CREATE MATERIALIZED VIEW app.ids AS SELECT id FROM app.v");
    refused(&mut c, &mut admin, change, "2BP01", &["materialized view app.ids"], false);
    exec(&mut c, "DROP MATERIALIZED VIEW app.ids");
    exec(&mut c, "CREATE FUNCTION app.biggest() RETURNS numeric LANGUAGE sql BEGIN ATOMIC SELECT max(amount) FROM app.v; END");
    refused(&mut c, &mut admin, change, "2BP01", &["function app.biggest()"], false);
    exec(&mut c, "DROP FUNCTION app.biggest()");
    // With those gone, the same change contracts and carries the view.
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    wait_job(&mut c, job, 120);
    let sum: String = one(&mut c, "SELECT sum(amount)::text || ' ' || pg_typeof(sum(amount)) FROM app.v");
    assert_eq!(sum, "5050 numeric");
    let t: String = one(&mut c, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'app.v'::regclass AND attname = 'amount'");
    assert_eq!(t, "bigint");
}

#[test]
fn refused_view_of_a_role_the_change_owner_cannot_act_for() {
    let (_pg, mut admin, mut c) = cast();
    exec(&mut c, TABLE);
    exec(&mut admin, "CREATE VIEW app.theirs AS SELECT id, amount FROM app.t WHERE id < 10; ALTER VIEW app.theirs OWNER TO other");
    let change: i64 = one(&mut c, "SELECT migrate.expand_column('app.t', 'amount', new_name => 'total', backfill => '{\"sleep_ms\": 0}')");
    wait_backfill(&mut admin, change);
    let e = refused(&mut c, &mut admin, change, "42501", &["app.theirs", "other"], false);
    assert!(e.2.contains("which the change's owner cannot act for"), "{e:?}");
    // Once deployer may act for other: the swap writes the view as other, who needs CREATE on
    // the schema for that.
    exec(&mut admin, "GRANT other TO deployer");
    let e = refused(&mut c, &mut admin, change, "42501", &["app.theirs", "no CREATE privilege"], false);
    assert!(e.2.contains("owner other"), "{e:?}");
    exec(&mut admin, "GRANT CREATE ON SCHEMA app TO other");
    // A policy on another role's table that uses the column through a subquery: refused while
    // deployer cannot act for that role.
    exec(&mut admin, "CREATE ROLE stranger; CREATE TABLE app.others (id int); ALTER TABLE app.others OWNER TO stranger;
                      CREATE POLICY peek ON app.others USING (EXISTS (SELECT FROM app.t WHERE t.amount = others.id))");
    refused(&mut c, &mut admin, change, "42501", &["policy \"peek\" on app.others"], false);
    exec(&mut admin, "ALTER TABLE app.others OWNER TO other");
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    wait_job(&mut c, job, 120);
    let sum: String = one(&mut c, "SELECT sum(total)::text FROM app.t");
    assert_eq!(sum, "5050");
    // Written again by their owners: other's view is still other's, and uses the new column.
    let theirs: String = one(&mut admin, "SELECT relowner::regrole || ' ' || pg_get_viewdef(oid) FROM pg_class WHERE oid = 'app.theirs'::regclass");
    assert!(theirs.starts_with("other ") && theirs.contains("total AS amount"), "{theirs}");
    let peek: String = one(&mut admin, "SELECT qual FROM pg_policies WHERE policyname = 'peek'");
    assert!(peek.contains("(t.total = (others.id)::numeric)") && !peek.contains("amount"), "{peek}");
}

#[test]
fn refused_view_that_cannot_be_created_on_the_new_type() {
    let (_pg, mut admin, mut c) = cast();
    exec(
        &mut c,
        "CREATE TABLE app.codes (id int PRIMARY KEY, code text NOT NULL);
         INSERT INTO app.codes SELECT g, g::text FROM generate_series(1, 100) g;
         CREATE VIEW app.plain AS SELECT id, code FROM app.codes;
         CREATE VIEW app.lowered AS SELECT id, lower(code) AS code FROM app.codes;",
    );
    let change: i64 = one(&mut c, "SELECT migrate.expand_column('app.codes', 'code', new_type => 'int', up => 'code::int', backfill => '{\"sleep_ms\": 0}')");
    wait_backfill(&mut admin, change);
    // Found when contract is called (the swap is rehearsed and undone), not at the job's end.
    let e = refused(&mut c, &mut admin, change, "42883", &["view app.lowered", "lower(integer)"], true);
    assert!(e.1.starts_with("cannot contract: view app.lowered cannot be carried to column \"code\""), "{e:?}");
    let jobs: i64 = one(&mut admin, "SELECT count(*) FROM migrate.jobs");
    assert_eq!(jobs, 1, "only the backfill: no contract job was queued");
    assert!(e.3.contains("drop it"), "the hint gives the plan: {e:?}");
    // What the hint says: drop it, contract, create it again for the new type.
    exec(&mut c, "DROP VIEW app.lowered");
    // The same for a policy.
    exec(&mut c, "CREATE POLICY not_x ON app.codes USING (lower(code) <> 'x')");
    let e = refused(&mut c, &mut admin, change, "42883", &["policy \"not_x\" on app.codes", "lower(integer)"], true);
    assert!(e.3.contains("ALTER POLICY"), "{e:?}");
    exec(&mut c, "DROP POLICY not_x ON app.codes");
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    wait_job(&mut c, job, 120);
    exec(&mut c, "CREATE VIEW app.lowered AS SELECT id, lower(code::text) AS code FROM app.codes");
    let got: String = one(&mut c, "SELECT string_agg(code, ',' ORDER BY id) FROM app.lowered WHERE id <= 3");
    assert_eq!(got, "1,2,3");
    let sum: i64 = one(&mut c, "SELECT sum(code)::bigint FROM app.plain");
    assert_eq!(sum, 5050);
}

#[test]
fn refused_view_that_joins_using_the_column() {
    let (_pg, mut admin, mut c) = cast();
    exec(
        &mut c,
        "CREATE TABLE app.t (id int PRIMARY KEY, amount numeric NOT NULL);
         INSERT INTO app.t SELECT g, g FROM generate_series(1, 100) g;
         CREATE TABLE app.u (id int, amount numeric);
         INSERT INTO app.u SELECT g, g FROM generate_series(1, 10) g;
         CREATE VIEW app.joined AS SELECT id, amount FROM app.t JOIN app.u USING (id, amount);",
    );
    let change: i64 = one(&mut c, "SELECT migrate.expand_column('app.t', 'amount', new_name => 'total', backfill => '{\"sleep_ms\": 0}')");
    wait_backfill(&mut admin, change);
    let e = refused(&mut c, &mut admin, change, "0A000", &["view app.joined", "USING"], true);
    assert!(e.3.contains("ON instead of USING"), "{e:?}");
    // Written with ON, it is carried.
    exec(&mut c, "CREATE OR REPLACE VIEW app.joined AS SELECT t.id, t.amount FROM app.t JOIN app.u ON u.id = t.id AND u.amount = t.amount");
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    wait_job(&mut c, job, 120);
    let n: i64 = one(&mut c, "SELECT count(*) FROM app.joined");
    assert_eq!(n, 10);
    let def: String = one(&mut c, "SELECT pg_get_viewdef('app.joined'::regclass)");
    assert!(def.contains("t.total AS amount"), "{def}");
}

// ---------------------------------------------------------------------------------------------
// A partitioned table: views and policies on the parent and on a partition
// ---------------------------------------------------------------------------------------------

#[test]
fn views_and_policies_on_a_partitioned_table_and_its_partitions() {
    let (pg, mut admin, mut c) = cast();
    exec(
        &mut c,
        "CREATE TABLE app.ev (id bigint, kind text NOT NULL, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE app.ev_2024 PARTITION OF app.ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE app.ev_2025 PARTITION OF app.ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO app.ev SELECT g, 'k' || (g % 3), date '2024-01-01' + (g % 700) FROM generate_series(1, 3000) g;
         CREATE VIEW app.kinds AS SELECT kind, count(*) AS n FROM app.ev GROUP BY kind;
         CREATE VIEW app.kinds_2024 AS SELECT id, kind FROM app.ev_2024 WHERE kind <> 'k0';
         ALTER TABLE app.ev_2025 ENABLE ROW LEVEL SECURITY;
         CREATE POLICY not_k1 ON app.ev_2025 TO reader USING (kind <> 'k1');
         GRANT SELECT ON app.ev_2025 TO reader;",
    );
    let before: Vec<String> = rows(&mut c, "SELECT kind || ' ' || n FROM app.kinds ORDER BY 1");
    let before_2024: i64 = one(&mut c, "SELECT count(*) FROM app.kinds_2024");
    // A rename, then a type change of the renamed column.
    for (expand, column) in [
        ("SELECT migrate.expand_column('app.ev', 'kind', new_name => 'event_kind', backfill => '{\"sleep_ms\": 0}')", "event_kind"),
        ("SELECT migrate.expand_column('app.ev', 'event_kind', new_type => 'varchar(10)', backfill => '{\"sleep_ms\": 0}')", "event_kind"),
    ] {
        let change: i64 = one(&mut c, expand);
        wait_backfill(&mut admin, change);
        let plan: String = one(&mut c, &format!("SELECT migrate.contract_plan({change})"));
        assert!(plan.contains("app.kinds_2024") && plan.contains(r#""not_k1" on app.ev_2025"#), "{plan}");
        let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
        wait_job(&mut c, job, 120);
        assert_eq!(phase(&mut admin, change), "contracted");
        assert_eq!(rows(&mut c, "SELECT kind || ' ' || n FROM app.kinds ORDER BY 1"), before);
        let n: i64 = one(&mut c, "SELECT count(*) FROM app.kinds_2024");
        assert_eq!(n, before_2024);
        for partition in ["app.ev_2024", "app.ev_2025"] {
            let columns = rows(&mut c, &format!("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '{partition}'::regclass AND attnum > 0 AND NOT attisdropped"));
            assert_eq!(columns, vec![format!("id,at,{column}")], "{partition}");
        }
    }
    let def: String = one(&mut c, "SELECT pg_get_viewdef('app.kinds_2024'::regclass)");
    assert!(def.contains("event_kind") && !def.contains("pg_migrate"), "{def}");
    let t: String = one(&mut c, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'app.kinds'::regclass AND attname = 'kind'");
    assert_eq!(t, "character varying(10)", "the view was recreated on the new type");
    let qual: String = one(&mut c, "SELECT qual FROM pg_policies WHERE policyname = 'not_k1'");
    assert!(qual.contains("event_kind"), "{qual}");
    let mut reader = pg.connect_as("app", "reader");
    let seen: i64 = one(&mut reader, "SELECT count(*) FROM app.ev_2025 WHERE event_kind = 'k1'");
    assert_eq!(seen, 0, "the policy on the partition still hides k1 rows");
    let all: i64 = one(&mut reader, "SELECT count(*) FROM app.ev_2025");
    assert!(all > 0);
}
