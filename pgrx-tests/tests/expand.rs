//! Expand / contract column changes on a real server: the sync trigger under concurrent
//! application traffic through both columns, lossy type changes, table shapes (composite and no
//! primary key, partitions, identity columns, user triggers, quoted names), abort and rollback
//! restoring the exact schema, contract rebuilding constraints and indexes on the new column,
//! refused input, and the one-shot operations (add_column, create_index, drop_column,
//! add_enum_value).

use pg_migrate_integration::{app, exec, fails, one, pg_major, Client, Cluster};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------



fn backfill_job(c: &mut Client, change: i64) -> i64 {
    let job: Option<i64> = c
        .query_one("SELECT backfill_job FROM migrate.all_changes WHERE change = $1", &[&change])
        .unwrap_or_else(|e| panic!("change {change}: {e}"))
        .get(0);
    job.unwrap_or_else(|| panic!("change {change} has no backfill job"))
}

fn phase(c: &mut Client, change: i64) -> String {
    c.query_one("SELECT phase FROM migrate.all_changes WHERE change = $1", &[&change])
        .unwrap_or_else(|e| panic!("phase of change {change}: {e}"))
        .get(0)
}

fn job_state(c: &mut Client, job: i64) -> String {
    c.query_one("SELECT state FROM migrate.jobs WHERE job = $1", &[&job]).unwrap_or_else(|e| panic!("job {job}: {e}")).get(0)
}

/// CALL migrate.wait with a time limit; a failure shows the job's state.
fn wait_job(c: &mut Client, job: i64, secs: u32) {
    if let Err(e) = c.batch_execute(&format!("CALL migrate.wait({job}, '{secs} seconds')")) {
        let state = c
            .query_one("SELECT state || ', last_error ' || coalesce(last_error, '-') FROM migrate.jobs WHERE job = $1", &[&job])
            .map(|r| r.get::<_, String>(0));
        panic!("CALL migrate.wait({job}): {e} {:?}; job: {state:?}", e.as_db_error().map(|d| (d.code().code(), d.message())));
    }
}

fn wait_backfill(c: &mut Client, change: i64) {
    let job = backfill_job(c, change);
    wait_job(c, job, 120);
    assert_eq!(job_state(c, job), "done", "backfill job {job} of change {change}");
}

/// migrate.contract(change), then CALL migrate.wait on its job.
fn contract(c: &mut Client, change: i64) -> i64 {
    let job: i64 = c
        .query_one("SELECT migrate.contract($1)", &[&change])
        .unwrap_or_else(|e| panic!("contract({change}): {e} {:?}", e.as_db_error().map(|d| (d.code().code(), d.message(), d.detail()))))
        .get(0);
    wait_job(c, job, 120);
    job
}

/// Runs an expand (or other change) call and returns its change id.
fn expand(c: &mut Client, sql: &str) -> i64 {
    one(c, sql)
}

/// Waits for the change's backfill, contracts, waits: the change ends contracted with no sync
/// trigger or function left.
fn full_cycle(c: &mut Client, change: i64) {
    wait_backfill(c, change);
    contract(c, change);
    assert_eq!(phase(c, change), "contracted");
    assert_eq!(sync_leftovers(c), 0, "the sync trigger and function are gone");
}

/// The table's columns in order: "name type" plus " NOT NULL" and " DEFAULT …".
fn columns(c: &mut Client, table: &str) -> Vec<String> {
    c.query(
        "SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
           FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
        &[&table],
    )
    .unwrap_or_else(|e| panic!("columns of {table}: {e}"))
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// A catalog description of the table: attributes (number, name, type, not null, default,
/// identity, generated), constraints, indexes (with validity) and triggers.
fn describe(c: &mut Client, table: &str) -> Vec<String> {
    c.query(
        "SELECT line FROM (
           SELECT format('column %s %s %s notnull=%s default=%s identity=%s generated=%s', a.attnum, a.attname,
                         format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
                         a.attidentity, a.attgenerated) AS line
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
           UNION ALL
           SELECT format('constraint %s %s validated=%s', conname, pg_get_constraintdef(oid), convalidated)
             FROM pg_constraint WHERE conrelid = $1::text::regclass
           UNION ALL
           SELECT format('index %s valid=%s ready=%s', pg_get_indexdef(indexrelid), indisvalid, indisready)
             FROM pg_index WHERE indrelid = $1::text::regclass
           UNION ALL
           SELECT format('trigger %s %s', tgname, pg_get_triggerdef(oid))
             FROM pg_trigger WHERE tgrelid = $1::text::regclass
         ) s ORDER BY line",
        &[&table],
    )
    .unwrap_or_else(|e| panic!("describe {table}: {e}"))
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Sync triggers (one or more per change) and functions left anywhere in the database.
fn sync_leftovers(c: &mut Client) -> i64 {
    one(
        c,
        r"SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zz\_migrate\_sync\_%')
               + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'migrate\_sync\_%')",
    )
}

fn sync_trigger_count(c: &mut Client, table: &str) -> i64 {
    c.query_one(r"SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::text::regclass AND tgname LIKE 'zz\_migrate\_sync\_%'", &[&table])
        .unwrap()
        .get(0)
}

fn changes_count(c: &mut Client) -> i64 {
    one(c, "SELECT count(*) FROM migrate.all_changes")
}

/// Rows of a query as one string per row (all columns cast to text by the query).
fn rows(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).iter().map(|r| r.get::<_, String>(0)).collect()
}

/// A small deterministic pseudo-random sequence (no extra crates).
fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

// ---------------------------------------------------------------------------------------------
// 1. Concurrent clients through both columns, 1M rows
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct ClientReport {
    name: String,
    statements: u64,
    errors: u64,
    first_errors: Vec<String>,
    slowest: Duration,
    slowest_sql: String,
    /// id → the last value written (v: amount = v / 4.0 through the old column, amount_int = v
    /// through the new one)
    last: HashMap<i64, i64>,
}

const ROWS: i64 = 1_000_000;

