//! The compiled sync trigger (`migrate.sync_row`, src/expand/sync_row.rs) against the generated
//! PL/pgSQL one: the same table of insert and update cases gives the same rows; the shapes that
//! need PL/pgSQL still get it; partitions whose columns are numbered differently; what an
//! expression resolved to when the change was made is what runs, whatever the writer's
//! search_path; assignment semantics (a too-long value is an error, not cut); and a table owner
//! cannot point the trigger at another change.

use pg_migrate_integration::{attack_cluster, exec, fails, one, Client, Cluster};

fn app() -> (Cluster, Client) {
    let pg = Cluster::start();
    pg.create_db("app");
    let c = pg.connect("app");
    (pg, c)
}

fn rows(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).iter().map(|r| r.get(0)).collect()
}

/// The function the change's BEFORE INSERT trigger calls.
fn trigger_function(c: &mut Client, table: &str) -> String {
    one(
        c,
        &format!(
            "SELECT t.tgfoid::regproc::text FROM pg_trigger t
              WHERE t.tgrelid = '{table}'::regclass AND t.tgname LIKE 'zz\\_migrate\\_sync\\_%' AND t.tgname NOT LIKE '%\\_update'"
        ),
    )
}

/// Every case of the trigger's table, on `table` (id, amount numeric DEFAULT 7, note), expanded
/// to amount_int integer with up => round(amount)::int and down => amount_int::numeric.
fn cases(c: &mut Client, table: &str) -> Vec<String> {
    exec(
        c,
        &format!(
            "INSERT INTO {table} (id, amount) VALUES (101, 1.6);              -- old app: new from up
             INSERT INTO {table} (id, amount_int) VALUES (102, 5);            -- new app: old from down
             INSERT INTO {table} (id, amount, amount_int) VALUES (103, 2, 9); -- both given: kept
             INSERT INTO {table} (id) VALUES (104);                           -- neither: default, then up
             INSERT INTO {table} (id, amount, amount_int) VALUES (105, NULL, NULL);
             UPDATE {table} SET amount = 3.4 WHERE id = 1;                    -- old changed: new from up
             UPDATE {table} SET amount_int = 40 WHERE id = 2;                 -- new changed: old from down
             UPDATE {table} SET amount = 8, amount_int = 80 WHERE id = 3;     -- both: kept
             UPDATE {table} SET amount_int = NULL WHERE id = 4;               -- new set to NULL: old from down
             UPDATE {table} SET note = 'x' WHERE id = 5;                      -- neither, new filled: untouched
             UPDATE {table} SET amount = amount WHERE id = 6;                 -- no change at all"
        ),
    );
    rows(c, &format!("SELECT format('%s %s %s %s', id, amount, amount_int, note) FROM {table} ORDER BY id"))
}

fn expanded(c: &mut Client, table: &str, compiled: bool) -> i64 {
    exec(
        c,
        &format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, amount numeric DEFAULT 7, note text);
             INSERT INTO {table} SELECT g, g + 0.5, NULL FROM generate_series(1, 10) g;
             SET migrate.compiled_sync_trigger = {compiled};"
        ),
    );
    let change: i64 = one(
        c,
        &format!(
            "SELECT migrate.expand_column('{table}', 'amount', new_name => 'amount_int', new_type => 'integer',
                                          up => 'round(amount)::int', down => 'amount_int::numeric',
                                          backfill => '{{\"sleep_ms\": 0}}')"
        ),
    );
    let job: i64 = one(c, &format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {change}"));
    exec(c, "RESET migrate.compiled_sync_trigger");
    exec(c, &format!("CALL migrate.wait({job}, '60 s')"));
    change
}

#[test]
fn compiled_and_plpgsql_triggers_write_the_same_rows() {
    let (_pg, mut c) = app();
    expanded(&mut c, "t_compiled", true);
    expanded(&mut c, "t_plpgsql", false);
    assert_eq!(trigger_function(&mut c, "t_compiled"), "migrate.sync_row");
    assert_ne!(trigger_function(&mut c, "t_plpgsql"), "migrate.sync_row");
    let compiled = cases(&mut c, "t_compiled");
    let plpgsql = cases(&mut c, "t_plpgsql");
    assert_eq!(compiled, plpgsql, "the compiled trigger follows the PL/pgSQL one case by case");
    // Spot checks of the table itself, so that two equally wrong triggers do not pass.
    assert!(compiled.contains(&"101 1.6 2 ".to_string()), "{compiled:?}");
    assert!(compiled.contains(&"102 5 5 ".to_string()), "{compiled:?}");
    assert!(compiled.contains(&"103 2 9 ".to_string()), "{compiled:?}");
    assert!(compiled.contains(&"104 7 7 ".to_string()), "{compiled:?}");
    assert!(compiled.contains(&"1 3.4 3 ".to_string()), "{compiled:?}");
    assert!(compiled.contains(&"2 40 40 ".to_string()), "{compiled:?}");
    assert!(compiled.contains(&"3 8 80 ".to_string()), "{compiled:?}");
}

