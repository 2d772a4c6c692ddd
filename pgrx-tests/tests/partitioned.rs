//! Indexes on partitioned tables without blocking writes (issue 15): migrate.create_index,
//! migrate.drop_index, their aborts and contract's rebuilds on range, list and hash partitioned
//! tables, sub-partitions and default partitions; unique indexes with the partition key;
//! partitions created while a change is open, between contract and its job, and while the job
//! builds; writers through the old and the new column (the old one until the swap drops it) that
//! never fail nor wait longer than their lock_timeout; an immediate shutdown in the middle of the per-partition builds, resumed.
//! Each test asserts the final catalog: every partition's index attached (pg_inherits) and
//! valid, the parent index valid, no INVALID index left.

use pg_migrate_integration::{app, exec, fails, one, wait_until, Client, Cluster};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------


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

/// Waits for the job of `change` (its current one: after an abort, the abort's).
fn wait_change(c: &mut Client, change: i64, secs: u32) {
    let job = job_of(c, change);
    wait_job(c, job, secs);
}

fn job_of(c: &mut Client, change: i64) -> i64 {
    c.query_one("SELECT job FROM migrate.all_changes WHERE change = $1", &[&change]).unwrap().get::<_, Option<i64>>(0).expect("the change has a job")
}

/// Every partition (all levels) of `table` with the index attached under `index` for it, and
/// whether that one is valid: "partition index valid". The root line is the index itself.
fn index_tree(c: &mut Client, index: &str) -> Vec<String> {
    rows(
        c,
        &format!(
            "WITH RECURSIVE tree(idx) AS (SELECT '{index}'::regclass::oid
                                          UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.idx)
             SELECT line FROM (SELECT x.indrelid::regclass || ' ' || x.indexrelid::regclass || ' ' || x.indisvalid AS line
                                 FROM tree JOIN pg_index x ON x.indexrelid = tree.idx) s ORDER BY line COLLATE \"C\""
        ),
    )
}

/// `index` on partitioned `table` is valid, every partition at every level has exactly one
/// index attached under it, all valid, and the database has no INVALID index.
fn assert_fully_indexed(c: &mut Client, table: &str, index: &str) -> Vec<String> {
    let tree = index_tree(c, index);
    let tables: Vec<String> = rows(c, &format!("SELECT t FROM (SELECT relid::regclass::text AS t FROM pg_partition_tree('{table}')) s ORDER BY t COLLATE \"C\""));
    let indexed: Vec<String> = tree.iter().map(|l| l.split(' ').next().unwrap().to_string()).collect();
    assert_eq!(indexed, tables, "one index per table of the hierarchy under {index}: {tree:#?}");
    assert!(tree.iter().all(|l| l.ends_with(" true")), "all valid: {tree:#?}");
    let kind: String = one(c, &format!("SELECT relkind::text FROM pg_class WHERE oid = '{index}'::regclass"));
    assert_eq!(kind, "I", "{index} is a partitioned index");
    let invalid: Vec<String> = rows(c, "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid OR NOT indisready");
    assert!(invalid.is_empty(), "INVALID indexes left: {invalid:?}");
    tree
}

/// The OIDs of partitioned index `index` and of every index attached under it, sorted.
fn index_oids(c: &mut Client, index: &str) -> Vec<String> {
    rows(
        c,
        &format!(
            "WITH RECURSIVE tree(idx) AS (SELECT '{index}'::regclass::oid
                                          UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.idx)
             SELECT idx::text FROM tree ORDER BY idx"
        ),
    )
}

/// The OIDs of every index on every table of partitioned table `table`'s hierarchy, sorted.
fn indexes_of_tree(c: &mut Client, table: &str) -> Vec<String> {
    rows(
        c,
        &format!("SELECT x.indexrelid::text FROM pg_partition_tree('{table}') t JOIN pg_index x ON x.indrelid = t.relid ORDER BY x.indexrelid"),
    )
}

/// Holds `mode` on `table` in an open transaction of its own session until dropped.
fn hold_lock(pg: &Cluster, table: &str, mode: &str) -> Client {
    let mut c = pg.connect("app");
    c.batch_execute(&format!("BEGIN; LOCK TABLE {table} IN {mode} MODE")).unwrap();
    c
}

/// Waits until the job's worker waits for a lock while running a statement that contains `what`.
fn worker_waits_in(pg: &Cluster, what: &str) {
    let mut c = pg.connect("app");
    assert!(
        wait_until(60, || {
            c.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_migrate job worker' AND wait_event_type = 'Lock'
                    AND strpos(query, $1) > 0",
                &[&what],
            )
            .unwrap()
            .get::<_, i64>(0)
                == 1
        }),
        "the job's worker never waited in a statement with {what}"
    );
}

// ---------------------------------------------------------------------------------------------
// create_index: range (with a default partition), list and hash, reuse of an existing index
// ---------------------------------------------------------------------------------------------

#[test]
fn create_index_on_range_list_and_hash_partitioned_tables() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE ev (id bigint, kind text NOT NULL, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE ev_default PARTITION OF ev DEFAULT;
         INSERT INTO ev SELECT g, 'k' || (g % 7), date '2023-12-01' + (g % 800) FROM generate_series(1, 30000) g;
         -- what a DBA built by hand on one partition: reused, not built twice
         CREATE INDEX ev_2024_by_hand ON ev_2024 (kind);
         CREATE TABLE lst (id int, region text, v text) PARTITION BY LIST (region);
         CREATE TABLE lst_eu PARTITION OF lst FOR VALUES IN ('eu');
         CREATE TABLE lst_us PARTITION OF lst FOR VALUES IN ('us', 'ca');
         CREATE TABLE lst_rest PARTITION OF lst DEFAULT;
         INSERT INTO lst SELECT g, (ARRAY['eu', 'us', 'ca', 'jp'])[g % 4 + 1], 'V' || g FROM generate_series(1, 20000) g;
         CREATE TABLE hsh (id int, v text) PARTITION BY HASH (id);
         CREATE TABLE hsh_0 PARTITION OF hsh FOR VALUES WITH (MODULUS 3, REMAINDER 0);
         CREATE TABLE hsh_1 PARTITION OF hsh FOR VALUES WITH (MODULUS 3, REMAINDER 1);
         CREATE TABLE hsh_2 PARTITION OF hsh FOR VALUES WITH (MODULUS 3, REMAINDER 2);
         INSERT INTO hsh SELECT g, 'V' || g FROM generate_series(1, 20000) g;",
    );
    let by_hand: u32 = one(&mut c, "SELECT 'ev_2024_by_hand'::regclass::oid");
    // One at a time: two concurrent builds on one table can deadlock in PostgreSQL (each
    // CREATE INDEX CONCURRENTLY waits for the other's snapshot).
    let mut changes = Vec::new();
    for call in [
        "SELECT migrate.create_index('ev', '(kind)')",
        "SELECT migrate.create_index('lst', '(v) WHERE v IS NOT NULL')",
        "SELECT migrate.create_index('hsh', '(lower(v))', name => 'hsh_lower_idx')",
        "SELECT migrate.create_index('hsh', '(id)', name => 'hsh_id_uq', is_unique => true)",
    ] {
        let change: i64 = one(&mut c, call);
        wait_change(&mut c, change, 120);
        changes.push(change);
    }
    let ev = changes[0];
    let tree = assert_fully_indexed(&mut c, "ev", "ev_kind_idx");
    assert_eq!(tree, vec!["ev ev_kind_idx true", "ev_2024 ev_2024_by_hand true", "ev_2025 ev_2025_kind_idx true", "ev_default ev_default_kind_idx true"]);
    let still: u32 = one(&mut c, "SELECT 'ev_2024_by_hand'::regclass::oid");
    assert_eq!(still, by_hand, "the matching index was attached, not rebuilt");
    let on_2024: i64 = one(&mut c, "SELECT count(*) FROM pg_index WHERE indrelid = 'ev_2024'::regclass");
    assert_eq!(on_2024, 2, "ev_2024 has its primary key and the reused index, nothing more");
    assert_fully_indexed(&mut c, "lst", "lst_v_idx");
    assert_fully_indexed(&mut c, "hsh", "hsh_lower_idx");
    assert_fully_indexed(&mut c, "hsh", "hsh_id_uq");
    let def: String = one(&mut c, "SELECT pg_get_indexdef('lst_eu_v_idx'::regclass)");
    assert_eq!(def, "CREATE INDEX lst_eu_v_idx ON public.lst_eu USING btree (v) WHERE (v IS NOT NULL)");
    let def: String = one(&mut c, "SELECT pg_get_indexdef('hsh_1_lower_idx'::regclass)");
    assert_eq!(def, "CREATE INDEX hsh_1_lower_idx ON public.hsh_1 USING btree (lower(v))");
    // The indexes are used, and the unique one holds across partitions of the same key.
    let (code, ..) = fails(&mut c, "INSERT INTO hsh VALUES (5, 'again')");
    assert_eq!(code, "23505");
    exec(&mut c, "SET enable_seqscan = off");
    let plan: Vec<String> = rows(&mut c, "EXPLAIN (COSTS OFF) SELECT * FROM ev WHERE kind = 'k3'");
    assert!(plan.iter().filter(|l| l.contains("Index") || l.contains("Bitmap")).count() >= 3, "{plan:#?}");
    // The job listed its per-partition steps: two per partition built, one for the reused one.
    let ev_job = job_of(&mut c, ev);
    let steps: i32 = one(&mut c, &format!("SELECT steps_total FROM migrate.jobs WHERE job = {ev_job}"));
    assert_eq!(steps, 2 + 3 + 1, "ON ONLY, listing, one step per partition (ATTACH for 2024, a build and ATTACH for the others), check");
}