/// Client `k` (0..4) owns the rows whose (id - 1) % 4 = k, and inserts ids from 10M * (k + 1).
fn spawn_client(pg: &Cluster, k: i64, via_new: bool, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) -> std::thread::JoinHandle<ClientReport> {
    let mut c = pg.connect("app");
    std::thread::spawn(move || {
        let name = format!("client {k} via {}", if via_new { "amount_int" } else { "amount" });
        let mut r = ClientReport { name, ..Default::default() };
        c.batch_execute("SET lock_timeout = '2s'").unwrap();
        let (col, value) = if via_new { ("amount_int", "$1::bigint::int") } else { ("amount", "$1::bigint / 4.0") };
        let update = format!("UPDATE t SET {col} = {value} WHERE id = $2");
        let insert = format!("INSERT INTO t (id, {col}, note) VALUES ($2, {value}, $3)");
        let note = r.name.clone();
        let mut seed = 1000 + k as u64;
        let mut next_insert = 10_000_000 * (k + 1);
        while !stop.load(Ordering::Relaxed) {
            let v = (next(&mut seed) % 4_000_000) as i64 - 2_000_000;
            let inserting = next(&mut seed) % 5 == 0;
            let t0 = Instant::now();
            let (sql, id, res) = if inserting {
                let id = next_insert;
                next_insert += 1;
                (&insert, id, c.execute(insert.as_str(), &[&v, &id, &note]))
            } else {
                let id = (next(&mut seed) % (ROWS as u64 / 4)) as i64 * 4 + k + 1;
                (&update, id, c.execute(update.as_str(), &[&v, &id]))
            };
            let took = t0.elapsed();
            r.statements += 1;
            count.fetch_add(1, Ordering::Relaxed);
            if took > r.slowest {
                r.slowest = took;
                r.slowest_sql = format!("{sql} (id {id})");
            }
            match res {
                Ok(1) => {
                    r.last.insert(id, v);
                }
                Ok(n) => {
                    r.errors += 1;
                    if r.first_errors.len() < 10 {
                        r.first_errors.push(format!("{sql} (id {id}): {n} rows"));
                    }
                }
                Err(e) => {
                    r.errors += 1;
                    if r.first_errors.len() < 10 {
                        r.first_errors.push(format!(
                            "{sql} (id {id}) after {took:?}: {e} {:?}",
                            e.as_db_error().map(|d| (d.code().code().to_string(), d.message().to_string()))
                        ));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        r
    })
}

fn check_client(r: &ClientReport) {
    eprintln!("{}: {} statements, slowest {:?}: {}", r.name, r.statements, r.slowest, r.slowest_sql);
    assert_eq!(r.errors, 0, "{}: {} failed statements, first: {:#?}", r.name, r.errors, r.first_errors);
    assert!(
        r.slowest < Duration::from_secs(3),
        "{}: a statement took {:?} (> lock_timeout 2 s + 1 s): {}",
        r.name,
        r.slowest,
        r.slowest_sql
    );
    assert!(r.statements > 0, "{} ran", r.name);
}

#[test]
fn concurrent_clients_expand_backfill_contract_1m_rows() {
    let started = Instant::now();
    let (pg, mut c) = app();
    exec(
        &mut c,
        &format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, amount numeric, note text);
             INSERT INTO t SELECT g, g / 4.0, 'n' || g FROM generate_series(1, {ROWS}) g;"
        ),
    );
    exec(&mut c, "VACUUM ANALYZE t");
    eprintln!("loaded 1M rows after {:?}", started.elapsed());

    let stop_old = Arc::new(AtomicBool::new(false));
    let stop_new = Arc::new(AtomicBool::new(false));
    let old_count = Arc::new(AtomicU64::new(0));
    let new_count = Arc::new(AtomicU64::new(0));
    // The clients through the old column run before, during and after the expand.
    let old_clients: Vec<_> = (0..2).map(|k| spawn_client(&pg, k, false, stop_old.clone(), old_count.clone())).collect();
    std::thread::sleep(Duration::from_millis(300));

    let change: i64 = expand(
        &mut c,
        r#"SELECT migrate.expand_column('t', 'amount', new_name => 'amount_int', new_type => 'integer',
                                         up => 'round(amount)::int', down => 'amount_int::numeric',
                                         backfill => '{"sleep_ms": 0}')"#,
    );
    let new_clients: Vec<_> = (2..4).map(|k| spawn_client(&pg, k, true, stop_new.clone(), new_count.clone())).collect();
    assert!(sync_trigger_count(&mut c, "t") > 0);

    let bf = backfill_job(&mut c, change);
    let (old_before, new_before) = (old_count.load(Ordering::Relaxed), new_count.load(Ordering::Relaxed));
    wait_job(&mut c, bf, 150);
    assert_eq!(job_state(&mut c, bf), "done");
    eprintln!("backfill done after {:?}", started.elapsed());
    assert!(
        old_count.load(Ordering::Relaxed) > old_before && new_count.load(Ordering::Relaxed) > new_before,
        "the clients wrote during the backfill"
    );
    std::thread::sleep(Duration::from_millis(300));

    // The clients through the old column stop right before the contract.
    stop_old.store(true, Ordering::Relaxed);
    let old_reports: Vec<ClientReport> = old_clients.into_iter().map(|h| h.join().expect("old client thread")).collect();
    for r in &old_reports {
        check_client(r);
    }
    // While open, every row version keeps both columns in step.
    let out_of_step: i64 = one(&mut c, "SELECT count(*) FROM t WHERE amount_int IS DISTINCT FROM round(amount)::int");
    assert_eq!(out_of_step, 0, "rows whose amount_int is not round(amount) before the contract");

    let new_at_contract = new_count.load(Ordering::Relaxed);
    let job = contract(&mut c, change);
    assert_eq!(job_state(&mut c, job), "done");
    eprintln!("contract done after {:?}", started.elapsed());
    let new_during_contract = new_count.load(Ordering::Relaxed) - new_at_contract;
    std::thread::sleep(Duration::from_millis(300));
    stop_new.store(true, Ordering::Relaxed);
    let new_reports: Vec<ClientReport> = new_clients.into_iter().map(|h| h.join().expect("new client thread")).collect();
    for r in &new_reports {
        check_client(r);
    }
    assert!(new_during_contract > 0, "the clients through amount_int wrote during the contract");

    // Schema: the old column, the trigger and the function are gone.
    assert_eq!(columns(&mut c, "t"), vec!["id bigint NOT NULL", "note text", "amount_int integer"]);
    assert_eq!(sync_leftovers(&mut c), 0, "the sync trigger and function are gone");
    assert_eq!(phase(&mut c, change), "contracted");
    let pk: String = one(&mut c, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 't'::regclass AND contype = 'p'");
    assert_eq!(pk, "PRIMARY KEY (id)");

    // Data: each row holds the last value its client wrote, or the original one.
    let (mut ids, mut vias, mut vs) = (Vec::new(), Vec::new(), Vec::new());
    let mut inserted = 0i64;
    for r in old_reports.iter().chain(new_reports.iter()) {
        let via = if r.name.contains("amount_int") { "new" } else { "old" };
        for (id, v) in &r.last {
            ids.push(*id);
            vias.push(via.to_string());
            vs.push(*v);
            if *id > ROWS {
                inserted += 1;
            }
        }
    }
    exec(&mut c, "CREATE TABLE expected (id bigint PRIMARY KEY, via text NOT NULL, v bigint NOT NULL)");
    c.execute("INSERT INTO expected SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])", &[&ids, &vias, &vs])
        .unwrap();
    let total: i64 = one(&mut c, "SELECT count(*) FROM t");
    assert_eq!(total, ROWS + inserted, "every insert is there, no row lost");
    let missing: i64 = one(&mut c, "SELECT count(*) FROM expected e WHERE NOT EXISTS (SELECT FROM t WHERE t.id = e.id)");
    assert_eq!(missing, 0);
    let wrong: Vec<String> = rows(
        &mut c,
        "SELECT format('id %s via %s v %s: amount_int %s, expected %s', t.id, e.via, e.v, t.amount_int, x.want)
           FROM t LEFT JOIN expected e USING (id)
          CROSS JOIN LATERAL (SELECT CASE WHEN e.via = 'old' THEN round(e.v / 4.0)::int
                                          WHEN e.via = 'new' THEN e.v::int
                                          ELSE round(t.id / 4.0)::int END AS want) x
          WHERE t.amount_int IS DISTINCT FROM x.want
          ORDER BY t.id LIMIT 20",
    );
    assert!(wrong.is_empty(), "rows with a wrong amount_int after the contract:\n{}", wrong.join("\n"));
    let written: i64 = one(&mut c, "SELECT count(*) FROM expected");
    eprintln!(
        "clients wrote {written} distinct rows ({} statements); total {:?}",
        old_reports.iter().chain(new_reports.iter()).map(|r| r.statements).sum::<u64>(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Lossy type change
// ---------------------------------------------------------------------------------------------

#[test]
fn lossy_type_change_never_rewrites_old_column() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE t (id int PRIMARY KEY, amount numeric, note text);
         INSERT INTO t VALUES (1, '1.40', 'a'), (2, '2.60', 'b'), (3, '-0.5', 'c'), (4, '2.5', 'd'), (5, NULL, 'e'), (6, '7.000', 'f');
         INSERT INTO t SELECT g, (g || '.' || (g % 10) || '0')::numeric, 'x' FROM generate_series(7, 20000) g;",
    );
    let digest = "SELECT md5(string_agg(coalesce(amount::text, 'NULL'), ',' ORDER BY id)) FROM t";
    let before: String = one(&mut c, digest);

    let change = expand(&mut c, "SELECT migrate.expand_column('t', 'amount', new_type => 'integer')");
    wait_backfill(&mut c, change);
    let after: String = one(&mut c, digest);
    assert_eq!(after, before, "the old column is byte-identical after the backfill");
    let text: Vec<String> = rows(&mut c, "SELECT id || ' ' || coalesce(amount::text, 'NULL') || ' ' || coalesce(amount_new::text, 'NULL') FROM t WHERE id <= 6 ORDER BY id");
    assert_eq!(text, vec!["1 1.40 1", "2 2.60 3", "3 -0.5 -1", "4 2.5 3", "5 NULL NULL", "6 7.000 7"]);
    let wrong: i64 = one(&mut c, "SELECT count(*) FROM t WHERE amount_new IS DISTINCT FROM amount::integer");
    assert_eq!(wrong, 0);

    // An update of another column does not touch either value (no down(up(old)) write-back).
    exec(&mut c, "UPDATE t SET note = 'changed' WHERE id <= 6");
    let after_update: String = one(&mut c, digest);
    assert_eq!(after_update, before, "updating other columns leaves the old column's text alone");

    // Contract: the new column takes the old one's name, with the rounded values.
    contract(&mut c, change);
    assert_eq!(phase(&mut c, change), "contracted");
    assert_eq!(columns(&mut c, "t"), vec!["id integer NOT NULL", "note text", "amount integer"]);
    let text: Vec<String> = rows(&mut c, "SELECT id || ' ' || coalesce(amount::text, 'NULL') FROM t WHERE id <= 6 ORDER BY id");
    assert_eq!(text, vec!["1 1", "2 3", "3 -1", "4 3", "5 NULL", "6 7"]);
    assert_eq!(sync_leftovers(&mut c), 0);
}

// ---------------------------------------------------------------------------------------------
// 3. Shapes
// ---------------------------------------------------------------------------------------------

#[test]
fn shape_composite_primary_key() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE cp (a int, b int, v numeric, PRIMARY KEY (a, b));
         INSERT INTO cp SELECT g % 100, g / 100, g + 0.4 FROM generate_series(0, 9999) g;",
    );
    let change = expand(&mut c, "SELECT migrate.expand_column('cp', 'v', new_type => 'bigint', backfill => '{\"sleep_ms\": 0}')");
    exec(&mut c, "UPDATE cp SET v = 0.6 WHERE a = 1 AND b = 1; INSERT INTO cp (a, b, v_new) VALUES (1000, 1, 42)");
    let synced: Vec<String> = rows(&mut c, "SELECT v::text || '/' || v_new FROM cp WHERE (a, b) IN ((1, 1), (1000, 1)) ORDER BY a");
    assert_eq!(synced, vec!["0.6/1", "42/42"]);
    full_cycle(&mut c, change);
    assert_eq!(columns(&mut c, "cp"), vec!["a integer NOT NULL", "b integer NOT NULL", "v bigint"]);
    let pk: String = one(&mut c, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'cp'::regclass AND contype = 'p'");
    assert_eq!(pk, "PRIMARY KEY (a, b)");
    let wrong: i64 = one(
        &mut c,
        "SELECT count(*) FROM cp WHERE v IS DISTINCT FROM CASE WHEN (a, b) = (1, 1) THEN 1 WHEN a = 1000 THEN 42 ELSE round(a + b * 100 + 0.4) END",
    );
    assert_eq!(wrong, 0);
    let n: i64 = one(&mut c, "SELECT count(*) FROM cp");
    assert_eq!(n, 10_001);
}

#[test]
fn shape_no_primary_key() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE np (id int, v text);
         INSERT INTO np SELECT g, g::text FROM generate_series(1, 20000) g;",
    );
    let change = expand(&mut c, "SELECT migrate.expand_column('np', 'v', new_type => 'integer', backfill => '{\"sleep_ms\": 0}')");
    exec(&mut c, "UPDATE np SET v = '-7' WHERE id = 5; INSERT INTO np (id, v_new) VALUES (20001, 99); INSERT INTO np (id, v) VALUES (20002, '12')");
    let synced: Vec<String> = rows(&mut c, "SELECT id || ' ' || v || ' ' || v_new FROM np WHERE id IN (5, 20001, 20002) ORDER BY id");
    assert_eq!(synced, vec!["5 -7 -7", "20001 99 99", "20002 12 12"]);
    full_cycle(&mut c, change);
    assert_eq!(columns(&mut c, "np"), vec!["id integer", "v integer"]);
    let wrong: i64 = one(
        &mut c,
        "SELECT count(*) FROM np WHERE v IS DISTINCT FROM CASE id WHEN 5 THEN -7 WHEN 20001 THEN 99 WHEN 20002 THEN 12 ELSE id END",
    );
    assert_eq!(wrong, 0);
    let n: i64 = one(&mut c, "SELECT count(*) FROM np");
    assert_eq!(n, 20_002, "no row duplicated or lost");
}

