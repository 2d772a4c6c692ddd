//! What hangs on a column besides its indexes and constraints (issue 15), at the contract of an
//! expand_column change: column grants, comment, statistics target, n_distinct, storage,
//! compression, collation, REPLICA IDENTITY USING INDEX, a publication's column list and row
//! filter, extended statistics, all carried to the new column while writers (one of them a
//! non-superuser role with column grants only) write through the old column and then the new
//! one; and what cannot be carried (a generated column, a trigger, a rule) refused by name with
//! nothing changed.

use pg_migrate_integration::{app, exec, fails, one, Client, Cluster};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};


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

/// Everything the tests look at on table `t`, one line each: columns with their collation,
/// storage, compression, statistics target, options, grants and comments; constraints, indexes
/// (replica identity marked), triggers, rules, extended statistics, publications.
fn catalog(c: &mut Client, t: &str) -> Vec<String> {
    rows(
        c,
        &format!(
            "SELECT line FROM (
               SELECT format('column %s %s collation=%s notnull=%s storage=%s compression=%s stattarget=%s options=%s acl=%s comment=%s',
                             a.attname, format_type(a.atttypid, a.atttypmod), a.attcollation::regcollation, a.attnotnull, a.attstorage,
                             nullif(a.attcompression::text, ''), coalesce(a.attstattarget::int, -1),
                             (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg\\_attver=%'),
                             a.attacl, col_description(a.attrelid, a.attnum)) AS line
                 FROM pg_attribute a WHERE a.attrelid = '{t}'::regclass AND a.attnum > 0 AND NOT a.attisdropped
               UNION ALL
               SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint WHERE conrelid = '{t}'::regclass
                  AND contype <> 'n' -- 18's NOT NULL rows: notnull= of the columns says it
               UNION ALL
               SELECT format('index %s valid=%s replident=%s', pg_get_indexdef(indexrelid), indisvalid, indisreplident)
                 FROM pg_index WHERE indrelid = '{t}'::regclass
               UNION ALL
               SELECT format('replica identity %s', relreplident) FROM pg_class WHERE oid = '{t}'::regclass
               UNION ALL
               SELECT format('trigger %s', pg_get_triggerdef(oid)) FROM pg_trigger WHERE tgrelid = '{t}'::regclass
               UNION ALL
               SELECT format('rule %s', pg_get_ruledef(oid)) FROM pg_rewrite WHERE ev_class = '{t}'::regclass
               UNION ALL
               SELECT format('statistics %s target=%s comment=%s', pg_get_statisticsobjdef(oid), coalesce(stxstattarget::int, -1),
                             obj_description(oid, 'pg_statistic_ext'))
                 FROM pg_statistic_ext WHERE stxrelid = '{t}'::regclass
               UNION ALL
               SELECT format('publication %s columns=%s filter=%s', pubname, attnames, rowfilter)
                 FROM pg_publication_tables WHERE schemaname = 'public' AND tablename = '{t}') s
             ORDER BY line COLLATE \"C\""
        ),
    )
}

#[derive(Default, Debug)]
struct Report {
    name: String,
    statements: u64,
    /// Statements through the new column (after the switch, for a writer that switches).
    after_switch: u64,
    errors: Vec<String>,
    slowest: Duration,
    slowest_sql: String,
    switched: bool,
}