#[test]
fn subqueries_keep_plpgsql_and_partitions_get_the_compiled_trigger() {
    let (_pg, mut c) = app();
    exec(
        &mut c,
        "CREATE TABLE rates (k int PRIMARY KEY, f numeric); INSERT INTO rates VALUES (1, 2);
         CREATE TABLE sub (id int PRIMARY KEY, v numeric); INSERT INTO sub VALUES (1, 1);",
    );
    let change: i64 = one(
        &mut c,
        "SELECT migrate.expand_column('sub', 'v', new_name => 'w', up => 'v * (SELECT f FROM rates WHERE k = 1)', down => 'w / 2')",
    );
    assert_ne!(trigger_function(&mut c, "sub"), "migrate.sync_row", "a subquery needs the PL/pgSQL trigger");
    exec(&mut c, "INSERT INTO sub (id, v) VALUES (2, 5)");
    assert_eq!(one::<String>(&mut c, "SELECT w::text FROM sub WHERE id = 2"), "10");
    exec(&mut c, &format!("SELECT migrate.abort({change})"));

    // A partition whose columns are numbered differently from its parent's: a dropped column
    // first, then the columns in another order.
    exec(
        &mut c,
        "CREATE TABLE ev (id int NOT NULL, amount numeric, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE ev_a PARTITION OF ev FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
         CREATE TABLE ev_b (junk int, at date NOT NULL, amount numeric, id int NOT NULL);
         ALTER TABLE ev_b DROP COLUMN junk;
         ALTER TABLE ev ATTACH PARTITION ev_b FOR VALUES FROM ('2021-01-01') TO ('2022-01-01');
         INSERT INTO ev VALUES (1, 1.4, '2020-05-01'), (2, 2.6, '2021-05-01');",
    );
    let change: i64 = one(&mut c, "SELECT migrate.expand_column('ev', 'amount', new_type => 'integer', backfill => '{\"sleep_ms\": 0}')");
    let job: i64 = one(&mut c, &format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {change}"));
    exec(&mut c, &format!("CALL migrate.wait({job}, '60 s')"));
    assert_eq!(trigger_function(&mut c, "ev_b"), "migrate.sync_row");
    exec(
        &mut c,
        "INSERT INTO ev (id, amount, at) VALUES (3, 3.5, '2020-06-01'), (4, 4.5, '2021-06-01');
         INSERT INTO ev_b (id, amount_new, at) VALUES (5, 9, '2021-07-01');
         UPDATE ev SET amount = amount + 10 WHERE id IN (1, 2);",
    );
    assert_eq!(
        rows(&mut c, "SELECT format('%s %s %s', id, amount, amount_new) FROM ev ORDER BY id"),
        vec!["1 11.4 11", "2 12.6 13", "3 3.5 4", "4 4.5 5", "5 9 9"]
    );
}

#[test]
fn what_runs_is_what_was_analysed_whatever_the_writers_search_path() {
    let (pg, mut admin) = attack_cluster("app", &[]);
    exec(
        &mut admin,
        "CREATE SCHEMA evil AUTHORIZATION stranger;
         CREATE TABLE acct (id int PRIMARY KEY, code text, amount numeric);
         INSERT INTO acct SELECT g, 'c' || g, g FROM generate_series(1, 5) g;
         GRANT SELECT, INSERT, UPDATE ON acct TO stranger;
         CREATE TABLE short (id int PRIMARY KEY, code text);
         INSERT INTO short VALUES (1, 'abc');",
    );
    let change: i64 = one(&mut admin, "SELECT migrate.expand_column('acct', 'code', new_name => 'label', up => 'upper(code)', down => 'lower(label)', backfill => '{\"sleep_ms\": 0}')");
    let job: i64 = one(&mut admin, &format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {change}"));
    exec(&mut admin, &format!("CALL migrate.wait({job}, '60 s')"));
    assert_eq!(trigger_function(&mut admin, "acct"), "migrate.sync_row");

    // The writer puts its own upper() first on its search_path: the trigger runs pg_catalog's,
    // as analysed, and the writer's function is never called.
    let mut stranger = pg.connect_as("app", "stranger");
    exec(
        &mut stranger,
        "CREATE FUNCTION evil.upper(text) RETURNS text LANGUAGE sql AS $$ SELECT 'HIJACKED' $$;
         SET search_path = evil, pg_catalog, public;
         INSERT INTO public.acct (id, code) VALUES (10, 'new');
         UPDATE public.acct SET code = 'xy' WHERE id = 1;",
    );
    assert_eq!(rows(&mut admin, "SELECT label FROM acct WHERE id IN (1, 10) ORDER BY id"), vec!["XY", "NEW"]);

    // Assignment semantics, as PL/pgSQL's NEW.col := value: too long for varchar(8) is an error
    // (an explicit cast would cut it).
    let change: i64 = one(&mut admin, "SELECT migrate.expand_column('short', 'code', new_name => 'c2', new_type => 'varchar(8)', up => 'code', backfill => '{\"sleep_ms\": 0}')");
    let job: i64 = one(&mut admin, &format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {change}"));
    exec(&mut admin, &format!("CALL migrate.wait({job}, '60 s')"));
    let err = fails(&mut admin, "INSERT INTO short (id, code) VALUES (2, 'much too long')");
    assert_eq!(err.0, "22001", "value too long for varchar(8): {err:?}");

    // The trigger carries its own arguments: pointed at a table of someone else's making, with
    // arguments of theirs, it runs their expressions with their rights, nothing more; with
    // arguments it does not know it refuses; called by hand it is refused by PostgreSQL.
    exec(
        &mut stranger,
        "RESET search_path;
         CREATE TABLE evil.mine (id int, code text, label text);
         CREATE TRIGGER borrowed BEFORE INSERT ON evil.mine FOR EACH ROW EXECUTE FUNCTION migrate.sync_row('1');",
    );
    let err = fails(&mut stranger, "INSERT INTO evil.mine VALUES (1, 'a', NULL)");
    assert_eq!(err.0, "09000", "{err:?}");
    assert!(err.1.contains("with 1 arguments"), "{err:?}");
    let err = fails(&mut stranger, "SELECT migrate.sync_row()");
    assert!(err.0 == "0A000" || err.0 == "09000", "{err:?}");
}