#[test]
fn shape_partitioned_table() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE m (id int PRIMARY KEY, v numeric) PARTITION BY RANGE (id);
         CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (10000);
         CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (10000) TO (20000);
         INSERT INTO m SELECT g, g + 0.4 FROM generate_series(1, 19999) g;",
    );
    let change = expand(&mut c, "SELECT migrate.expand_column('m', 'v', new_type => 'integer', backfill => '{\"sleep_ms\": 0}')");
    exec(
        &mut c,
        "UPDATE m SET v = 5.6 WHERE id = 3; UPDATE m SET v_new = 8 WHERE id = 15000;
         INSERT INTO m (id, v) VALUES (0, 1.6);
         UPDATE m SET v_new = -3 WHERE id = 19999;",
    );
    let synced: Vec<String> = rows(&mut c, "SELECT id || ' ' || v || ' ' || v_new FROM m WHERE id IN (0, 3, 15000, 19999) ORDER BY id");
    assert_eq!(synced, vec!["0 1.6 2", "3 5.6 6", "15000 8 8", "19999 -3 -3"]);
    full_cycle(&mut c, change);
    for t in ["m", "m1", "m2"] {
        assert_eq!(columns(&mut c, t), vec!["id integer NOT NULL", "v integer"], "{t}");
        let triggers: i64 = c
            .query_one("SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::text::regclass AND NOT tgisinternal", &[&t])
            .unwrap()
            .get(0);
        assert_eq!(triggers, 0, "no trigger left on {t}");
    }
    let wrong: i64 = one(
        &mut c,
        "SELECT count(*) FROM m WHERE v IS DISTINCT FROM CASE id WHEN 0 THEN 2 WHEN 3 THEN 6 WHEN 15000 THEN 8 WHEN 19999 THEN -3 ELSE id END",
    );
    assert_eq!(wrong, 0);
    let per_partition: Vec<String> = rows(&mut c, "SELECT tableoid::regclass || ' ' || count(*) FROM m GROUP BY tableoid ORDER BY 1");
    assert_eq!(per_partition, vec!["m1 10000", "m2 10000"]);
    let pk: String = one(&mut c, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'm'::regclass AND contype = 'p'");
    assert_eq!(pk, "PRIMARY KEY (id)");
    // Still a partitioned table with its two partitions.
    let parts: Vec<String> = rows(&mut c, "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'm'::regclass ORDER BY 1");
    assert_eq!(parts, vec!["m1", "m2"]);
}

