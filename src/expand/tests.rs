//! Expand/contract inside one transaction: the sync trigger's semantics, manual backfills, the
//! contract's statements run by hand (except concurrent index builds), abort, and bad input.
//! Workers, concurrent clients and index builds need commits: pgrx-tests/tests/expand.rs.

use pgrx::prelude::*;

fn one<T: pgrx::IntoDatum + pgrx::FromDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn int(sql: &str) -> i64 {
    one::<i64>(sql).unwrap_or(-1)
}

fn text(sql: &str) -> String {
    one::<String>(sql).unwrap_or_default()
}

fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The SQLSTATE `sql` fails with, or None when it succeeds (undone either way).
fn sqlstate(sql: &str) -> Option<String> {
    run("CREATE OR REPLACE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS
         $$ BEGIN EXECUTE q; RAISE EXCEPTION USING ERRCODE = 'P0004'; EXCEPTION WHEN assert_failure THEN RETURN NULL;
                 WHEN OTHERS THEN RETURN SQLSTATE; END $$");
    Spi::get_one_with_args::<String>("SELECT pg_temp.sqlstate_of($1)", &[sql.into()]).unwrap()
}

/// Everything about a table a user could notice: columns with types, nullability and
/// defaults, constraints, indexes, triggers. Nullability is the columns' attnotnull on every
/// major; PostgreSQL 18 also keeps a pg_constraint row per NOT NULL (contype 'n', named
/// <table>_<column>_not_null), left out here so that one description fits 15-18.
fn describe(table: &str) -> String {
    text(&format!(
        "SELECT concat_ws(E'\\n',
            (SELECT string_agg(format('%s %s %s %s', attname, format_type(atttypid, atttypmod), attnotnull,
                                      pg_get_expr(d.adbin, d.adrelid)), ', ' ORDER BY attnum)
               FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped),
            (SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), ', ' ORDER BY conname)
               FROM pg_constraint WHERE conrelid = '{table}'::regclass AND contype <> 'n'),
            (SELECT string_agg(indexdef, ', ' ORDER BY indexname) FROM pg_indexes WHERE tablename = '{table}'),
            (SELECT string_agg(tgname, ', ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = '{table}'::regclass))"
    ))
}

/// Runs a change's backfill by hand to the end.
fn backfill(change: i64) {
    let job = int(&format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {change}"));
    let mut calls = 0;
    while int(&format!("SELECT migrate.backfill_batch({job})")) > 0 {
        calls += 1;
        assert!(calls < 10_000, "backfill of change {change} never ends");
    }
}

/// Runs the steps of a job by hand, in this transaction (none may be CONCURRENTLY).
fn run_job(job: i64) {
    let steps = text(&format!("SELECT string_agg(s->>'sql', E';\\n' ORDER BY o) FROM migrate.all_jobs, jsonb_array_elements(steps) WITH ORDINALITY x(s, o) WHERE id = {job}"));
    for step in steps.split(";\n") {
        run(step);
    }
}

const MANUAL: &str = "'{\"manual\": true, \"batch_size\": 300}'";

#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn sync_trigger_keeps_both_columns_in_step_and_ignores_the_backfill() {
        run("CREATE TABLE t (id int PRIMARY KEY, amount numeric DEFAULT 1.5, note text)");
        run("INSERT INTO t SELECT g, g + 0.4 FROM generate_series(1, 1000) g");
        let change = int(&format!(
            "SELECT migrate.expand_column('t', 'amount', new_name => 'amount_int', new_type => 'int',
                                           up => 'round(amount)::int', backfill => {MANUAL})"
        ));
        // Writes through the old column, the new one, both, neither.
        run("INSERT INTO t (id, amount) VALUES (2001, 2.6)");
        run("INSERT INTO t (id, amount_int) VALUES (2002, 7)");
        run("INSERT INTO t (id, amount, amount_int) VALUES (2003, 1.2, 9)");
        run("INSERT INTO t (id) VALUES (2004)");
        run("UPDATE t SET amount = 10.7 WHERE id = 1");
        run("UPDATE t SET amount_int = 42 WHERE id = 2");
        run("UPDATE t SET note = 'touched' WHERE id = 3");
        let row = |id: i32| text(&format!("SELECT amount || '/' || coalesce(amount_int::text, 'NULL') FROM t WHERE id = {id}"));
        assert_eq!(row(2001), "2.6/3");
        assert_eq!(row(2002), "7/7");
        assert_eq!(row(2003), "1.2/9", "a writer that sets both columns is taken at its word");
        assert_eq!(row(2004), "1.5/2", "the old column's default moved into the trigger");
        assert_eq!(row(1), "10.7/11");
        assert_eq!(row(2), "42/42");
        assert_eq!(row(3), "3.4/3", "an update of another column fills the new column");
        assert_eq!(row(4), "4.4/NULL", "not backfilled yet");

        let before = text("SELECT md5(string_agg(amount::text, ',' ORDER BY id)) FROM t");
        backfill(change);
        assert_eq!(text("SELECT md5(string_agg(amount::text, ',' ORDER BY id)) FROM t"), before, "the backfill never rewrites the old column");
        assert_eq!(int("SELECT count(*) FROM t WHERE amount_int IS DISTINCT FROM round(amount)::int AND id <> 2003"), 0);
        assert_eq!(text(&format!("SELECT phase FROM migrate.changes WHERE change = {change}")), "ready to contract");
    }

    #[pg_test]
    fn rename_with_quoted_names_and_a_subquery_up() {
        run(r#"CREATE TABLE "My Table" ("Id" int, "Old Col" text NOT NULL)"#);
        run(r#"CREATE TABLE lookup (k text, v text)"#);
        run(r#"INSERT INTO lookup VALUES ('a', 'A')"#);
        run(r#"INSERT INTO "My Table" VALUES (1, 'a'), (2, 'Old Col')"#);
        // A string literal equal to the column's name stays a literal; a subquery runs over the row.
        let change = int(&format!(
            r#"SELECT migrate.expand_column('"My Table"', 'Old Col', new_name => 'New Col',
                   up => $$coalesce((SELECT v FROM lookup WHERE k = "Old Col"), 'Old Col')$$, down => $$"New Col"$$, backfill => {MANUAL})"#
        ));
        backfill(change);
        assert_eq!(text(r#"SELECT string_agg("New Col", ',' ORDER BY "Id") FROM "My Table""#), "A,Old Col");
        run(r#"UPDATE "My Table" SET "New Col" = 'z' WHERE "Id" = 1"#);
        assert_eq!(text(r#"SELECT "Old Col" FROM "My Table" WHERE "Id" = 1"#), "z");
        run(r#"INSERT INTO "My Table" ("Id", "Old Col") VALUES (3, 'a')"#);
        assert_eq!(text(r#"SELECT "New Col" FROM "My Table" WHERE "Id" = 3"#), "A");
    }

    #[pg_test]
    fn contract_moves_constraints_and_swaps_in_one_step() {
        run("CREATE TABLE c (id int PRIMARY KEY, price numeric NOT NULL DEFAULT 0 CONSTRAINT price_positive CHECK (price >= 0))");
        run("INSERT INTO c SELECT g, g FROM generate_series(1, 500) g");
        let change = int(&format!("SELECT migrate.expand_column('c', 'price', new_type => 'bigint', backfill => {MANUAL})"));
        assert_eq!(sqlstate(&format!("SELECT migrate.contract({change})")).as_deref(), Some("55000"), "before the backfill");
        backfill(change);
        let plan = text(&format!("SELECT contract_will FROM migrate.changes WHERE change = {change}"));
        assert!(plan.contains("price_positive") && plan.contains("SET NOT NULL") && plan.contains("rename"), "{plan}");
        let job = int(&format!("SELECT migrate.contract({change})"));
        run_job(job);
        assert_eq!(text(&format!("SELECT phase FROM migrate.all_changes WHERE change = {change}")), "contracted");
        assert_eq!(
            describe("c"),
            "id integer t , price bigint t 0\nc_pkey PRIMARY KEY (id), price_positive CHECK (((price)::numeric >= (0)::numeric))\nCREATE UNIQUE INDEX c_pkey ON public.c USING btree (id)"
        );
        assert_eq!(int("SELECT sum(price)::bigint FROM c"), 125250);
        assert_eq!(sqlstate(&format!("SELECT migrate.contract({change})")).as_deref(), Some("55000"), "contract twice");
        assert_eq!(sqlstate(&format!("SELECT migrate.abort({change})")).as_deref(), Some("55000"), "abort after contract");
    }

    #[pg_test]
    fn abort_restores_the_exact_schema() {
        run("CREATE TABLE a (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text NOT NULL DEFAULT 'x' CHECK (v <> ''), w int)");
        run("CREATE INDEX a_v_idx ON a (v)");
        run("INSERT INTO a (v) SELECT 'r' || g FROM generate_series(1, 100) g");
        let before = describe("a");
        let change = int(&format!("SELECT migrate.expand_column('a', 'v', new_name => 'label', new_type => 'varchar(20)', backfill => {MANUAL})"));
        assert_ne!(describe("a"), before);
        assert_eq!(text(&format!("SELECT migrate.abort({change})")), "aborted");
        assert_eq!(describe("a"), before);
        assert_eq!(int("SELECT count(*) FROM pg_proc WHERE proname LIKE '%migrate_sync%'"), 0);
        assert_eq!(text(&format!("SELECT state FROM migrate.jobs WHERE job = (SELECT backfill_job FROM migrate.all_changes WHERE change = {change})")), "cancelled");
        assert_eq!(sqlstate(&format!("SELECT migrate.abort({change})")).as_deref(), Some("55000"), "abort twice");
    }

    #[pg_test]
    fn bad_input_changes_nothing() {
        run("CREATE TABLE b (id int PRIMARY KEY, j jsonb, n int, g int GENERATED ALWAYS AS (n * 2) STORED)");
        run("INSERT INTO b VALUES (1, '{}', 1)");
        let before = describe("b");
        for (sql, code) in [
            ("SELECT migrate.expand_column('b', 'nope', new_name => 'x')", "42703"),
            ("SELECT migrate.expand_column('b', 'j', new_type => 'int')", "42846"),
            ("SELECT migrate.expand_column('b', 'g', new_name => 'h')", "0A000"),
            ("SELECT migrate.expand_column('b', 'n')", "22023"),
            ("SELECT migrate.expand_column('b', 'n', new_name => 'j')", "42701"),
            ("SELECT migrate.expand_column('b', 'n', new_type => 'int; DROP TABLE b')", "42601"),
            ("SELECT migrate.expand_column('b', 'n', new_type => 'bigint', up => 'n); DROP TABLE b; SELECT (1')", "42601"),
            ("SELECT migrate.expand_column('b', 'n', new_type => 'bigint', up => 'no_such_function(n)')", "42883"),
            ("SELECT migrate.add_column('b', 'm', 'int', not_null => true)", "23502"),
            ("SELECT migrate.add_column('b', 'n', 'int')", "42701"),
            ("SELECT migrate.create_index('b', '(n); DROP TABLE b')", "42601"),
            ("SELECT migrate.add_check('b', 'c', 'n > 0; DROP TABLE b')", "42601"),
            ("SELECT migrate.add_enum_value('int', 'x')", "42809"),
            ("SELECT migrate.contract(424242)", "42704"),
            ("SELECT migrate.abort(NULL)", "22004"),
        ] {
            assert_eq!(sqlstate(sql).as_deref(), Some(code), "{sql}");
        }
        assert_eq!(describe("b"), before);
        assert_eq!(int("SELECT count(*) FROM migrate.all_changes"), 0);

        let change = int(&format!("SELECT migrate.expand_column('b', 'n', new_type => 'bigint', backfill => {MANUAL})"));
        assert_eq!(sqlstate("SELECT migrate.expand_column('b', 'j', new_name => 'k')").as_deref(), Some("55006"), "second change");
        // Views are carried to the new column; a materialized view cannot be.
        run("CREATE MATERIALIZED VIEW b_view AS SELECT n FROM b");
        backfill(change);
        assert_eq!(sqlstate(&format!("SELECT migrate.contract({change})")).as_deref(), Some("2BP01"), "dependent materialized view");
        assert!(text(&format!("SELECT contract_will FROM migrate.changes WHERE change = {change}")).contains("b_view"));
    }

    #[pg_test]
    fn add_column_fast_default_volatile_default_and_not_null() {
        run("CREATE TABLE ac (id int PRIMARY KEY)");
        run("INSERT INTO ac SELECT generate_series(1, 300)");
        let fast = int("SELECT migrate.add_column('ac', 'status', 'text', default_value => '''new''')");
        assert_eq!(text(&format!("SELECT phase FROM migrate.all_changes WHERE change = {fast}")), "done");
        assert_eq!(int("SELECT count(*) FROM ac WHERE status = 'new'"), 300, "the fast default covers existing rows");
        let slow = int("SELECT migrate.add_column('ac', 'token', 'float8', default_value => 'random()', not_null => true)");
        let job = int(&format!("SELECT backfill_job FROM migrate.all_changes WHERE change = {slow}"));
        assert!(job > 0, "a volatile default is filled by a backfill, not a rewrite");
        assert_eq!(int("SELECT count(*) FROM ac WHERE token IS NULL"), 300);
        run(&format!("UPDATE migrate.all_backfills SET manual = true WHERE job = {job}"));
        while int(&format!("SELECT migrate.backfill_batch({job})")) > 0 {}
        assert_eq!(int("SELECT count(DISTINCT token) FROM ac"), 300);
        let contract = int(&format!("SELECT migrate.contract({slow})"));
        run_job(contract);
        assert_eq!(one::<bool>("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'ac'::regclass AND attname = 'token'"), Some(true));
        assert_eq!(int("SELECT count(*) FROM pg_constraint WHERE conrelid = 'ac'::regclass AND contype = 'c'"), 0, "the helper check is gone");
    }

    #[pg_test]
    fn soft_drop_abort_and_purge() {
        run("CREATE TABLE d (id int PRIMARY KEY, legacy text NOT NULL, keep int)");
        run("INSERT INTO d VALUES (1, 'x', 1)");
        let before = describe("d");
        let change = int("SELECT migrate.drop_column('d', 'legacy')");
        assert_eq!(text("SELECT legacy_deprecated FROM d"), "x");
        run("INSERT INTO d (id, keep) VALUES (2, 2)");
        run(&format!("SELECT migrate.abort({change})"));
        run("DELETE FROM d WHERE id = 2");
        assert_eq!(describe("d").replace("legacy text f", "legacy text t"), before, "back, without NOT NULL");
        run("SELECT migrate.drop_column('d', 'legacy')");
        assert_eq!(text("SELECT string_agg(p, ',') FROM migrate.purge_deprecated('d') p"), "public.d.\"legacy_deprecated\"");
        assert_eq!(int("SELECT count(*) FROM pg_attribute WHERE attrelid = 'd'::regclass AND attname LIKE 'legacy%' AND NOT attisdropped"), 0);
    }

    #[pg_test]
    fn enum_values_are_appended_and_rollback_aborts_recorded_changes() {
        run("CREATE TYPE mood AS ENUM ('sad', 'happy')");
        run("SELECT migrate.add_enum_value('mood', 'ok', before => 'happy')");
        run("CREATE TABLE r (id int PRIMARY KEY, a int)");
        let before = describe("r");
        run("SELECT migrate.apply('1', $$SELECT migrate.expand_column('r', 'a', new_name => 'b', backfill => '{\"manual\": true}')$$)");
        assert_eq!(text("SELECT down FROM migrate.migrations WHERE version = '1'"), format!("SELECT migrate.abort({});\n", int("SELECT max(change) FROM migrate.all_changes")));
        run("SELECT migrate.rollback('1')");
        assert_eq!(describe("r"), before);
    }

    #[pg_test]
    fn partitioned_tables_refuse_what_cannot_be_indexed_partition_by_partition() {
        run("CREATE TABLE pe (id int NOT NULL, region text NOT NULL, at date NOT NULL, v text) PARTITION BY LIST (region)");
        run("CREATE TABLE pe_eu PARTITION OF pe FOR VALUES IN ('eu') PARTITION BY RANGE (at)");
        run("CREATE TABLE pe_eu_1 PARTITION OF pe_eu FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')");
        run("CREATE TABLE pe_us PARTITION OF pe FOR VALUES IN ('us')");
        let changes = int("SELECT count(*) FROM migrate.all_changes");
        // A unique index must hold every partition key column of every level.
        assert_eq!(sqlstate("SELECT migrate.create_index('pe', '(id, region)', is_unique => true)").as_deref(), Some("0A000"));
        assert_eq!(sqlstate("SELECT migrate.create_index('pe', '(id)', is_unique => true)").as_deref(), Some("0A000"));
        // A partition key column could never be dropped by contract.
        assert_eq!(sqlstate("SELECT migrate.expand_column('pe', 'at', new_type => 'timestamptz')").as_deref(), Some("0A000"));
        assert_eq!(sqlstate("SELECT migrate.expand_column('pe', 'region', new_name => 'area')").as_deref(), Some("0A000"));
        assert_eq!(int("SELECT count(*) FROM migrate.all_changes"), changes, "nothing recorded");
        assert_eq!(int("SELECT count(*) FROM pg_class WHERE relkind IN ('i', 'I') AND relname LIKE 'pe%'"), 0, "no index made");
        // Every key column there: the job's first step is CREATE INDEX ON ONLY the parent.
        let change = int("SELECT migrate.create_index('pe', '(id, at, region)', is_unique => true, name => 'pe_uq')");
        let first = text(&format!(
            "SELECT j.steps -> 0 ->> 'sql' || ' | ' || (j.steps -> 1 -> 'internal' ->> 'do')
               FROM migrate.all_jobs j JOIN migrate.all_changes c ON c.job = j.id WHERE c.change = {change}"
        ));
        assert_eq!(first, "CREATE UNIQUE INDEX IF NOT EXISTS \"pe_uq\" ON ONLY public.pe (id, at, region) | index_partitions");
    }
}