/// Inserts and updates `acct` through `old` until contract's swap drops it (42703), then
/// through `new`, until `stop`; lock_timeout 2 s. As `user`: the reader role updates and reads
/// through its column grants only.
fn writer(pg: &Cluster, user: &str, k: i64, old: &'static str, new: &'static str, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) -> std::thread::JoinHandle<Report> {
    let mut c = pg.connect_as("app", user);
    let name = format!("writer {k} as {user} via {old} then {new}");
    let inserts = user == "postgres";
    std::thread::spawn(move || {
        let mut r = Report { name, ..Default::default() };
        c.batch_execute("SET lock_timeout = '2s'").unwrap();
        let mut column = old;
        let mut n: i64 = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let inserting = inserts && n % 3 == 0;
            let id = if inserting { 1_000_000 * (k + 1) + n } else { (n * 7919 + k * 13) % 20_000 + 1 };
            let sql = if inserting {
                format!("INSERT INTO acct (id, {column}, plan) VALUES ($1::int, 'w' || $1::int || '@example.com', 'free')")
            } else if n % 2 == 0 {
                format!("UPDATE acct SET {column} = 'u{k}.' || $1::int || '@example.com' WHERE id = $1::int")
            } else {
                format!("SELECT {column}::text FROM acct WHERE id = $1::int")
            };
            let t0 = Instant::now();
            let res = c.query(sql.as_str(), &[&(id as i32)]);
            let took = t0.elapsed();
            r.statements += 1;
            if r.switched {
                r.after_switch += 1;
            }
            count.fetch_add(1, Ordering::Relaxed);
            if took > r.slowest {
                r.slowest = took;
                r.slowest_sql = format!("{sql} ({id})");
            }
            if let Err(e) = res {
                if column == old && old != new && e.as_db_error().is_some_and(|d| d.code().code() == "42703") {
                    column = new;
                    r.switched = true;
                    continue;
                }
                if r.errors.len() < 10 {
                    r.errors.push(format!("{sql} ({id}) after {took:?}: {e} {:?}", e.as_db_error().map(|d| (d.code().code().to_string(), d.message().to_string()))));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        r
    })
}

fn check(r: &Report) {
    eprintln!("{}: {} statements ({} after the switch), slowest {:?}: {}", r.name, r.statements, r.after_switch, r.slowest, r.slowest_sql);
    assert!(r.errors.is_empty(), "{}: failed statements: {:#?}", r.name, r.errors);
    assert!(r.slowest < Duration::from_secs(2), "{}: waited {:?} (lock_timeout is 2 s): {}", r.name, r.slowest, r.slowest_sql);
    assert!(r.statements > 0);
}

#[test]
fn contract_carries_grants_comment_settings_replica_identity_publication_and_statistics() {
    let (pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE acct (id int PRIMARY KEY, email text COLLATE \"C\" NOT NULL, plan text NOT NULL DEFAULT 'free');
         INSERT INTO acct SELECT g, 'a' || g || '@example.com', CASE WHEN g % 10 = 0 THEN 'pro' ELSE 'free' END FROM generate_series(1, 20000) g;
         CREATE UNIQUE INDEX acct_email_key ON acct (email);
         ALTER TABLE acct REPLICA IDENTITY USING INDEX acct_email_key;
         COMMENT ON COLUMN acct.email IS 'login e-mail; it''s unique';
         ALTER TABLE acct ALTER COLUMN email SET STATISTICS 500, ALTER COLUMN email SET (n_distinct = -1),
                          ALTER COLUMN email SET STORAGE MAIN, ALTER COLUMN email SET COMPRESSION pglz;
         CREATE STATISTICS acct_email_plan (ndistinct, dependencies) ON email, plan FROM acct;
         ALTER STATISTICS acct_email_plan SET STATISTICS 300;
         COMMENT ON STATISTICS acct_email_plan IS 'e-mail domain predicts the plan';
         CREATE STATISTICS acct_email_lower ON (lower(email)) FROM acct;
         CREATE ROLE reader LOGIN;
         CREATE ROLE auditor;
         GRANT SELECT (id, email, plan), UPDATE (email) ON acct TO reader;
         GRANT REFERENCES (email) ON acct TO auditor WITH GRANT OPTION;
         CREATE PUBLICATION acct_pub FOR TABLE acct (id, email, plan) WHERE (email <> '');
         CREATE PUBLICATION acct_all FOR TABLE acct;
         ANALYZE acct;",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut writers = vec![
        writer(&pg, "postgres", 0, "email", "login", stop.clone(), count.clone()),
        writer(&pg, "reader", 1, "email", "login", stop.clone(), count.clone()),
    ];
    let change: i64 = one(
        &mut c,
        "SELECT migrate.expand_column('acct', 'email', new_name => 'login', new_type => 'varchar(320)', backfill => '{\"sleep_ms\": 0}')",
    );
    // The new column keeps the old one's collation: varchar(320) COLLATE "C".
    let collation: String = one(&mut c, "SELECT attcollation::regcollation::text FROM pg_attribute WHERE attrelid = 'acct'::regclass AND attname = 'login'");
    assert_eq!(collation, "\"C\"");
    // The new column has the old one's grants from the expand on: the reader may use it now.
    let acl: String = one(&mut c, "SELECT attacl::text FROM pg_attribute WHERE attrelid = 'acct'::regclass AND attname = 'login'");
    assert_eq!(acl, "{reader=rw/postgres,auditor=x*/postgres}");
    writers.push(writer(&pg, "postgres", 2, "login", "login", stop.clone(), count.clone()));
    writers.push(writer(&pg, "reader", 3, "login", "login", stop.clone(), count.clone()));
    wait_backfill(&mut c, change);

    let plan: String = one(&mut c, &format!("SELECT migrate.contract_plan({change})"));
    for said in [
        "publication \"acct_pub\"'s column list and row filter",
        "column grants (",
        "SELECT to reader",
        "UPDATE to reader",
        "REFERENCES to auditor",
        "the comment",
        "SET STATISTICS 500",
        "SET (n_distinct = -1)",
        "SET STORAGE MAIN",
        "SET COMPRESSION pglz",
        "REPLICA IDENTITY USING INDEX \"acct_email_key\"",
        "statistics public.acct_email_plan",
        "statistics public.acct_email_lower",
    ] {
        assert!(plan.contains(said), "contract_plan says {said:?}: {plan}");
    }
    let before = count.load(Ordering::Relaxed);
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    wait_job(&mut c, job, 180);
    // The writers keep going on the new column for a moment after the swap.
    let after_swap = count.load(Ordering::Relaxed);
    assert!(pg_migrate_integration::wait_until(60, || count.load(Ordering::Relaxed) > after_swap + 50), "writers go on after the swap");
    stop.store(true, Ordering::Relaxed);
    for h in writers {
        let r = h.join().unwrap();
        check(&r);
        if r.name.contains("via email") {
            assert!(r.switched && r.after_switch > 0, "{} moved to the new column at the swap", r.name);
        }
    }
    assert!(count.load(Ordering::Relaxed) > before, "the writers wrote during the contract");
    assert_eq!(phase(&mut c, change), "contracted");

    let got = catalog(&mut c, "acct");
    let want = vec![
        "column id integer collation=- notnull=t storage=p compression= stattarget=-1 options= acl={reader=r/postgres} comment=",
        "column login character varying(320) collation=\"C\" notnull=t storage=m compression=p stattarget=500 options=n_distinct=-1 \
         acl={reader=rw/postgres,auditor=x*/postgres} comment=login e-mail; it's unique",
        "column plan text collation=\"default\" notnull=t storage=x compression= stattarget=-1 options= acl={reader=r/postgres} comment=",
        "constraint acct_pkey PRIMARY KEY (id)",
        "index CREATE UNIQUE INDEX acct_email_key ON public.acct USING btree (login) valid=t replident=t",
        "index CREATE UNIQUE INDEX acct_pkey ON public.acct USING btree (id) valid=t replident=f",
        "publication acct_all columns={id,plan,login} filter=",
        "publication acct_pub columns={id,plan,login} filter=((login)::text <> ''::text)",
        "replica identity i",
        "statistics CREATE STATISTICS public.acct_email_lower ON lower(login::text) FROM acct target=-1 comment=",
        "statistics CREATE STATISTICS public.acct_email_plan (ndistinct, dependencies) ON plan, login FROM acct target=300 comment=e-mail domain predicts the plan",
    ];
    let mut want: Vec<String> = want.into_iter().map(String::from).collect();
    want.sort();
    assert_eq!(got, want);

    // The reader reads and updates through its carried grants; the new column only.
    let mut reader = pg.connect_as("app", "reader");
    reader.batch_execute("UPDATE acct SET login = 'r@example.com' WHERE id = 5").unwrap();
    let read: String = reader.query_one("SELECT login::text FROM acct WHERE id = 5", &[]).unwrap().get(0);
    assert_eq!(read, "r@example.com");
    let denied = reader.batch_execute("UPDATE acct SET plan = 'pro' WHERE id = 5").unwrap_err();
    assert_eq!(denied.as_db_error().map(|d| d.code().code()), Some("42501"));
    // The replica identity and the publication work: an update of a published table needs both.
    exec(&mut c, "UPDATE acct SET plan = 'pro' WHERE id = 6; DELETE FROM acct WHERE id = 7");
    // Collation "C": uppercase sorts before lowercase.
    exec(&mut c, "INSERT INTO acct (id, login) VALUES (30001, 'Zed@example.com'), (30002, 'abe@example.com')");
    let order = rows(&mut c, "SELECT login::text FROM acct WHERE id IN (30001, 30002) ORDER BY login");
    assert_eq!(order, vec!["Zed@example.com", "abe@example.com"], "ordered by the carried collation C");
}

fn simple(c: &mut Client, extra: &str) -> i64 {
    exec(
        c,
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, note text);
             INSERT INTO t SELECT g, g, 'n' FROM generate_series(1, 3000) g;
             {extra}"
        ),
    );
    let change: i64 = one(c, "SELECT migrate.expand_column('t', 'a', new_name => 'b', new_type => 'bigint', backfill => '{\"sleep_ms\": 0}')");
    exec(c, &format!("CALL migrate.wait_change({change}, '120 seconds')"));
    change
}

/// A contract refused: SQLSTATE and message as expected, contract_plan says the same, and the
/// table, the change and its jobs are as they were.
fn refused(c: &mut Client, change: i64, code: &str, names: &str) -> (String, String, String, String) {
    let before = catalog(c, "t");
    let jobs: i64 = one(c, "SELECT count(*) FROM migrate.jobs");
    let e = fails(c, &format!("SELECT migrate.contract({change})"));
    assert_eq!(e.0, code, "{e:?}");
    assert!(e.1.contains(names) || e.2.contains(names), "names {names}: {e:?}");
    assert!(e.3.starts_with("Nothing was changed."), "{e:?}");
    let plan: String = one(c, &format!("SELECT migrate.contract_plan({change})"));
    assert!(plan.starts_with("cannot contract") && plan.contains(names), "{plan}");
    assert_eq!(catalog(c, "t"), before, "nothing changed");
    let open: String = one(c, &format!("SELECT phase FROM migrate.changes WHERE change = {change}"));
    assert_eq!(open, "ready to contract", "the change is still open");
    let jobs_after: i64 = one(c, "SELECT count(*) FROM migrate.jobs");
    assert_eq!(jobs_after, jobs, "no job queued");
    e
}

#[test]
fn contract_refuses_a_generated_column_on_the_old_one() {
    let (_pg, mut c) = app();
    let change = simple(&mut c, "ALTER TABLE t ADD COLUMN doubled int GENERATED ALWAYS AS (a * 2) STORED;");
    let e = refused(&mut c, change, "0A000", "generated column doubled of table public.t");
    assert!(e.2.contains("rewrites the whole table"), "{e:?}");
    // Once it is gone, the same change contracts. A grant and a comment given to the old column
    // after contract() planned (its job has not run yet) are carried too: the swap reads them.
    exec(&mut c, "ALTER TABLE t DROP COLUMN doubled; CREATE ROLE late_reader");
    let job: i64 = {
        let mut tx = c.transaction().unwrap();
        let job: i64 = tx.query_one("SELECT migrate.contract($1)", &[&change]).unwrap().get(0);
        tx.batch_execute("GRANT SELECT (a) ON t TO late_reader; COMMENT ON COLUMN t.a IS 'late'").unwrap();
        tx.commit().unwrap();
        job
    };
    wait_job(&mut c, job, 120);
    assert_eq!(phase(&mut c, change), "contracted");
    let b: String = one(&mut c, "SELECT attacl::text || ' ' || col_description(attrelid, attnum) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'b'");
    assert_eq!(b, "{late_reader=r/postgres} late");
}

#[test]
fn contract_refuses_triggers_rules_and_unknown_dependents_by_name() {
    let (_pg, mut c) = app();
    let change = simple(
        &mut c,
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.note := 'touched'; RETURN NEW; END$$;
         CREATE TRIGGER t_touch BEFORE UPDATE OF a ON t FOR EACH ROW EXECUTE FUNCTION touch();
         CREATE TABLE t_log (a int);
         CREATE RULE t_notify AS ON UPDATE TO t WHERE NEW.a <> OLD.a DO ALSO INSERT INTO t_log VALUES (NEW.a);",
    );
    let e = refused(&mut c, change, "2BP01", "trigger t_touch on table public.t");
    assert!(e.1.contains("triggers use column \"a\""), "{e:?}");
    exec(&mut c, "DROP TRIGGER t_touch ON t");
    let e = refused(&mut c, change, "2BP01", "rule t_notify on table public.t");
    assert!(e.1.contains("objects that pg_migrate does not carry"), "{e:?}");
    exec(&mut c, "DROP RULE t_notify ON t");
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    wait_job(&mut c, job, 120);
    assert_eq!(phase(&mut c, change), "contracted");
    let columns = rows(&mut c, "SELECT attname::text FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum");
    assert_eq!(columns, vec!["id", "note", "b"]);
}

#[test]
fn contract_refuses_a_publication_the_changes_owner_does_not_own() {
    let (pg, mut admin) = app();
    exec(
        &mut admin,
        "CREATE ROLE deployer LOGIN;
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA migrate TO deployer;
         GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA migrate TO deployer;
         GRANT CREATE ON SCHEMA public TO deployer;
         GRANT CREATE ON DATABASE app TO deployer;",
    );
    let mut c = pg.connect_as("app", "deployer");
    let change = simple(&mut c, "");
    exec(&mut admin, "CREATE PUBLICATION t_pub FOR TABLE t (id, a) WHERE (a > 0)");
    let e = refused(&mut c, change, "42501", "publication \"t_pub\"");
    assert!(e.1.contains("belongs to role \"postgres\""), "{e:?}");
    exec(&mut admin, "ALTER PUBLICATION t_pub OWNER TO deployer");
    let plan: String = one(&mut c, &format!("SELECT migrate.contract_plan({change})"));
    assert!(plan.contains("publication \"t_pub\"'s column list and row filter"), "{plan}");
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    wait_job(&mut c, job, 120);
    let published = rows(&mut c, "SELECT attnames::text || ' ' || rowfilter FROM pg_publication_tables WHERE pubname = 't_pub'");
    assert_eq!(published, vec!["{id,b} (b > 0)"]);
}

#[test]
fn expand_column_keeps_a_non_default_collation_when_the_new_type_is_collatable() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE c1 (id int PRIMARY KEY, code text COLLATE \"C\", tag text COLLATE \"C\", plain text);
         INSERT INTO c1 SELECT g, g::text, 't' || g, 'p' FROM generate_series(1, 100) g;",
    );
    let collation = |c: &mut Client, column: &str| -> String {
        one(c, &format!("SELECT attcollation::regcollation::text FROM pg_attribute WHERE attrelid = 'c1'::regclass AND attname = '{column}'"))
    };
    let cases = [
        // (column, new_type, the new column's collation)
        ("tag", "varchar(10)", "\"C\""),
        ("tag", "varchar(10) COLLATE \"POSIX\"", "\"POSIX\""),
        ("code", "bigint", "-"),
        ("plain", "varchar(10)", "\"default\""),
    ];
    for (column, new_type, want) in cases {
        let change: i64 = c
            .query_one(
                "SELECT migrate.expand_column('c1', $1, new_type => $2, backfill => '{\"manual\": true}')",
                &[&column, &new_type],
            )
            .unwrap_or_else(|e| panic!("{column} → {new_type}: {e}"))
            .get(0);
        assert_eq!(collation(&mut c, &format!("{column}_new")), want, "{column} → {new_type}");
        let aborted: String = one(&mut c, &format!("SELECT migrate.abort({change})"));
        assert_eq!(aborted, "aborted");
    }
}