#[test]
fn shape_identity_column() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v numeric);
         INSERT INTO ident (v) SELECT g + 0.4 FROM generate_series(1, 5000) g;",
    );
    let change = expand(&mut c, "SELECT migrate.expand_column('ident', 'v', new_type => 'integer', backfill => '{\"sleep_ms\": 0}')");
    exec(&mut c, "INSERT INTO ident (v) VALUES (2.6); INSERT INTO ident (v_new) VALUES (9);");
    let synced: Vec<String> = rows(&mut c, "SELECT id || ' ' || v || ' ' || v_new FROM ident WHERE id > 5000 ORDER BY id");
    assert_eq!(synced, vec!["5001 2.6 3", "5002 9 9"]);
    full_cycle(&mut c, change);
    assert_eq!(columns(&mut c, "ident"), vec!["id bigint NOT NULL", "v integer"]);
    let identity: String = one(&mut c, "SELECT attidentity::text FROM pg_attribute WHERE attrelid = 'ident'::regclass AND attname = 'id'");
    assert_eq!(identity, "a", "id is still GENERATED ALWAYS AS IDENTITY");
    let id: i64 = one(&mut c, "INSERT INTO ident (v) VALUES (4) RETURNING id");
    assert_eq!(id, 5003, "the identity keeps counting");
    let err = fails(&mut c, "INSERT INTO ident (id, v) VALUES (1, 1)");
    assert_eq!(err.0, "428C9", "{err:?}");
    let wrong: i64 = one(&mut c, "SELECT count(*) FROM ident WHERE v IS DISTINCT FROM CASE id WHEN 5001 THEN 3 WHEN 5002 THEN 9 WHEN 5003 THEN 4 ELSE id END");
    assert_eq!(wrong, 0);
}

#[test]
fn shape_user_before_trigger_modifying_the_old_column() {
    let (pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE u (id int PRIMARY KEY, v text);
         CREATE FUNCTION upper_v() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.v := upper(NEW.v); RETURN NEW; END $$;
         CREATE TRIGGER a_upper BEFORE INSERT OR UPDATE ON u FOR EACH ROW EXECUTE FUNCTION upper_v();
         INSERT INTO u SELECT g, 'row' || g FROM generate_series(1, 5000) g;",
    );
    let change = expand(&mut c, "SELECT migrate.expand_column('u', 'v', new_type => 'varchar(100)', backfill => '{\"sleep_ms\": 0}')");
    exec(&mut c, "INSERT INTO u (id, v) VALUES (5001, 'abc'); UPDATE u SET v = 'def' WHERE id = 1;");
    let synced: Vec<String> = rows(&mut c, "SELECT id || ' ' || v || ' ' || v_new FROM u WHERE id IN (1, 5001) ORDER BY id");
    assert_eq!(synced, vec!["1 DEF DEF", "5001 ABC ABC"], "the synced value is the one the user's trigger made");
    full_cycle(&mut c, change);
    assert_eq!(columns(&mut c, "u"), vec!["id integer NOT NULL", "v character varying(100)"]);
    let wrong: i64 = one(
        &mut c,
        "SELECT count(*) FROM u WHERE v IS DISTINCT FROM CASE id WHEN 1 THEN 'DEF' WHEN 5001 THEN 'ABC' ELSE 'ROW' || id END",
    );
    assert_eq!(wrong, 0);
    // The user's trigger is still there and still works on the new column. In a new session:
    // this one's plpgsql function has a plan cached for v as text, which PostgreSQL refuses
    // once v is varchar (42804 "type of parameter … does not match that when preparing the
    // plan"), as after any ALTER COLUMN TYPE.
    let triggers = rows(&mut c, "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'u'::regclass AND NOT tgisinternal");
    assert_eq!(triggers, vec!["a_upper"]);
    let mut c = pg.connect("app");
    exec(&mut c, "INSERT INTO u (id, v) VALUES (5002, 'ghi')");
    let v: String = one(&mut c, "SELECT v::text FROM u WHERE id = 5002");
    assert_eq!(v, "GHI");
}