// ---------------------------------------------------------------------------------------------
// Sub-partitions, unique indexes with the partition key, refusals, drop_index and abort
// ---------------------------------------------------------------------------------------------

#[test]
fn sub_partitions_unique_keys_refusals_drop_and_abort() {
    let (pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE sp (id bigint NOT NULL, region text NOT NULL, at date NOT NULL, v text) PARTITION BY LIST (region);
         CREATE TABLE sp_eu PARTITION OF sp FOR VALUES IN ('eu') PARTITION BY RANGE (at);
         CREATE TABLE sp_eu_2024 PARTITION OF sp_eu FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE sp_eu_2025 PARTITION OF sp_eu FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE sp_eu_other PARTITION OF sp_eu DEFAULT;
         CREATE TABLE sp_us PARTITION OF sp FOR VALUES IN ('us');
         CREATE TABLE sp_rest PARTITION OF sp DEFAULT;
         INSERT INTO sp SELECT g, (ARRAY['eu', 'us', 'jp'])[g % 3 + 1], date '2024-01-01' + (g % 900), 'v' || g
           FROM generate_series(1, 30000) g;",
    );
    let changes_before: i64 = one(&mut c, "SELECT count(*) FROM migrate.all_changes");
    let jobs_before: i64 = one(&mut c, "SELECT count(*) FROM migrate.all_jobs");

    // A unique index without every level's partition key: refused at once, naming what is missing.
    let (code, message, detail, hint) = fails(&mut c, "SELECT migrate.create_index('sp', '(id, region)', is_unique => true)");
    assert_eq!(code, "0A000", "{message}");
    assert_eq!(message, "unique index \"public\".\"sp_id_region_idx\" on partitioned table public.sp lacks partition key columns");
    assert!(detail.starts_with("Missing from its key columns: \"at\" (partition key of public.sp_eu)."), "{detail}");
    assert!(hint.starts_with("Nothing was changed."), "{hint}");
    // An INCLUDE column is not a key column.
    let (code, ..) = fails(&mut c, "SELECT migrate.create_index('sp', '(id, region) INCLUDE (at)', is_unique => true)");
    assert_eq!(code, "0A000");
    let after: (i64, i64, i64) = c
        .query_one(
            "SELECT (SELECT count(*) FROM migrate.all_changes), (SELECT count(*) FROM migrate.all_jobs),
                    (SELECT count(*) FROM pg_class WHERE relkind IN ('i', 'I') AND relname LIKE 'sp%')",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!(after, (changes_before, jobs_before, 0), "nothing recorded, queued or built");

    // With every key column, through both levels.
    let uq: i64 = one(&mut c, "SELECT migrate.create_index('sp', '(id, region, at)', name => 'sp_key', is_unique => true)");
    wait_change(&mut c, uq, 120);
    let plain: i64 = one(&mut c, "SELECT migrate.create_index('sp', '(v)')");
    wait_change(&mut c, plain, 120);
    let tree = assert_fully_indexed(&mut c, "sp", "sp_key");
    assert!(tree.contains(&"sp_eu sp_eu_key true".to_string()), "the sub-partitioned table has its own partitioned index: {tree:#?}");
    let sub_kind: String = one(&mut c, "SELECT relkind::text FROM pg_class WHERE relname = 'sp_eu_key'");
    assert_eq!(sub_kind, "I");
    assert_fully_indexed(&mut c, "sp", "sp_v_idx");
    let (code, ..) = fails(&mut c, "INSERT INTO sp VALUES (3, 'eu', date '2024-01-04', 'dup')");
    assert_eq!(code, "23505", "unique across the sub-partition");

    // The index of one partition cannot be dropped on its own.
    let (code, message, _, hint) = fails(&mut c, "SELECT migrate.drop_index('sp_eu_2024_v_idx')");
    assert_eq!(code, "2BP01", "{message}");
    assert!(message.contains("sp_v_idx"), "{message}");
    assert!(hint.contains("migrate.drop_index"), "{hint}");

    // drop_index of the partitioned index drops it everywhere; abort builds it again.
    let dropped: i64 = one(&mut c, "SELECT migrate.drop_index('sp_v_idx')");
    wait_change(&mut c, dropped, 60);
    let left: i64 = one(&mut c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'sp%v_idx'");
    assert_eq!(left, 0, "the index of every partition went with it");
    one::<String>(&mut c, &format!("SELECT migrate.abort({dropped})"));
    wait_change(&mut c, dropped, 120);
    assert_fully_indexed(&mut c, "sp", "sp_v_idx");
    let def: String = one(&mut c, "SELECT pg_get_indexdef('sp_v_idx'::regclass)");
    assert_eq!(def, "CREATE INDEX sp_v_idx ON ONLY public.sp USING btree (v)");

    // abort of a create_index drops the partitioned index and its partitions' indexes, by OID,
    // and nothing else.
    let key_tree: Vec<String> = index_oids(&mut c, "sp_key");
    assert_eq!(key_tree.len(), 7, "sp, sp_eu, sp_eu_2024, sp_eu_2025, sp_eu_other, sp_us, sp_rest: {key_tree:?}");
    let others = indexes_of_tree(&mut c, "sp").into_iter().filter(|o| !key_tree.contains(o)).collect::<Vec<_>>();
    one::<String>(&mut c, &format!("SELECT migrate.abort({uq})"));
    wait_change(&mut c, uq, 60);
    assert_eq!(indexes_of_tree(&mut c, "sp"), others, "exactly the job's indexes are gone");

    // A foreign partition cannot be indexed: refused before anything is done.
    exec(
        &mut c,
        "CREATE FOREIGN DATA WRAPPER nothing; CREATE SERVER nowhere FOREIGN DATA WRAPPER nothing;
         CREATE TABLE fx (id int, v text) PARTITION BY RANGE (id);
         CREATE TABLE fx_local PARTITION OF fx FOR VALUES FROM (0) TO (100);
         CREATE FOREIGN TABLE fx_remote PARTITION OF fx FOR VALUES FROM (100) TO (200) SERVER nowhere;",
    );
    let (code, message, ..) = fails(&mut c, "SELECT migrate.create_index('fx', '(v)')");
    assert_eq!(code, "0A000");
    assert!(message.contains("fx_remote"), "{message}");

    // The job builds as the caller: a partition someone else owns is refused up front.
    exec(
        &mut c,
        "CREATE ROLE alice LOGIN;
         GRANT USAGE ON SCHEMA migrate TO alice;
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA migrate TO alice;
         CREATE TABLE owned (id int, v text) PARTITION BY RANGE (id);
         ALTER TABLE owned OWNER TO alice;
         CREATE TABLE owned_1 PARTITION OF owned FOR VALUES FROM (0) TO (10);",
    );
    let mut alice = pg.connect_as("app", "alice");
    let (code, message, _, hint) = fails(&mut alice, "SELECT migrate.create_index('owned', '(v)')");
    assert_eq!(code, "42501", "{message}");
    assert!(message.contains("owned_1") && hint.starts_with("Nothing was changed."), "{message} {hint}");
    // Nor dropped: PostgreSQL would let the table's owner drop it, but the abort could not
    // build owned_1's index again.
    exec(&mut c, "CREATE INDEX owned_v_idx ON owned (v)");
    let (code, message, _, hint) = fails(&mut alice, "SELECT migrate.drop_index('owned_v_idx')");
    assert_eq!(code, "42501", "{message}");
    assert_eq!(message, "index public.owned_v_idx cannot be dropped: you do not own partitions public.owned_1");
    assert!(hint.starts_with("Nothing was changed."), "{hint}");
    let left: i64 = one(&mut c, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'owned_v_idx'::regclass");
    assert_eq!(left, 1, "nothing dropped");
}

// ---------------------------------------------------------------------------------------------
// contract on the table, with writers, and partitions that come at every moment
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Report {
    name: String,
    statements: u64,
    errors: Vec<String>,
    slowest: Duration,
    slowest_sql: String,
    ended_by_swap: bool,
}

/// Inserts and updates through `column` (old `kind` or new `event_kind`) until `stop`, with
/// lock_timeout 2 s: a statement that waited longer fails and is reported (`check` asks for less).
fn writer(pg: &Cluster, k: i64, column: &'static str, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) -> std::thread::JoinHandle<Report> {
    let mut c = pg.connect("app");
    std::thread::spawn(move || {
        let mut r = Report { name: format!("writer {k} via {column}"), ..Default::default() };
        c.batch_execute("SET lock_timeout = '2s'").unwrap();
        let insert = format!("INSERT INTO ev (id, {column}, at) VALUES ($1::bigint, 'w' || $1::bigint, date '2024-01-01' + ($1::bigint % 700)::int)");
        let update = format!("UPDATE ev SET {column} = 'u' || $1::bigint WHERE id = $1::bigint AND at = date '2023-12-01' + ($1::bigint % 800)::int");
        let mut n: i64 = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let inserting = n % 3 == 0;
            let id = if inserting { 1_000_000 * (k + 1) + n } else { (n * 7919 + k) % 70_000 + 1 };
            let sql = if inserting { &insert } else { &update };
            let t0 = Instant::now();
            let res = c.execute(sql.as_str(), &[&id]);
            let took = t0.elapsed();
            r.statements += 1;
            count.fetch_add(1, Ordering::Relaxed);
            if took > r.slowest {
                r.slowest = took;
                r.slowest_sql = format!("{sql} ({id})");
            }
            if let Err(e) = res {
                // Through the old column until contract's swap drops it: the end for this writer.
                if column == "kind" && e.as_db_error().is_some_and(|d| d.code().code() == "42703") {
                    r.ended_by_swap = true;
                    break;
                }
                if r.errors.len() < 10 {
                    r.errors.push(format!("{sql} ({id}) after {took:?}: {e} {:?}", e.as_db_error().map(|d| d.message().to_string())));
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
    // No statement waits behind more than one try of pg_migrate's: at most 4 × migrate.lock_timeout
    // (250 ms by default, 200 ms for the contract), well under the writers' own 2 s.
    assert!(r.slowest < Duration::from_millis(1000), "{}: waited {:?}, longer than one try: {}", r.name, r.slowest, r.slowest_sql);
    assert!(r.statements > 0);
}

#[test]
fn contract_rebuilds_indexes_of_a_partitioned_table_while_writers_run() {
    let (pg, mut c) = app();
    // The table: two partitions, 70k rows, an index on the column to rename; plus a
    // default partition and a unique index that includes the partition key.
    exec(
        &mut c,
        "CREATE TABLE ev (id bigint, kind text NOT NULL, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2023-01-01') TO ('2025-01-01');
         CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE ev_default PARTITION OF ev DEFAULT;
         INSERT INTO ev SELECT g, 'k' || (g % 9), date '2023-12-01' + (g % 800) FROM generate_series(1, 70000) g;
         CREATE INDEX ev_kind_idx ON ev (kind);
         CREATE UNIQUE INDEX ev_kind_id_at_key ON ev (kind, id, at);",
    );
    exec(&mut c, "VACUUM ANALYZE ev");
    let stop_old = Arc::new(AtomicBool::new(false));
    let stop_new = Arc::new(AtomicBool::new(false));
    let (old_count, new_count) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let old_writers: Vec<_> = (0..2).map(|k| writer(&pg, k, "kind", stop_old.clone(), old_count.clone())).collect();
    let change: i64 = one(&mut c, "SELECT migrate.expand_column('ev', 'kind', new_name => 'event_kind', backfill => '{\"sleep_ms\": 0}')");
    let new_writers: Vec<_> = (2..4).map(|k| writer(&pg, k, "event_kind", stop_new.clone(), new_count.clone())).collect();
    let backfill: i64 = one(&mut c, &format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {change}"));
    wait_job(&mut c, backfill, 120);
    // A partition created while the change is open gets the sync trigger (PostgreSQL clones it).
    exec(&mut c, "CREATE TABLE ev_2030 PARTITION OF ev FOR VALUES FROM ('2030-01-01') TO ('2031-01-01')");
    exec(&mut c, "INSERT INTO ev (id, kind, at) VALUES (9000001, 'late', '2030-03-01')");
    let synced: String = one(&mut c, "SELECT event_kind FROM ev WHERE id = 9000001");
    assert_eq!(synced, "late");

    let contract_plan: String = one(&mut c, &format!("SELECT migrate.contract_plan({change})"));
    assert!(contract_plan.contains("ON ONLY the parent, then concurrently on each partition and attached"), "{contract_plan}");

    // The job's first build will wait for an old snapshot: meanwhile another partition comes.
    let mut blocker = pg.connect("app");
    blocker.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class").unwrap();
    let new_at_contract = new_count.load(Ordering::Relaxed);
    let old_at_contract = old_count.load(Ordering::Relaxed);
    // A partition created after contract() but before its job runs is listed by the job.
    exec(&mut c, "SET migrate.lock_timeout = '200ms'");
    let job: i64 = {
        let mut tx = c.transaction().unwrap();
        let job: i64 = tx.query_one("SELECT migrate.contract($1)", &[&change]).unwrap().get(0);
        tx.batch_execute("CREATE TABLE ev_2031 PARTITION OF ev FOR VALUES FROM ('2031-01-01') TO ('2032-01-01')").unwrap();
        tx.commit().unwrap();
        job
    };
    worker_waits_in(&pg, "ev_2024");
    // (CREATE TABLE ... PARTITION OF: an ATTACHed table would need the contract's NOT NULL check
    // too; ATTACH mid-job is in the shutdown test.)
    exec(&mut c, "CREATE TABLE ev_2032 PARTITION OF ev FOR VALUES FROM ('2032-01-01') TO ('2033-01-01')");
    drop(blocker);
    wait_job(&mut c, job, 180);
    std::thread::sleep(Duration::from_millis(300));
    stop_new.store(true, Ordering::Relaxed);
    stop_old.store(true, Ordering::Relaxed);
    for h in new_writers.into_iter().chain(old_writers) {
        let r = h.join().unwrap();
        check(&r);
        // The writers through the old column wrote until the swap, and stopped there.
        assert_eq!(r.ended_by_swap, r.name.ends_with("via kind"), "{}", r.name);
    }
    assert!(new_count.load(Ordering::Relaxed) > new_at_contract, "the writers wrote during the contract");
    assert!(old_count.load(Ordering::Relaxed) > old_at_contract, "the old column's writers wrote during the contract's job");

    let phase: String = one(&mut c, &format!("SELECT phase FROM migrate.all_changes WHERE change = {change}"));
    assert_eq!(phase, "contracted");
    let columns: Vec<String> = rows(
        &mut c,
        "SELECT attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' NOT NULL' ELSE '' END
           FROM pg_attribute WHERE attrelid = 'ev'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    );
    assert_eq!(columns, vec!["id bigint NOT NULL", "at date NOT NULL", "event_kind text NOT NULL"]);
    let tree = assert_fully_indexed(&mut c, "ev", "ev_kind_idx");
    // The partitions' indexes have the names they had, also on the partitions that came later.
    assert_eq!(
        tree,
        vec![
            "ev ev_kind_idx true",
            "ev_2024 ev_2024_kind_idx true",
            "ev_2025 ev_2025_kind_idx true",
            "ev_2030 ev_2030_kind_idx true",
            "ev_2031 ev_2031_kind_idx true",
            "ev_2032 ev_2032_kind_idx true",
            "ev_default ev_default_kind_idx true",
        ]
    );
    let def: String = one(&mut c, "SELECT pg_get_indexdef('ev_kind_idx'::regclass)");
    assert_eq!(def, "CREATE INDEX ev_kind_idx ON ONLY public.ev USING btree (event_kind)");
    assert_fully_indexed(&mut c, "ev", "ev_kind_id_at_key");
    let def: String = one(&mut c, "SELECT pg_get_indexdef('ev_kind_id_at_key'::regclass)");
    assert_eq!(def, "CREATE UNIQUE INDEX ev_kind_id_at_key ON ONLY public.ev USING btree (event_kind, id, at)");
    let leftovers: Vec<String> = rows(&mut c, "SELECT relname::text FROM pg_class WHERE relname LIKE '%migrate%'");
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let per_partition: i64 = one(&mut c, "SELECT count(*) FROM ev WHERE event_kind IS NULL");
    assert_eq!(per_partition, 0);
}

// ---------------------------------------------------------------------------------------------
// contract of a column in the primary key and a unique constraint; a partition key column
// ---------------------------------------------------------------------------------------------

#[test]
fn contract_moves_primary_key_and_unique_constraint_of_a_partitioned_table() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE pk (id int NOT NULL, at date NOT NULL, v text, PRIMARY KEY (id, at),
                          CONSTRAINT pk_v_id_at_key UNIQUE (v, id, at)) PARTITION BY RANGE (at);
         CREATE TABLE pk_1 PARTITION OF pk FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE pk_2 PARTITION OF pk FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY HASH (at);
         CREATE TABLE pk_2a PARTITION OF pk_2 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
         CREATE TABLE pk_2b PARTITION OF pk_2 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
         CREATE TABLE pk_other PARTITION OF pk DEFAULT;
         INSERT INTO pk SELECT g, date '2023-12-01' + (g % 800), 'v' || g FROM generate_series(1, 20000) g;",
    );
    // A partition key column can never be contracted (PostgreSQL cannot drop it).
    let (code, message, ..) = fails(&mut c, "SELECT migrate.expand_column('pk', 'at', new_type => 'timestamptz')");
    assert_eq!(code, "0A000");
    assert_eq!(message, "column \"at\" of table public.pk is in the partition key of public.pk, public.pk_2");

    // int -> bigint of a primary key column.
    let change: i64 = one(&mut c, "SELECT migrate.expand_column('pk', 'id', new_type => 'bigint', backfill => '{\"sleep_ms\": 0}')");
    let backfill: i64 = one(&mut c, &format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {change}"));
    wait_job(&mut c, backfill, 60);
    let plan: String = one(&mut c, &format!("SELECT migrate.contract_plan({change})"));
    assert!(plan.contains("concurrently on each partition for PRIMARY KEY \"pk_pkey\""), "{plan}");
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    wait_job(&mut c, job, 120);
    let constraints: Vec<String> = rows(
        &mut c,
        "SELECT line FROM (SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || (conparentid <> 0::oid) AS line
                             FROM pg_constraint WHERE contype IN ('p', 'u') AND conrelid::regclass::text LIKE 'pk%') s ORDER BY line COLLATE \"C\"",
    );
    assert_eq!(
        constraints,
        vec![
            "pk pk_pkey PRIMARY KEY (id, at) false",
            "pk pk_v_id_at_key UNIQUE (v, id, at) false",
            "pk_1 pk_1_pkey PRIMARY KEY (id, at) true",
            "pk_1 pk_1_v_id_at_key UNIQUE (v, id, at) true",
            "pk_2 pk_2_pkey PRIMARY KEY (id, at) true",
            "pk_2 pk_2_v_id_at_key UNIQUE (v, id, at) true",
            "pk_2a pk_2a_pkey PRIMARY KEY (id, at) true",
            "pk_2a pk_2a_v_id_at_key UNIQUE (v, id, at) true",
            "pk_2b pk_2b_pkey PRIMARY KEY (id, at) true",
            "pk_2b pk_2b_v_id_at_key UNIQUE (v, id, at) true",
            "pk_other pk_other_pkey PRIMARY KEY (id, at) true",
            "pk_other pk_other_v_id_at_key UNIQUE (v, id, at) true",
        ]
    );
    assert_fully_indexed(&mut c, "pk", "pk_pkey");
    assert_fully_indexed(&mut c, "pk", "pk_v_id_at_key");
    let typ: String = one(&mut c, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'pk_2a'::regclass AND attname = 'id'");
    assert_eq!(typ, "bigint");
    let (code, ..) = fails(&mut c, "INSERT INTO pk (id, at, v) VALUES (5, date '2023-12-01' + 5, 'x')");
    assert_eq!(code, "23505", "the primary key holds");
    let leftovers: Vec<String> = rows(&mut c, "SELECT relname::text FROM pg_class WHERE relname LIKE 'migrate%'");
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---------------------------------------------------------------------------------------------
// An immediate shutdown in the middle of the per-partition builds
// ---------------------------------------------------------------------------------------------

#[test]
fn immediate_shutdown_during_partition_builds_resumes_where_it_stopped() {
    let pg = Cluster::start_with(&["shared_preload_libraries = 'pg_migrate'", "migrate.database_name = 'app'"]);
    pg.create_db("app");
    let mut c = pg.connect("app");
    exec(
        &mut c,
        "CREATE TABLE t (id int, v text) PARTITION BY RANGE (id);
         CREATE TABLE t_p1 PARTITION OF t FOR VALUES FROM (0) TO (10000);
         CREATE TABLE t_p2 PARTITION OF t FOR VALUES FROM (10000) TO (20000);
         CREATE TABLE t_p3 PARTITION OF t FOR VALUES FROM (20000) TO (30000);
         CREATE TABLE t_p4 PARTITION OF t FOR VALUES FROM (30000) TO (40000);
         CREATE TABLE t_p5 PARTITION OF t FOR VALUES FROM (40000) TO (50000);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(0, 49999) g;",
    );
    // t_p1 and t_p2 are built; t_p3's build gets its INVALID index, then waits for an old snapshot.
    let lock = hold_lock(&pg, "t_p3", "SHARE UPDATE EXCLUSIVE");
    let change: i64 = one(&mut c, "SELECT migrate.create_index('t', '(v)')");
    let job = job_of(&mut c, change);
    worker_waits_in(&pg, "t_p3");
    // A partition attached while the job builds gets its index from PostgreSQL (a copy of the
    // parent's, which exists since the job's first step).
    exec(&mut c, "CREATE TABLE t_p6 (id int, v text); ALTER TABLE t ATTACH PARTITION t_p6 FOR VALUES FROM (50000) TO (60000)");
    let mut old = pg.connect("app");
    old.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class").unwrap();
    drop(lock);
    assert!(pg.wait_for(
        "app",
        60,
        "SELECT EXISTS (SELECT FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE c.relname = 't_p3_v_idx' AND NOT x.indisvalid)"
    ));
    let done_before: Vec<String> = rows(&mut c, "SELECT relname || ' ' || oid FROM pg_class WHERE relname IN ('t_p1_v_idx', 't_p2_v_idx') ORDER BY 1");
    assert_eq!(done_before.len(), 2);
    let attached: i64 = one(&mut c, "SELECT count(*) FROM pg_inherits WHERE inhparent = 't_v_idx'::regclass");
    assert_eq!(attached, 3, "t_p1's, t_p2's and t_p6's (a copy made by ATTACH PARTITION) indexes are attached before the crash");

    pg.restart("immediate");
    drop((c, old));

    // Nobody calls pg_migrate: the launcher resumes the job.
    assert!(pg.wait_for("app", 90, &format!("SELECT state IN ('done', 'failed') FROM migrate.jobs WHERE job = {job}")));
    let mut c = pg.connect("app");
    let (state, attempts): (String, i32) = c
        .query_one("SELECT state || coalesce(': ' || last_error, ''), attempts FROM migrate.jobs WHERE job = $1", &[&job])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(state, "done");
    assert_eq!(attempts, 2);
    let tree = assert_fully_indexed(&mut c, "t", "t_v_idx");
    assert_eq!(tree.len(), 7);
    let done_after: Vec<String> = rows(&mut c, "SELECT relname || ' ' || oid FROM pg_class WHERE relname IN ('t_p1_v_idx', 't_p2_v_idx') ORDER BY 1");
    assert_eq!(done_after, done_before, "finished partitions were skipped, not rebuilt");
    let count: i64 = one(&mut c, "SELECT count(*) FROM t WHERE v = 'v25000'");
    assert_eq!(count, 1);
}

// ---------------------------------------------------------------------------------------------
// drop_index of a partitioned index: one DROP INDEX, each try bounded by lock_timeout
// ---------------------------------------------------------------------------------------------

#[test]
fn drop_of_a_partitioned_index_waits_politely_behind_a_reader() {
    let (pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE d (id int, region text NOT NULL, v text) PARTITION BY LIST (region);
         CREATE TABLE d_eu PARTITION OF d FOR VALUES IN ('eu');
         CREATE TABLE d_us PARTITION OF d FOR VALUES IN ('us');
         CREATE TABLE d_rest PARTITION OF d DEFAULT;
         INSERT INTO d SELECT g, (ARRAY['eu', 'us', 'jp'])[g % 3 + 1], 'v' || g FROM generate_series(1, 9000) g;
         CREATE INDEX d_v_idx ON d (v);",
    );
    // A long reader of one partition: the DROP cannot get that partition's lock while it runs.
    let mut reader = pg.connect("app");
    reader.batch_execute("BEGIN; SELECT count(*) FROM d_us").unwrap();
    // A writer through the parent into another partition, timed.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let w = {
        let (stop, count) = (stop.clone(), count.clone());
        let mut c = pg.connect("app");
        std::thread::spawn(move || {
            c.batch_execute("SET lock_timeout = '2s'").unwrap();
            let mut r = Report { name: "writer into d_rest".into(), ..Default::default() };
            let mut n = 100_000i32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let t0 = Instant::now();
                let res = c.execute("INSERT INTO d VALUES ($1, 'jp', 'w')", &[&n]);
                let took = t0.elapsed();
                r.statements += 1;
                count.fetch_add(1, Ordering::Relaxed);
                if took > r.slowest {
                    r.slowest = took;
                    r.slowest_sql = format!("insert {n}");
                }
                if let Err(e) = res {
                    r.errors.push(format!("{e}"));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            r
        })
    };
    exec(&mut c, "SET migrate.lock_timeout = '100ms'; SET migrate.lock_retries = 30");
    let change: i64 = one(&mut c, "SELECT migrate.drop_index('d_v_idx')");
    let job = job_of(&mut c, change);
    let current: String = one(&mut c, &format!("SELECT current_step FROM migrate.jobs WHERE job = {job}"));
    assert!(current.starts_with("DROP INDEX IF EXISTS \"public\".\"d_v_idx\""), "{current}");
    // Let it try and give up a few times while the reader holds on.
    std::thread::sleep(Duration::from_millis(2500));
    let left: i64 = one(&mut c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'd%v_idx'");
    assert_eq!(left, 4, "not dropped while the reader holds its partition");
    reader.batch_execute("COMMIT").unwrap();
    wait_job(&mut c, job, 60);
    stop.store(true, Ordering::Relaxed);
    let r = w.join().unwrap();
    eprintln!("{}: {} statements, slowest {:?}", r.name, r.statements, r.slowest);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // Each try holds the parent's lock at most its lock_timeout (100 ms, growing to 400 ms).
    assert!(r.slowest < Duration::from_millis(1000), "the writer waited {:?}", r.slowest);
    let left: i64 = one(&mut c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'd%v_idx'");
    assert_eq!(left, 0, "the index of every partition went with it");
}

// ---------------------------------------------------------------------------------------------
// Partition DDL while the job builds: dropped, detached, renamed, moved (review finding 1)
// ---------------------------------------------------------------------------------------------

fn job_state(c: &mut Client, job: i64) -> String {
    one(c, &format!("SELECT state || coalesce(': ' || last_error, '') FROM migrate.jobs WHERE job = {job}"))
}

#[test]
fn partitions_dropped_detached_renamed_or_moved_before_their_turn_are_skipped() {
    let (pg, mut c) = app();
    exec(
        &mut c,
        "CREATE SCHEMA other;
         CREATE TABLE y (id int, v text) PARTITION BY RANGE (id);
         CREATE TABLE y_a PARTITION OF y FOR VALUES FROM (0) TO (1000);
         CREATE TABLE y_b PARTITION OF y FOR VALUES FROM (1000) TO (2000);
         CREATE TABLE y_c PARTITION OF y FOR VALUES FROM (2000) TO (3000);
         CREATE TABLE y_d PARTITION OF y FOR VALUES FROM (3000) TO (4000);
         CREATE TABLE y_e PARTITION OF y FOR VALUES FROM (4000) TO (5000);
         INSERT INTO y SELECT g, 'v' || g FROM generate_series(0, 4999) g;",
    );
    // The job is listed, then waits at y_a's build while the others change under it.
    let lock = hold_lock(&pg, "y_a", "SHARE UPDATE EXCLUSIVE");
    let change: i64 = one(&mut c, "SELECT migrate.create_index('y', '(v)')");
    let job = job_of(&mut c, change);
    worker_waits_in(&pg, "y_a");
    exec(
        &mut c,
        "DROP TABLE y_b;
         ALTER TABLE y_c RENAME TO y_c_renamed; ALTER TABLE y_c_renamed SET SCHEMA other;
         ALTER TABLE y DETACH PARTITION y_d;",
    );
    drop(lock);
    wait_job(&mut c, job, 120);
    let tree = assert_fully_indexed(&mut c, "y", "y_v_idx");
    assert_eq!(
        tree,
        vec!["other.y_c_renamed other.y_c_renamed_v_idx true", "y y_v_idx true", "y_a y_a_v_idx true", "y_e y_e_v_idx true"],
        "the renamed and moved partition is indexed under its new name"
    );
    let on_detached: i64 = one(&mut c, "SELECT count(*) FROM pg_index WHERE indrelid = 'y_d'::regclass");
    assert_eq!(on_detached, 0, "nothing built on the table detached before its turn");

    // The last partition without an index is detached while its index is built: the job drops
    // what it built there, and says that the parent index can no longer become valid, and how
    // to get back: abort and a new create_index.
    exec(
        &mut c,
        "CREATE TABLE x (id int, v text) PARTITION BY RANGE (id);
         CREATE TABLE x_a PARTITION OF x FOR VALUES FROM (0) TO (1000);
         CREATE TABLE x_b PARTITION OF x FOR VALUES FROM (1000) TO (2000);
         CREATE TABLE x_c PARTITION OF x FOR VALUES FROM (2000) TO (3000);
         INSERT INTO x SELECT g, 'v' || g FROM generate_series(0, 2999) g;",
    );
    let mut holder = pg.connect("app");
    holder.batch_execute("BEGIN; LOCK TABLE x_c IN SHARE UPDATE EXCLUSIVE MODE").unwrap();
    let change: i64 = one(&mut c, "SELECT migrate.create_index('x', '(v)')");
    let job = job_of(&mut c, change);
    worker_waits_in(&pg, "x_c");
    holder.batch_execute("ALTER TABLE x DETACH PARTITION x_c; COMMIT").unwrap();
    assert!(pg.wait_for("app", 90, &format!("SELECT state IN ('failed', 'done') FROM migrate.jobs WHERE job = {job}")));
    let state = job_state(&mut c, job);
    assert!(state.starts_with("failed: index public.x_v_idx stays INVALID although every partition has its index"), "{state}");
    let on_detached: i64 = one(&mut c, "SELECT count(*) FROM pg_index WHERE indrelid = 'x_c'::regclass");
    assert_eq!(on_detached, 0, "the index the job built on x_c before it was detached is dropped");
    assert!(state.contains("Drop public.x_v_idx and build it again: for a migrate.create_index change, SELECT migrate.abort(change)"), "the way back: {state}");
    one::<String>(&mut c, &format!("SELECT migrate.abort({change})"));
    wait_change(&mut c, change, 60);
    let left: i64 = one(&mut c, "SELECT count(*) FROM pg_partition_tree('x') t JOIN pg_index x ON x.indrelid = t.relid");
    assert_eq!(left, 0);
    let again: i64 = one(&mut c, "SELECT migrate.create_index('x', '(v)')");
    wait_change(&mut c, again, 60);
    assert_fully_indexed(&mut c, "x", "x_v_idx");
}

// ---------------------------------------------------------------------------------------------
// abort of create_index undoes only its own work (review finding 2)
// ---------------------------------------------------------------------------------------------

#[test]
fn abort_of_create_index_keeps_adopted_and_foreign_indexes() {
    let (pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE u (id int NOT NULL, k text, v text) PARTITION BY RANGE (id);
         CREATE TABLE u_a PARTITION OF u FOR VALUES FROM (0) TO (1000);
         CREATE TABLE u_b PARTITION OF u FOR VALUES FROM (1000) TO (2000);
         CREATE TABLE u_c PARTITION OF u FOR VALUES FROM (2000) TO (3000);
         INSERT INTO u SELECT g, 'k' || g, 'v' || g FROM generate_series(0, 2999) g;
         -- the application's own rule on one partition: the job attaches it instead of building one
         CREATE UNIQUE INDEX u_a_own_uq ON u_a (id, k);
         -- not UNIQUE, or with a predicate: not what the unique index needs, never adopted
         CREATE INDEX u_b_plain ON u_b (id, k);
         CREATE UNIQUE INDEX u_b_some ON u_b (id, k) WHERE v IS NOT NULL;",
    );
    let own: u32 = one(&mut c, "SELECT 'u_a_own_uq'::regclass::oid");
    let lock = hold_lock(&pg, "u_c", "SHARE UPDATE EXCLUSIVE");
    let change: i64 = one(&mut c, "SELECT migrate.create_index('u', '(id, k)', name => 'u_id_k_uq', is_unique => true)");
    let job = job_of(&mut c, change);
    worker_waits_in(&pg, "u_c");
    let attached: Vec<String> = rows(&mut c, "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'u_id_k_uq'::regclass ORDER BY 1");
    assert_eq!(attached, vec!["u_a_own_uq", "u_b_id_k_uq"], "u_a's own index adopted, u_b's built");
    let built_b: u32 = one(&mut c, "SELECT 'u_b_id_k_uq'::regclass::oid");
    // Cancelled at u_c's build: the name it chose for u_c's index is then taken by somebody else.
    exec(&mut c, &format!("SELECT migrate.cancel({job})"));
    drop(lock);
    assert!(pg.wait_for("app", 60, &format!("SELECT state = 'cancelled' FROM migrate.jobs WHERE job = {job}")));
    assert!(pg.wait_for(
        "app",
        60,
        "SELECT NOT EXISTS (SELECT FROM pg_index WHERE NOT indisvalid AND indexrelid <> 'u_id_k_uq'::regclass)
            AND NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_migrate job worker')"
    ));
    exec(&mut c, "CREATE INDEX u_c_id_k_uq ON u_c (id, k)");
    let theirs: u32 = one(&mut c, "SELECT 'u_c_id_k_uq'::regclass::oid");

    one::<String>(&mut c, &format!("SELECT migrate.abort({change})"));
    wait_change(&mut c, change, 120);
    let left: Vec<String> = rows(
        &mut c,
        "SELECT x.indexrelid::regclass || ' ' || x.indisunique || ' ' || x.indisvalid || ' ' || c.relispartition
           FROM pg_partition_tree('u') t JOIN pg_index x ON x.indrelid = t.relid JOIN pg_class c ON c.oid = x.indexrelid
          ORDER BY 1",
    );
    assert_eq!(
        left,
        vec!["u_a_own_uq true true false", "u_b_plain false true false", "u_b_some true true false", "u_c_id_k_uq false true false"],
        "the job's own indexes are gone, the others are there"
    );
    let gone: bool = one(&mut c, &format!("SELECT NOT EXISTS (SELECT FROM pg_class WHERE oid = {built_b}) AND to_regclass('u_id_k_uq') IS NULL"));
    assert!(gone, "the partitioned index and the index the job built on u_b are dropped");
    let still: u32 = one(&mut c, "SELECT 'u_c_id_k_uq'::regclass::oid");
    assert_eq!(still, theirs, "an index the job never built is not dropped because it has the name the job chose");
    let def: String = one(&mut c, "SELECT pg_get_indexdef('u_a_own_uq'::regclass)");
    assert_eq!(def, "CREATE UNIQUE INDEX u_a_own_uq ON public.u_a USING btree (id, k)");
    let rebuilt: u32 = one(&mut c, "SELECT 'u_a_own_uq'::regclass::oid");
    assert_ne!(rebuilt, own, "built again under its name (it went with the partitioned index)");
    let (code, ..) = fails(&mut c, "INSERT INTO u VALUES (5, 'k5', 'again')");
    assert_eq!(code, "23505", "the application's rule holds again");
}

// ---------------------------------------------------------------------------------------------
// contract on a partitioned table: partition-local objects refused (finding 4), partitions
// created and attached while the change is open, a swap bounded as a whole that never builds an
// index (finding 3)
// ---------------------------------------------------------------------------------------------

#[test]
fn contract_refuses_partition_local_objects_and_swaps_without_building() {
    let (pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE q (id int NOT NULL, at date NOT NULL, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE q_24 PARTITION OF q FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE q_25 PARTITION OF q FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO q SELECT g, date '2024-01-01' + (g % 700), 'v' || g FROM generate_series(1, 20000) g;
         -- what only one partition has, on the column to change
         CREATE INDEX q_25_hot ON q_25 (id) WHERE v = 'x';
         ALTER TABLE q_24 ADD CONSTRAINT q_24_small CHECK (id < 100000000);",
    );
    let change: i64 = one(&mut c, "SELECT migrate.expand_column('q', 'id', new_type => 'bigint', backfill => '{\"sleep_ms\": 0}')");
    let backfill: i64 = one(&mut c, &format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {change}"));
    wait_job(&mut c, backfill, 60);
    let (code, message, detail, hint) = fails(&mut c, &format!("SELECT migrate.contract({change})"));
    assert_eq!(code, "2BP01", "{message}");
    assert_eq!(message, "partitions of table public.q have their own indexes or constraints on column \"id\"");
    assert!(detail.starts_with("constraint q_24_small of partition public.q_24, index public.q_25_hot of partition public.q_25."), "{detail}");
    assert!(hint.starts_with("Nothing was changed."), "{hint}");
    let phase: String = one(&mut c, &format!("SELECT phase FROM migrate.all_changes WHERE change = {change}"));
    assert_eq!(phase, "open");
    exec(&mut c, "DROP INDEX q_25_hot; ALTER TABLE q_24 DROP CONSTRAINT q_24_small");

    // A partition created and one attached while the change is open: PostgreSQL gives both the
    // sync trigger; writers go through both.
    let new_column: String = one(&mut c, &format!("SELECT new_column FROM migrate.all_changes WHERE change = {change}"));
    exec(
        &mut c,
        "CREATE TABLE q_26 PARTITION OF q FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         CREATE TABLE q_27 (LIKE q INCLUDING CONSTRAINTS);
         ALTER TABLE q ATTACH PARTITION q_27 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2)
        .map(|k: i32| {
            let (stop, count) = (stop.clone(), count.clone());
            let mut w = pg.connect("app");
            std::thread::spawn(move || {
                w.batch_execute("SET lock_timeout = '5s'").unwrap();
                let mut r = Report { name: format!("writer {k} into q"), ..Default::default() };
                let mut n = 0i32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // Into q_24 .. q_27 in turn, through the parent and the old column's name.
                    let year = 2024 + n % 4;
                    let t0 = Instant::now();
                    let res = w.execute(
                        "INSERT INTO q (id, at, v) VALUES ($1::int, make_date($2::int, 3, 1), 'w')",
                        &[&(1_000_000 * (k + 1) + n), &year],
                    );
                    let took = t0.elapsed();
                    r.statements += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                    if took > r.slowest {
                        r.slowest = took;
                        r.slowest_sql = format!("insert {n} into {year}");
                    }
                    if let Err(e) = res {
                        r.errors.push(format!("{e}"));
                    }
                    std::thread::sleep(Duration::from_millis(3));
                }
                r
            })
        })
        .collect();
    assert!(wait_until(30, || count.load(Ordering::Relaxed) > 50));
    let synced: Vec<String> = rows(
        &mut c,
        &format!(
            "SELECT t || ' ' || n FROM (SELECT tableoid::regclass::text AS t, count(*) FILTER (WHERE {new_column} IS DISTINCT FROM id) AS n
                                          FROM q WHERE at >= '2026-01-01' GROUP BY 1) s ORDER BY 1"
        ),
    );
    assert_eq!(synced, vec!["q_26 0", "q_27 0"], "rows written through the created and the attached partition are synced");

    // The swap waits for a reader of q_24: each of its tries holds the table at most its own
    // lock_timeout. Meanwhile a partition is attached after the job listed the leaves: the swap
    // does not build its unique index; the job builds it concurrently, then swaps.
    exec(&mut c, "SET migrate.lock_timeout = '200ms'; SET migrate.lock_retries = 200; SET migrate.retry_backoff = '20ms'");
    // The reader queues behind contract()'s own transaction and gets q_24 when it commits, before
    // the job's worker starts (its concurrent builds do not wait for a reader without a snapshot).
    let job: i64;
    let mut reader = {
        let mut tx = c.transaction().unwrap();
        job = tx.query_one("SELECT migrate.contract($1)", &[&change]).unwrap().get(0);
        let mut reader = pg.connect("app");
        let queued = std::thread::spawn(move || {
            reader.batch_execute("BEGIN; SELECT count(*) FROM q_24").unwrap();
            reader
        });
        let mut watch = pg.connect("app");
        assert!(wait_until(30, || {
            one::<i64>(&mut watch, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query = 'BEGIN; SELECT count(*) FROM q_24'") == 1
        }));
        tx.commit().unwrap();
        queued.join().unwrap()
    };
    worker_waits_in(&pg, "finish_contract");
    exec(
        &mut c,
        "CREATE TABLE q_28 (LIKE q INCLUDING CONSTRAINTS);
         ALTER TABLE q ATTACH PARTITION q_28 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');",
    );
    std::thread::sleep(Duration::from_millis(1500));
    reader.batch_execute("COMMIT").unwrap();
    wait_job(&mut c, job, 120);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for h in writers {
        let r = h.join().unwrap();
        eprintln!("{}: {} statements, slowest {:?}: {}", r.name, r.statements, r.slowest, r.slowest_sql);
        assert!(r.errors.is_empty(), "{}: {:?}", r.name, r.errors);
        // One try is at most 4 × 200 ms; the margin is for a loaded machine, not for a second try.
        assert!(r.slowest < Duration::from_millis(1300), "{} waited {:?}: {}", r.name, r.slowest, r.slowest_sql);
    }
    let did: String = one(
        &mut c,
        &format!(
            "SELECT string_agg(coalesce(s->'internal'->>'do', 'sql'), ' ' ORDER BY n) FROM migrate.all_jobs, jsonb_array_elements(steps) WITH ORDINALITY e(s, n) WHERE id = {job}"
        ),
    );
    assert!(did.ends_with("leaf_indexes finish_contract leaf_indexes sql finish_contract"), "the swap found q_28 without its copy and had it built first: {did}");
    let constraints: Vec<String> = rows(
        &mut c,
        "SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || (conparentid <> 0::oid)
           FROM pg_constraint WHERE contype = 'p' AND conrelid::regclass::text LIKE 'q%' ORDER BY 1",
    );
    assert_eq!(
        constraints,
        vec![
            "q q_pkey PRIMARY KEY (id, at) false",
            "q_24 q_24_pkey PRIMARY KEY (id, at) true",
            "q_25 q_25_pkey PRIMARY KEY (id, at) true",
            "q_26 q_26_pkey PRIMARY KEY (id, at) true",
            "q_27 q_27_pkey PRIMARY KEY (id, at) true",
            "q_28 q_28_pkey PRIMARY KEY (id, at) true",
        ]
    );
    assert_fully_indexed(&mut c, "q", "q_pkey");
    let typ: String = one(&mut c, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'q_28'::regclass AND attname = 'id'");
    assert_eq!(typ, "bigint");
}

// ---------------------------------------------------------------------------------------------
// An immediate shutdown between a partition's build and its ATTACH (review finding 11)
// ---------------------------------------------------------------------------------------------

#[test]
fn immediate_shutdown_between_a_build_and_its_attach_attaches_the_same_index() {
    let pg = Cluster::start_with(&["shared_preload_libraries = 'pg_migrate'", "migrate.database_name = 'app'"]);
    pg.create_db("app");
    let mut c = pg.connect("app");
    exec(
        &mut c,
        "CREATE TABLE s (id int, v text) PARTITION BY RANGE (id);
         CREATE TABLE s_a PARTITION OF s FOR VALUES FROM (0) TO (10000);
         CREATE TABLE s_b PARTITION OF s FOR VALUES FROM (10000) TO (20000);
         INSERT INTO s SELECT g, 'v' || g FROM generate_series(0, 19999) g;
         SET migrate.lock_timeout = '100ms'; SET migrate.lock_retries = 1000;",
    );
    // s_a's build waits for this lock; once it is there, a COMMENT on the partitioned index
    // (SHARE UPDATE EXCLUSIVE on it) keeps s_a's ATTACH waiting, try after try.
    let lock = hold_lock(&pg, "s_a", "SHARE UPDATE EXCLUSIVE");
    let change: i64 = one(&mut c, "SELECT migrate.create_index('s', '(v)')");
    let job = job_of(&mut c, change);
    worker_waits_in(&pg, "s_a");
    let mut holder = pg.connect("app");
    holder.batch_execute("BEGIN; COMMENT ON INDEX s_v_idx IS 'held'").unwrap();
    drop(lock);
    worker_waits_in(&pg, "ATTACH PARTITION");
    let built: u32 = one(&mut c, "SELECT 's_a_v_idx'::regclass::oid");
    let recorded: bool = one(
        &mut c,
        &format!(
            "SELECT steps @? '$[*].internal ? (@.do == \"partition_index\" && @.built == {built})' FROM migrate.all_jobs WHERE id = {job}"
        ),
    );
    assert!(recorded, "the build's OID is saved before the ATTACH");

    pg.restart("immediate");
    drop((c, holder));

    assert!(pg.wait_for("app", 90, &format!("SELECT state IN ('done', 'failed') FROM migrate.jobs WHERE job = {job}")));
    let mut c = pg.connect("app");
    let (state, attempts): (String, i32) = c
        .query_one("SELECT state || coalesce(': ' || last_error, ''), attempts FROM migrate.jobs WHERE job = $1", &[&job])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(state, "done");
    assert_eq!(attempts, 2);
    let tree = assert_fully_indexed(&mut c, "s", "s_v_idx");
    assert_eq!(tree, vec!["s s_v_idx true", "s_a s_a_v_idx true", "s_b s_b_v_idx true"]);
    let after: u32 = one(&mut c, "SELECT 's_a_v_idx'::regclass::oid");
    assert_eq!(after, built, "the index built before the shutdown is the one attached, not built again");
}

// ---------------------------------------------------------------------------------------------
// A migration's own CREATE INDEX CONCURRENTLY on a partitioned table (and its down SQL's DROP
// INDEX CONCURRENTLY): PostgreSQL refuses CONCURRENTLY there; the version's job builds it
// partition by partition instead
// ---------------------------------------------------------------------------------------------

#[test]
fn a_migrations_concurrent_index_on_a_partitioned_table_is_built_partition_by_partition() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE ev (id bigint, kind text NOT NULL, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY HASH (id);
         CREATE TABLE ev_2025_a PARTITION OF ev_2025 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
         CREATE TABLE ev_2025_b PARTITION OF ev_2025 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
         INSERT INTO ev SELECT g, 'k' || (g % 7), date '2024-01-01' + (g % 700) FROM generate_series(1, 20000) g;",
    );
    let state: String = one(
        &mut c,
        "SELECT migrate.apply('2_ev_kind',
            $up$-- the index the report needs
                CREATE INDEX CONCURRENTLY ev_kind_idx ON public.ev (kind) WHERE kind <> 'k0';$up$,
            $down$DROP INDEX CONCURRENTLY public.ev_kind_idx;$down$)",
    );
    assert_eq!(state, "applying");
    exec(&mut c, "CALL migrate.wait_version('2_ev_kind', '120 s')");
    assert_eq!(one::<String>(&mut c, "SELECT state FROM migrate.status() WHERE version = '2_ev_kind'"), "applied");
    let tree = assert_fully_indexed(&mut c, "ev", "ev_kind_idx");
    assert_eq!(tree.len(), 5, "{tree:#?}");
    let def: String = one(&mut c, "SELECT pg_get_indexdef('ev_kind_idx'::regclass)");
    assert!(def.contains("WHERE (kind <> 'k0'::text)"), "{def}");

    // Rolled back: the down SQL's DROP INDEX CONCURRENTLY of the partitioned index.
    one::<String>(&mut c, "SELECT migrate.rollback()");
    exec(&mut c, "CALL migrate.wait_version('2_ev_kind', '120 s')");
    assert_eq!(one::<String>(&mut c, "SELECT state FROM migrate.status() WHERE version = '2_ev_kind'"), "rolled_back");
    assert_eq!(one::<i64>(&mut c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'ev%kind%'"), 0, "every partition's index went with it");

    // Without a name pg_migrate cannot follow the index: a clear error from the job.
    one::<String>(&mut c, "SELECT migrate.apply('3_unnamed', 'CREATE INDEX CONCURRENTLY ON ev (kind);')");
    let err = c.batch_execute("CALL migrate.wait_version('3_unnamed', '120 s')").unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "0A000", "{db:?}");
    assert!(db.message().contains("needs an index name"), "{}", db.message());
    assert_eq!(one::<i64>(&mut c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"), 0);
}