#[test]
fn contract_carries_on_a_partitioned_table_and_refuses_a_partitions_own_grant() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE ev (id bigint, kind text NOT NULL, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE ev_2024 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE ev_2025 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO ev SELECT g, 'k' || (g % 7), date '2024-01-01' + (g % 700) FROM generate_series(1, 5000) g;
         CREATE ROLE viewer;
         GRANT SELECT (id, kind) ON ev TO viewer;
         COMMENT ON COLUMN ev.kind IS 'event kind';
         ALTER TABLE ev ALTER COLUMN kind SET STATISTICS 200;
         CREATE STATISTICS ev_kind_at ON kind, at FROM ev;
         CREATE PUBLICATION ev_pub FOR TABLE ev (id, kind, at) WHERE (kind <> 'noise')
                WITH (publish_via_partition_root = true, publish = 'insert');
         GRANT SELECT (kind) ON ev_2024 TO viewer;",
    );
    let change: i64 = one(&mut c, "SELECT migrate.expand_column('ev', 'kind', new_name => 'event_kind', backfill => '{\"sleep_ms\": 0}')");
    wait_backfill(&mut c, change);
    let e = fails(&mut c, &format!("SELECT migrate.contract({change})"));
    assert_eq!(e.0, "2BP01", "{e:?}");
    assert!(e.2.contains("privileges on column kind of partition public.ev_2024"), "{e:?}");
    assert_eq!(phase(&mut c, change), "open");
    exec(&mut c, "REVOKE SELECT (kind) ON ev_2024 FROM viewer");
    let job: i64 = one(&mut c, &format!("SELECT migrate.contract({change})"));
    wait_job(&mut c, job, 120);
    assert_eq!(phase(&mut c, change), "contracted");
    let column: Vec<String> = rows(
        &mut c,
        "SELECT attrelid::regclass || ' ' || attname || ' acl=' || coalesce(attacl::text, '-') || ' stattarget=' || coalesce(attstattarget::int, -1)
                || ' comment=' || coalesce(col_description(attrelid, attnum), '-')
           FROM pg_attribute WHERE attname = 'event_kind' ORDER BY 1",
    );
    assert_eq!(
        column,
        vec![
            "ev event_kind acl={viewer=r/postgres} stattarget=200 comment=event kind",
            "ev_2024 event_kind acl=- stattarget=200 comment=-",
            "ev_2025 event_kind acl=- stattarget=200 comment=-",
        ]
    );
    let published = rows(
        &mut c,
        "SELECT (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = prrelid AND attnum = ANY (prattrs))
                || ' ' || pg_get_expr(prqual, prrelid)
           FROM pg_publication_rel WHERE prrelid = 'ev'::regclass",
    );
    assert_eq!(published, vec!["id,at,event_kind (event_kind <> 'noise'::text)"]);
    let statistics = rows(&mut c, "SELECT pg_get_statisticsobjdef(oid) FROM pg_statistic_ext WHERE stxrelid = 'ev'::regclass");
    assert_eq!(statistics, vec!["CREATE STATISTICS public.ev_kind_at ON at, event_kind FROM ev"]);
}