#[test]
fn shape_quoted_mixed_case_identifiers() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        r#"CREATE TABLE "MyTable" ("Id" int PRIMARY KEY, "Old Col" numeric);
           INSERT INTO "MyTable" SELECT g, g + 0.4 FROM generate_series(1, 5000) g;"#,
    );
    let change = expand(
        &mut c,
        r#"SELECT migrate.expand_column('"MyTable"', 'Old Col', new_name => 'New Col', new_type => 'bigint', backfill => '{"sleep_ms": 0}')"#,
    );
    exec(
        &mut c,
        r#"UPDATE "MyTable" SET "Old Col" = 4.6 WHERE "Id" = 1;
           UPDATE "MyTable" SET "New Col" = 77 WHERE "Id" = 2;
           INSERT INTO "MyTable" ("Id", "New Col") VALUES (5001, 12);
           INSERT INTO "MyTable" ("Id", "Old Col") VALUES (5002, 1.5);"#,
    );
    let synced: Vec<String> = rows(&mut c, r#"SELECT "Id" || ' ' || "Old Col" || ' ' || "New Col" FROM "MyTable" WHERE "Id" IN (1, 2, 5001, 5002) ORDER BY 1"#);
    assert_eq!(synced, vec!["1 4.6 5", "2 77 77", "5001 12 12", "5002 1.5 2"]);
    full_cycle(&mut c, change);
    assert_eq!(columns(&mut c, r#""MyTable""#), vec!["Id integer NOT NULL", "New Col bigint"]);
    let wrong: i64 = one(
        &mut c,
        r#"SELECT count(*) FROM "MyTable" WHERE "New Col" IS DISTINCT FROM CASE "Id" WHEN 1 THEN 5 WHEN 2 THEN 77 WHEN 5001 THEN 12 WHEN 5002 THEN 2 ELSE "Id" END"#,
    );
    assert_eq!(wrong, 0);
}

#[test]
fn shape_rename_only_both_names_see_each_others_writes() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE r (id int PRIMARY KEY, a text);
         INSERT INTO r SELECT g, 'v' || g FROM generate_series(1, 5000) g;",
    );
    let change = expand(&mut c, "SELECT migrate.expand_column('r', 'a', new_name => 'b', backfill => '{\"sleep_ms\": 0}')");
    wait_backfill(&mut c, change);
    let differ: i64 = one(&mut c, "SELECT count(*) FROM r WHERE a IS DISTINCT FROM b");
    assert_eq!(differ, 0, "after the backfill both names read the same values");
    exec(
        &mut c,
        "UPDATE r SET a = 'via a' WHERE id = 1;
         UPDATE r SET b = 'via b' WHERE id = 2;
         INSERT INTO r (id, a) VALUES (5001, 'new a');
         INSERT INTO r (id, b) VALUES (5002, 'new b');
         UPDATE r SET a = NULL WHERE id = 3;",
    );
    let through_b: Vec<String> = rows(&mut c, "SELECT id || ' ' || coalesce(b, 'NULL') FROM r WHERE id IN (1, 2, 3, 5001, 5002) ORDER BY id");
    assert_eq!(through_b, vec!["1 via a", "2 via b", "3 NULL", "5001 new a", "5002 new b"]);
    let through_a: Vec<String> = rows(&mut c, "SELECT id || ' ' || coalesce(a, 'NULL') FROM r WHERE id IN (1, 2, 3, 5001, 5002) ORDER BY id");
    assert_eq!(through_a, vec!["1 via a", "2 via b", "3 NULL", "5001 new a", "5002 new b"]);
    let differ: i64 = one(&mut c, "SELECT count(*) FROM r WHERE a IS DISTINCT FROM b");
    assert_eq!(differ, 0);
    contract(&mut c, change);
    assert_eq!(phase(&mut c, change), "contracted");
    assert_eq!(columns(&mut c, "r"), vec!["id integer NOT NULL", "b text"]);
    assert_eq!(sync_leftovers(&mut c), 0);
    let wrong: i64 = one(
        &mut c,
        "SELECT count(*) FROM r WHERE b IS DISTINCT FROM CASE id WHEN 1 THEN 'via a' WHEN 2 THEN 'via b' WHEN 3 THEN NULL
                                                     WHEN 5001 THEN 'new a' WHEN 5002 THEN 'new b' ELSE 'v' || id END",
    );
    assert_eq!(wrong, 0);
}

// ---------------------------------------------------------------------------------------------
// 4. Abort
// ---------------------------------------------------------------------------------------------

#[test]
fn abort_restores_exact_schema() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE t (id int PRIMARY KEY, qty int NOT NULL DEFAULT 7 CONSTRAINT qty_positive CHECK (qty > 0), other text);
         CREATE INDEX t_qty_idx ON t (qty);
         INSERT INTO t SELECT g, g FROM generate_series(1, 3000) g;",
    );
    let before = describe(&mut c, "t");
    let data = "SELECT md5(string_agg(id || ':' || qty || ':' || coalesce(other, ''), ',' ORDER BY id)) FROM t";
    let data_before: String = one(&mut c, data);

    let change = expand(&mut c, "SELECT migrate.expand_column('t', 'qty', new_type => 'bigint', backfill => '{\"manual\": true}')");
    let open = describe(&mut c, "t");
    assert_ne!(open, before, "the expand changed the schema");
    // While open, the default lives in the trigger: an insert without qty still gets 7 in both.
    exec(&mut c, "INSERT INTO t (id) VALUES (100000)");
    let both: String = one(&mut c, "SELECT qty || ' ' || qty_new FROM t WHERE id = 100000");
    assert_eq!(both, "7 7");
    exec(&mut c, "DELETE FROM t WHERE id = 100000");
    let bf = backfill_job(&mut c, change);

    let result: String = c.query_one("SELECT migrate.abort($1)", &[&change]).unwrap().get(0);
    assert_eq!(result, "aborted");
    let after = describe(&mut c, "t");
    assert_eq!(after, before, "the schema after the abort is exactly the one before");
    assert_eq!(sync_leftovers(&mut c), 0, "the trigger and function are gone");
    assert_eq!(phase(&mut c, change), "aborted");
    assert_eq!(job_state(&mut c, bf), "cancelled", "the backfill is cancelled");
    let data_after: String = one(&mut c, data);
    assert_eq!(data_after, data_before);
    // The restored default, NOT NULL and CHECK work.
    exec(&mut c, "INSERT INTO t (id) VALUES (100001)");
    let qty: i32 = one(&mut c, "SELECT qty FROM t WHERE id = 100001");
    assert_eq!(qty, 7);
    assert_eq!(fails(&mut c, "INSERT INTO t (id, qty) VALUES (100002, NULL)").0, "23502");
    assert_eq!(fails(&mut c, "INSERT INTO t (id, qty) VALUES (100003, -1)").0, "23514");
}

// ---------------------------------------------------------------------------------------------
// 5. Contract rebuilds constraints and indexes
// ---------------------------------------------------------------------------------------------

#[test]
fn contract_rebuilds_not_null_default_check_index_and_unique() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE t (id int PRIMARY KEY,
                         code int NOT NULL DEFAULT 0 CONSTRAINT code_range CHECK (code >= 0),
                         CONSTRAINT t_code_key UNIQUE (code));
         CREATE INDEX t_code_idx ON t (code);
         INSERT INTO t SELECT g, g FROM generate_series(1, 10000) g;",
    );
    let change = expand(&mut c, "SELECT migrate.expand_column('t', 'code', new_type => 'bigint', backfill => '{\"sleep_ms\": 0}')");
    full_cycle(&mut c, change);

    assert_eq!(columns(&mut c, "t"), vec!["id integer NOT NULL", "code bigint NOT NULL DEFAULT 0"]);
    let constraints = rows(
        &mut c,
        "SELECT conname || ' ' || pg_get_constraintdef(oid) || ' validated=' || convalidated FROM pg_constraint WHERE conrelid = 't'::regclass ORDER BY conname",
    );
    let mut want = vec!["code_range CHECK ((code >= 0)) validated=true", "t_code_key UNIQUE (code) validated=true", "t_pkey PRIMARY KEY (id) validated=true"];
    if pg_major() >= 18 {
        // 18's NOT NULL rows (see not_null), under the names a new table gets
        want.extend(["t_code_not_null NOT NULL code validated=true", "t_id_not_null NOT NULL id validated=true"]);
        want.sort();
    }
    assert_eq!(constraints, want, "the original constraints, with their names, validated, and no helper check left");
    let indexes = rows(
        &mut c,
        "SELECT pg_get_indexdef(indexrelid) || ' valid=' || indisvalid || ' ready=' || indisready FROM pg_index WHERE indrelid = 't'::regclass ORDER BY 1",
    );
    assert_eq!(
        indexes,
        vec![
            "CREATE INDEX t_code_idx ON public.t USING btree (code) valid=true ready=true",
            "CREATE UNIQUE INDEX t_code_key ON public.t USING btree (code) valid=true ready=true",
            "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id) valid=true ready=true",
        ]
    );
    let wrong: i64 = one(&mut c, "SELECT count(*) FROM t WHERE code <> id");
    assert_eq!(wrong, 0);
    // They are enforced.
    exec(&mut c, "INSERT INTO t (id) VALUES (10001)");
    let code: i64 = one(&mut c, "SELECT code FROM t WHERE id = 10001");
    assert_eq!(code, 0, "the default");
    assert_eq!(fails(&mut c, "INSERT INTO t (id, code) VALUES (10002, NULL)").0, "23502");
    assert_eq!(fails(&mut c, "INSERT INTO t (id, code) VALUES (10003, -5)").0, "23514");
    let dup = fails(&mut c, "INSERT INTO t (id, code) VALUES (10004, 5)");
    assert_eq!((dup.0.as_str(), dup.1.contains("t_code_key")), ("23505", true), "{dup:?}");
}

/// The classic int → bigint change of a primary key column: contract puts the PRIMARY KEY (with
/// its name) on the new column.
#[test]
fn contract_rebuilds_the_primary_key_of_a_changed_key_column() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE k (id int PRIMARY KEY, v text);
         INSERT INTO k SELECT g, 'v' || g FROM generate_series(1, 10000) g;",
    );
    let change = expand(&mut c, "SELECT migrate.expand_column('k', 'id', new_type => 'bigint', backfill => '{\"sleep_ms\": 0}')");
    exec(&mut c, "INSERT INTO k (id, v) VALUES (10001, 'old'); INSERT INTO k (id_new, v) VALUES (10002, 'new');");
    let synced = rows(&mut c, "SELECT id || ' ' || id_new FROM k WHERE v IN ('old', 'new') ORDER BY id");
    assert_eq!(synced, vec!["10001 10001", "10002 10002"]);
    full_cycle(&mut c, change);
    assert_eq!(columns(&mut c, "k"), vec!["v text", "id bigint NOT NULL"]);
    let constraints = rows(
        &mut c,
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'k'::regclass ORDER BY conname",
    );
    let mut want = vec!["k_pkey PRIMARY KEY (id)".to_string()];
    if pg_major() >= 18 {
        want.extend(not_null(&[("k", "id")])); // 18's NOT NULL row (see not_null)
        want.sort();
    }
    assert_eq!(constraints, want);
    let indexes = rows(&mut c, "SELECT pg_get_indexdef(indexrelid) || ' valid=' || indisvalid FROM pg_index WHERE indrelid = 'k'::regclass");
    assert_eq!(indexes, vec!["CREATE UNIQUE INDEX k_pkey ON public.k USING btree (id) valid=true"]);
    let wrong: i64 = one(&mut c, "SELECT count(*) FROM k WHERE v IS DISTINCT FROM CASE id WHEN 10001 THEN 'old' WHEN 10002 THEN 'new' ELSE 'v' || id END");
    assert_eq!(wrong, 0);
    assert_eq!(fails(&mut c, "INSERT INTO k (id, v) VALUES (5, 'dup')").0, "23505");
    exec(&mut c, "INSERT INTO k (id, v) VALUES (3000000000, 'big')");
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input
// ---------------------------------------------------------------------------------------------

fn orders(c: &mut Client) {
    exec(
        c,
        "CREATE TABLE orders (id int PRIMARY KEY, amount numeric, doc jsonb, flag boolean, note text);
         INSERT INTO orders SELECT g, g + 0.5, jsonb_build_object('n', g), g % 2 = 0, 'n' || g FROM generate_series(1, 2000) g;",
    )
}

/// What must not change on a refused call.
fn state(c: &mut Client) -> (i64, Vec<String>, i64) {
    (changes_count(c), columns(c, "orders"), sync_leftovers(c))
}

#[test]
fn refused_unknown_column() {
    let (_pg, mut c) = app();
    orders(&mut c);
    let before = state(&mut c);
    let err = fails(&mut c, "SELECT migrate.expand_column('orders', 'nope', new_type => 'bigint')");
    assert_eq!(err.0, "42703", "{err:?}");
    assert!(err.1.contains("nope"), "{err:?}");
    assert_eq!(state(&mut c), before);
}

#[test]
fn refused_incompatible_type_without_up() {
    let (_pg, mut c) = app();
    orders(&mut c);
    let before = state(&mut c);
    // jsonb → integer has a cast in PostgreSQL 11+ ('1'::jsonb::int works): jsonb → date and
    // boolean → date have none.
    for sql in [
        "SELECT migrate.expand_column('orders', 'doc', new_type => 'date')",
        "SELECT migrate.expand_column('orders', 'flag', new_name => 'flag_day', new_type => 'date')",
    ] {
        let err = fails(&mut c, sql);
        assert_eq!(err.0, "42846", "{sql}: {err:?}");
        assert_eq!(state(&mut c), before, "{sql}");
    }
}

#[test]
fn refused_contract_twice() {
    let (_pg, mut c) = app();
    orders(&mut c);
    let change = expand(&mut c, "SELECT migrate.expand_column('orders', 'amount', new_type => 'bigint', backfill => '{\"sleep_ms\": 0}')");
    full_cycle(&mut c, change);
    let before = state(&mut c);
    assert!(before.1.contains(&"amount bigint".to_string()), "{before:?}");
    let err = fails(&mut c, &format!("SELECT migrate.contract({change})"));
    assert_eq!(err.0, "55000", "{err:?}");
    assert_eq!(state(&mut c), before);
    assert_eq!(phase(&mut c, change), "contracted");
}

#[test]
fn refused_contract_before_backfill_done() {
    let (_pg, mut c) = app();
    orders(&mut c);
    let change = expand(&mut c, "SELECT migrate.expand_column('orders', 'amount', new_type => 'bigint', backfill => '{\"manual\": true}')");
    let before = state(&mut c);
    let err = fails(&mut c, &format!("SELECT migrate.contract({change})"));
    assert_eq!(err.0, "55000", "{err:?}");
    assert_eq!(state(&mut c), before);
    assert_eq!(phase(&mut c, change), "open");
    assert!(sync_trigger_count(&mut c, "orders") > 0, "the trigger is still there");
    let not_filled: i64 = one(&mut c, "SELECT count(*) FROM orders WHERE amount_new IS NULL");
    assert_eq!(not_filled, 2000, "the manual backfill never ran");
}

/// One batch (one Drizzle migration, say) that expands and contracts at once: on an empty table
/// the backfill queued in that transaction has nothing to do and contract goes on; on a table
/// with rows it refuses as before, and nothing is changed.
#[test]
fn expand_and_contract_in_one_transaction() {
    let (_pg, mut c) = app();
    exec(&mut c, "CREATE TABLE fresh (id bigint PRIMARY KEY, amount int NOT NULL DEFAULT 0)");
    let mut tx = c.transaction().unwrap();
    let change: i64 = tx.query_one("SELECT migrate.expand_column('fresh', 'amount', new_type => 'bigint')", &[]).unwrap().get(0);
    let job: i64 = tx.query_one("SELECT migrate.contract($1)", &[&change]).unwrap().get(0);
    tx.commit().unwrap();
    wait_job(&mut c, job, 120);
    assert_eq!(phase(&mut c, change), "contracted");
    let backfill = backfill_job(&mut c, change);
    assert_eq!(job_state(&mut c, backfill), "done");
    assert_eq!(columns(&mut c, "fresh"), vec!["id bigint NOT NULL", "amount bigint NOT NULL DEFAULT 0"]);
    exec(&mut c, "INSERT INTO fresh (id) VALUES (1)");

    orders(&mut c);
    let before = state(&mut c);
    let mut tx = c.transaction().unwrap();
    let change: i64 = tx.query_one("SELECT migrate.expand_column('orders', 'amount', new_type => 'bigint')", &[]).unwrap().get(0);
    let err = tx.query_one("SELECT migrate.contract($1)", &[&change]).unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "55000", "{db:?}");
    assert!(db.message().contains("its backfill job") && db.message().contains("is queued"), "{}", db.message());
    drop(tx);
    assert_eq!(state(&mut c), before, "nothing was changed");
}

#[test]
fn refused_second_expand_on_a_table_with_an_open_change() {
    let (_pg, mut c) = app();
    orders(&mut c);
    let change = expand(&mut c, "SELECT migrate.expand_column('orders', 'amount', new_type => 'bigint', backfill => '{\"manual\": true}')");
    let before = state(&mut c);
    let err = fails(&mut c, "SELECT migrate.expand_column('orders', 'note', new_name => 'remark')");
    assert!(err.0 == "55006" || err.0 == "55000", "{err:?}");
    assert!(format!("{} {} {}", err.1, err.2, err.3).contains("orders"), "the error names the table: {err:?}");
    assert_eq!(state(&mut c), before);
    assert_eq!(phase(&mut c, change), "open");
}

/// Views on the old column are carried to the new one (contract_views.rs has the details).
#[test]
fn contract_carries_a_dependent_view() {
    let (_pg, mut c) = app();
    orders(&mut c);
    let change = expand(&mut c, "SELECT migrate.expand_column('orders', 'amount', new_type => 'bigint', backfill => '{\"sleep_ms\": 0}')");
    wait_backfill(&mut c, change);
    exec(&mut c, "CREATE VIEW order_amounts AS SELECT id, amount FROM orders");
    contract(&mut c, change);
    assert_eq!(phase(&mut c, change), "contracted");
    let view_sum: String = one(&mut c, "SELECT sum(amount)::text || ' ' || pg_typeof(amount) FROM order_amounts GROUP BY pg_typeof(amount)");
    assert_eq!(view_sum, "2003000 bigint", "the view reads the new column (amount::bigint rounds g + 0.5 up)");
}

// ---------------------------------------------------------------------------------------------
// 7. One-shot operations
// ---------------------------------------------------------------------------------------------

#[test]
fn add_column_not_null_with_default_contracts_to_not_null() {
    let (_pg, mut c) = app();
    exec(&mut c, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 5000);");
    let change: i64 = one(&mut c, "SELECT migrate.add_column('t', 'score', 'integer', default_value => '5', not_null => true)");
    assert_eq!(phase(&mut c, change), "open", "with not_null the change stays open");
    assert_eq!(columns(&mut c, "t"), vec!["id integer NOT NULL", "score integer DEFAULT 5"]);
    let fives: i64 = one(&mut c, "SELECT count(*) FROM t WHERE score = 5");
    assert_eq!(fives, 5000);
    contract(&mut c, change);
    assert_eq!(phase(&mut c, change), "contracted");
    assert_eq!(columns(&mut c, "t"), vec!["id integer NOT NULL", "score integer NOT NULL DEFAULT 5"]);
    let checks = rows(&mut c, "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 't'::regclass AND contype <> 'p' ORDER BY 1");
    // PostgreSQL 18 records each NOT NULL as a pg_constraint row (contype 'n', named
    // <table>_<column>_not_null); earlier majors only in pg_attribute.attnotnull.
    let want: Vec<String> = if pg_major() >= 18 { not_null(&[("t", "id"), ("t", "score")]) } else { vec![] };
    assert_eq!(checks, want, "no leftover constraint (helper check)");
    assert_eq!(fails(&mut c, "INSERT INTO t VALUES (5001, NULL)").0, "23502");
    exec(&mut c, "INSERT INTO t (id) VALUES (5002)");
    let score: i32 = one(&mut c, "SELECT score FROM t WHERE id = 5002");
    assert_eq!(score, 5);
}

fn people(c: &mut Client, duplicates: bool) {
    exec(
        c,
        &format!(
            "CREATE TABLE people (id int PRIMARY KEY, email text);
             INSERT INTO people SELECT g, 'p' || {} || '@x' FROM generate_series(1, 20000) g;",
            if duplicates { "(g % 19000)" } else { "g" }
        ),
    );
}

#[test]
fn create_index_builds_a_valid_index() {
    let (_pg, mut c) = app();
    people(&mut c, false);
    let change: i64 = one(&mut c, "SELECT migrate.create_index('people', '(email)', name => 'people_email_idx')");
    exec(&mut c, &format!("CALL migrate.wait_change({change}, '60 seconds')"));
    let idx: String = one(
        &mut c,
        "SELECT pg_get_indexdef(indexrelid) || ' valid=' || indisvalid || ' ready=' || indisready FROM pg_index WHERE indexrelid = 'people_email_idx'::regclass",
    );
    assert_eq!(idx, "CREATE INDEX people_email_idx ON public.people USING btree (email) valid=true ready=true");
    // The change's job is done and the change is no longer listed as open. (all_changes.phase
    // of a one-shot change may stay 'open': its completion is its job's.)
    let job: Option<i64> = c.query_one("SELECT job FROM migrate.all_changes WHERE change = $1", &[&change]).unwrap().get(0);
    assert_eq!(job_state(&mut c, job.expect("the change has a job")), "done");
    let listed: i64 = c.query_one("SELECT count(*) FROM migrate.changes WHERE change = $1", &[&change]).unwrap().get(0);
    assert_eq!(listed, 0, "a finished create_index is not an open change");

    let change: i64 = one(&mut c, "SELECT migrate.create_index('people', '(id) WHERE email IS NULL', name => 'people_partial_uq', is_unique => true)");
    exec(&mut c, &format!("CALL migrate.wait_change({change}, '60 seconds')"));
    let idx: String = one(
        &mut c,
        "SELECT pg_get_indexdef(indexrelid) || ' valid=' || indisvalid FROM pg_index WHERE indexrelid = 'people_partial_uq'::regclass",
    );
    assert_eq!(idx, "CREATE UNIQUE INDEX people_partial_uq ON public.people USING btree (id) WHERE (email IS NULL) valid=true");
}

#[test]
fn failing_unique_create_index_leaves_no_invalid_index() {
    let (_pg, mut c) = app();
    people(&mut c, true);
    let change: i64 = one(&mut c, "SELECT migrate.create_index('people', '(email)', name => 'people_email_key', is_unique => true)");
    let waited = c.batch_execute(&format!("CALL migrate.wait_change({change}, '60 seconds')")).unwrap_err();
    let db = waited.as_db_error().expect("waiting for a failed unique index reports the failure");
    assert_eq!(db.code().code(), "23505", "the failed statement's own SQLSTATE: {db:?}");
    let job: Option<i64> = c.query_one("SELECT job FROM migrate.all_changes WHERE change = $1", &[&change]).unwrap().get(0);
    let job = job.expect("the change has a job");
    assert_eq!(job_state(&mut c, job), "failed");
    let kept: String = one(&mut c, &format!("SELECT last_sqlstate FROM migrate.jobs WHERE job = {job}"));
    assert_eq!(kept, "23505");
    let indexes = rows(
        &mut c,
        "SELECT indexrelid::regclass || ' valid=' || indisvalid FROM pg_index WHERE indrelid = 'people'::regclass ORDER BY 1",
    );
    assert_eq!(indexes, vec!["people_pkey valid=true"], "no INVALID index left behind");
    let left: Option<String> = one(&mut c, "SELECT to_regclass('people_email_key')::text");
    assert_eq!(left, None);
}

#[test]
fn drop_column_soft_renames_and_purge_drops() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE d (id int PRIMARY KEY, legacy text NOT NULL, keep text);
         INSERT INTO d SELECT g, 'l' || g, 'k' || g FROM generate_series(1, 1000) g;",
    );
    let _change: i64 = one(&mut c, "SELECT migrate.drop_column('d', 'legacy')");
    assert_eq!(columns(&mut c, "d"), vec!["id integer NOT NULL", "legacy_deprecated text", "keep text"]);
    let kept: i64 = one(&mut c, "SELECT count(*) FROM d WHERE legacy_deprecated = 'l' || id");
    assert_eq!(kept, 1000, "the data is still there while soft-dropped");
    exec(&mut c, "INSERT INTO d (id, keep) VALUES (1001, 'k1001')");
    let purged = rows(&mut c, "SELECT x::text FROM migrate.purge_deprecated('d') x");
    assert!(purged.iter().any(|p| p.contains("legacy_deprecated")), "{purged:?}");
    assert_eq!(columns(&mut c, "d"), vec!["id integer NOT NULL", "keep text"]);
    let n: i64 = one(&mut c, "SELECT count(*) FROM d");
    assert_eq!(n, 1001);
}

#[test]
fn add_enum_value_appends() {
    let (_pg, mut c) = app();
    exec(&mut c, "CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE TABLE feelings (id int PRIMARY KEY, m mood);");
    let _change: i64 = one(&mut c, "SELECT migrate.add_enum_value('mood', 'happy')");
    let range: String = one(&mut c, "SELECT enum_range(NULL::mood)::text");
    assert_eq!(range, "{sad,ok,happy}");
    let _change: i64 = one(&mut c, "SELECT migrate.add_enum_value('mood', 'meh', after => 'sad')");
    let range: String = one(&mut c, "SELECT enum_range(NULL::mood)::text");
    assert_eq!(range, "{sad,meh,ok,happy}");
    exec(&mut c, "INSERT INTO feelings VALUES (1, 'happy'), (2, 'meh')");
    let ordered = rows(&mut c, "SELECT m::text AS label FROM feelings ORDER BY m");
    assert_eq!(ordered, vec!["meh", "happy"]);
}

// ---------------------------------------------------------------------------------------------
// 8. Rollback
// ---------------------------------------------------------------------------------------------

#[test]
fn rollback_of_a_version_aborts_its_expand() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE t (id int PRIMARY KEY, a text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g;",
    );
    let before = describe(&mut c, "t");
    let state: String = one(&mut c, "SELECT migrate.apply('1', $$SELECT migrate.expand_column('t','a',new_name=>'b')$$)");
    assert_eq!(state, "applied");
    assert_eq!(columns(&mut c, "t"), vec!["id integer NOT NULL", "a text", "b text"]);
    assert!(sync_trigger_count(&mut c, "t") > 0);
    let change: i64 = one(&mut c, "SELECT change FROM migrate.all_changes WHERE column_name = 'a'");
    let down: Option<String> = one(&mut c, "SELECT down FROM migrate.migrations WHERE version = '1'");
    let down = down.expect("a down SQL was recorded");
    assert!(down.contains(&format!("migrate.abort({change})")), "{down}");

    let rolled: String = one(&mut c, "SELECT migrate.rollback('1')");
    assert_eq!(rolled, "rolled_back");
    assert_eq!(describe(&mut c, "t"), before, "the table is as before: no b column, no trigger");
    assert_eq!(sync_leftovers(&mut c), 0);
    assert_eq!(phase(&mut c, change), "aborted");
    let values: i64 = one(&mut c, "SELECT count(*) FROM t WHERE a = 'v' || id");
    assert_eq!(values, 2000);
}

/// The pg_constraint rows (`conname pg_get_constraintdef`) that PostgreSQL 18 keeps for NOT NULL
/// columns, under the names it gives them (`<table>_<column>_not_null`): 18 records NOT NULL as a
/// constraint; 15-17 only in pg_attribute.attnotnull, with no pg_constraint row.
fn not_null(columns: &[(&str, &str)]) -> Vec<String> {
    columns.iter().map(|(t, c)| format!("{t}_{c}_not_null NOT NULL {c}")).collect()
}
