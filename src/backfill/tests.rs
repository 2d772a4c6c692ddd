//! Backfills run by hand (`"manual": true` and migrate.backfill_batch) inside one transaction:
//! every table shape, the checks on the user's SQL, and the batch arithmetic. Workers, pg_cron,
//! concurrent callers and crashes need commits and live in pgrx-tests/tests/backfill.rs.

use pgrx::prelude::*;

fn one<T: pgrx::IntoDatum + pgrx::FromDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).expect(sql)
}

fn int(sql: &str) -> i64 {
    one::<i64>(sql).unwrap_or(-1)
}

/// The SQLSTATE `sql` fails with, or None when it succeeds (undone either way).
fn sqlstate(sql: &str) -> Option<String> {
    Spi::run(
        "CREATE OR REPLACE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS
         $$ BEGIN EXECUTE q; RAISE EXCEPTION USING ERRCODE = 'P0004'; EXCEPTION WHEN assert_failure THEN RETURN NULL;
                 WHEN OTHERS THEN RETURN SQLSTATE; END $$",
    )
    .unwrap();
    Spi::get_one_with_args::<String>("SELECT pg_temp.sqlstate_of($1)", &[sql.into()]).unwrap()
}

/// Starts a manual backfill and runs its batches until backfill_batch returns 0. Returns the
/// job and how many calls returned rows.
fn backfill(table: &str, assignments: &str, filter: Option<&str>, options: &str) -> (i64, i64) {
    let job = Spi::get_one_with_args::<i64>(
        "SELECT migrate.backfill_start($1::regclass, $2, $3, $4::jsonb || '{\"manual\": true}')",
        &[table.into(), assignments.into(), filter.into(), options.into()],
    )
    .unwrap()
    .unwrap();
    let mut calls = 0;
    while int(&format!("SELECT migrate.backfill_batch({job})")) > 0 {
        calls += 1;
        assert!(calls < 100_000, "backfill {job} never ends");
    }
    (job, calls)
}

fn state(job: i64) -> String {
    one::<String>(&format!("SELECT state FROM migrate.progress WHERE job = {job}")).unwrap_or_default()
}

#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn keyset_backfill_updates_every_row_once_and_not_later_rows() {
        Spi::run("CREATE TABLE t (id bigint PRIMARY KEY, a int, b int, n int NOT NULL DEFAULT 0)").unwrap();
        Spi::run("INSERT INTO t (id, a) SELECT g, g FROM generate_series(1, 5000) g").unwrap();
        let job = int("SELECT migrate.backfill_start('t', 'b = a * 2, n = n + 1', NULL, '{\"manual\": true, \"batch_size\": 700}')");
        // A row inserted after the start is the sync trigger's business, not the backfill's.
        Spi::run("INSERT INTO t (id, a) VALUES (9999, 1)").unwrap();
        let mut calls = 0;
        while int(&format!("SELECT migrate.backfill_batch({job})")) > 0 {
            calls += 1;
        }
        assert_eq!(calls, 8); // ceil(5000 / 700)
        assert_eq!(int("SELECT count(*) FROM t WHERE n = 1 AND b = a * 2"), 5000);
        assert_eq!(int("SELECT n FROM t WHERE id = 9999"), 0);
        assert_eq!(state(job), "done");
        assert_eq!(int(&format!("SELECT rows_done FROM migrate.progress WHERE job = {job}")), 5000);
        assert_eq!(one::<pgrx::AnyNumeric>(&format!("SELECT percent FROM migrate.progress WHERE job = {job}")).unwrap().to_string(), "100.0");
        // Done stays done.
        assert_eq!(int(&format!("SELECT migrate.backfill_batch({job})")), 0);
        assert_eq!(int("SELECT max(n) FROM t"), 1);
    }

    #[pg_test]
    fn composite_keys_and_odd_identifiers() {
        Spi::run(
            r#"CREATE SCHEMA "My Schema";
               CREATE TABLE "My Schema"."Odd ""Table""" ("Region" text, "no." int, "Full Name" text, first text, last text,
                                                       PRIMARY KEY ("Region", "no."));
               INSERT INTO "My Schema"."Odd ""Table""" ("Region", "no.", first, last)
               SELECT r, g, 'f' || g, 'l' || g FROM unnest(ARRAY['b', 'a', 'Z', 'é']) r, generate_series(1, 300) g"#,
        )
        .unwrap();
        let (job, _) = backfill(r#""My Schema"."Odd ""Table""""#, r#""Full Name" = first || ' ' || last"#, None, r#"{"batch_size": 111}"#);
        assert_eq!(int(r#"SELECT count(*) FROM "My Schema"."Odd ""Table""" WHERE "Full Name" = first || ' ' || last"#), 1200);
        assert_eq!(int(&format!("SELECT migrate.backfill_verify({job})")), 0);
    }

    #[pg_test]
    fn tables_without_a_primary_key_are_walked_by_pages() {
        Spi::run("CREATE TABLE heap (a int, n int NOT NULL DEFAULT 0) WITH (fillfactor = 50)").unwrap();
        Spi::run("INSERT INTO heap (a) SELECT g FROM generate_series(1, 20000) g").unwrap();
        Spi::run("DELETE FROM heap WHERE a % 3 = 0").unwrap();
        let (job, calls) = backfill("heap", "n = n + 1", None, r#"{"batch_size": 2000}"#);
        assert!(calls > 3, "several page batches, got {calls}");
        // Updated rows move to free space on later pages; none is updated twice.
        assert_eq!(int("SELECT count(*) FROM heap WHERE n = 1"), int("SELECT count(*) FROM heap"));
        assert_eq!(one::<String>(&format!("SELECT walk FROM migrate.progress WHERE job = {job}")).as_deref(), Some("ctid"));
    }

    #[pg_test]
    fn partitioned_tables_with_and_without_a_key() {
        Spi::run(
            "CREATE TABLE p (id int, k int, v int, PRIMARY KEY (k, id)) PARTITION BY LIST (k);
             CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
             CREATE TABLE p2 PARTITION OF p FOR VALUES IN (2);
             INSERT INTO p SELECT g, 1 + g % 2, NULL FROM generate_series(1, 3000) g;
             CREATE TABLE q (id int, k int, v int) PARTITION BY RANGE (id);
             CREATE TABLE q1 PARTITION OF q FOR VALUES FROM (0) TO (1000);
             CREATE TABLE q2 PARTITION OF q FOR VALUES FROM (1000) TO (10000);
             INSERT INTO q SELECT g, 0, NULL FROM generate_series(1, 3000) g;",
        )
        .unwrap();
        backfill("p", "v = id + k", None, r#"{"batch_size": 400}"#);
        backfill("q", "v = id", None, r#"{"batch_size": 400}"#);
        assert_eq!(int("SELECT count(*) FROM p WHERE v = id + k"), 3000);
        assert_eq!(int("SELECT count(*) FROM q WHERE v = id"), 3000);
    }

    #[pg_test]
    fn identity_keys_user_triggers_and_the_backfill_marker() {
        Spi::run(
            "CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a text, b text, touched int DEFAULT 0);
             INSERT INTO ident (a) SELECT 'x' || g FROM generate_series(1, 1000) g;
             CREATE TABLE seen (job text);
             CREATE FUNCTION ident_touch() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 NEW.touched := OLD.touched + 1;
                 INSERT INTO seen VALUES (current_setting('migrate.backfill_job', true));
                 RETURN NEW;
             END $$;
             CREATE TRIGGER ident_touch BEFORE UPDATE ON ident FOR EACH ROW EXECUTE FUNCTION ident_touch();",
        )
        .unwrap();
        let (job, _) = backfill("ident", "b = upper(a)", None, r#"{"batch_size": 300}"#);
        assert_eq!(int("SELECT count(*) FROM ident WHERE b = upper(a) AND touched = 1"), 1000);
        // Every write of the backfill carried its job id; the setting is gone afterwards.
        assert_eq!(int(&format!("SELECT count(*) FROM seen WHERE job = '{job}'")), 1000);
        assert_eq!(one::<String>("SELECT coalesce(current_setting('migrate.backfill_job', true), '')").as_deref(), Some(""));
    }

    #[pg_test]
    fn a_filter_that_leaves_out_whole_batches_does_not_end_the_job_early() {
        Spi::run("CREATE TABLE f (id int PRIMARY KEY, status text)").unwrap();
        Spi::run("INSERT INTO f SELECT g, CASE WHEN g > 4500 THEN 'old' ELSE 'new' END FROM generate_series(1, 5000) g").unwrap();
        let (job, calls) = backfill("f", "status = 'active'", Some("status = 'old'"), r#"{"batch_size": 100}"#);
        assert_eq!(int("SELECT count(*) FROM f WHERE status = 'active'"), 500);
        assert_eq!(int("SELECT count(*) FROM f WHERE status = 'new'"), 4500);
        assert_eq!(calls, 5);
        assert_eq!(int(&format!("SELECT migrate.backfill_verify({job})")), 0);
    }

    #[pg_test]
    fn verify_counts_rows_not_done_yet() {
        Spi::run("CREATE TABLE v (id int PRIMARY KEY, a int, b int)").unwrap();
        Spi::run("INSERT INTO v SELECT g, g, NULL FROM generate_series(1, 1000) g").unwrap();
        let job = int("SELECT migrate.backfill_start('v', 'b = a', NULL, '{\"manual\": true, \"batch_size\": 300}')");
        assert_eq!(int(&format!("SELECT migrate.backfill_verify({job})")), 1000);
        assert_eq!(int(&format!("SELECT migrate.backfill_batch({job})")), 300);
        assert_eq!(int(&format!("SELECT migrate.backfill_verify({job})")), 700);
        assert_eq!(int(&format!("SELECT migrate.backfill_batch({job}, 50)")), 50);
        assert_eq!(int(&format!("SELECT migrate.backfill_verify({job})")), 650);
    }

    #[pg_test]
    fn pause_and_resume_a_manual_backfill() {
        Spi::run("CREATE TABLE pr (id int PRIMARY KEY, b int)").unwrap();
        Spi::run("INSERT INTO pr SELECT g FROM generate_series(1, 1000) g").unwrap();
        let job = int("SELECT migrate.backfill_start('pr', 'b = 1', NULL, '{\"manual\": true, \"batch_size\": 400}')");
        assert_eq!(int(&format!("SELECT migrate.backfill_batch({job})")), 400);
        assert_eq!(one::<String>(&format!("SELECT migrate.pause({job})")).as_deref(), Some("paused"));
        assert_eq!(int(&format!("SELECT migrate.backfill_batch({job})")), 0);
        assert_eq!(state(job), "paused");
        assert_eq!(one::<String>(&format!("SELECT migrate.resume({job})")).as_deref(), Some("queued"));
        while int(&format!("SELECT migrate.backfill_batch({job})")) > 0 {}
        assert_eq!(int("SELECT count(*) FROM pr WHERE b = 1"), 1000);
        assert_eq!(state(job), "done");
    }

    #[pg_test]
    fn an_empty_table_is_done_at_the_first_batch() {
        Spi::run("CREATE TABLE empty_pk (id int PRIMARY KEY, b int); CREATE TABLE empty_heap (b int)").unwrap();
        let (a, calls_a) = backfill("empty_pk", "b = 1", None, "{}");
        let (b, calls_b) = backfill("empty_heap", "b = 1", None, "{}");
        assert_eq!((calls_a, calls_b), (0, 0));
        assert_eq!((state(a), state(b)), ("done".to_string(), "done".to_string()));
    }

    #[pg_test]
    fn the_users_sql_cannot_leave_the_update() {
        Spi::run("CREATE TABLE victim (id int PRIMARY KEY, b int, c int)").unwrap();
        Spi::run("INSERT INTO victim SELECT g FROM generate_series(1, 10) g").unwrap();
        let start = |assignments: &str, filter: Option<&str>| {
            let f = filter.map_or("NULL".to_string(), |f| format!("$f${f}$f$"));
            sqlstate(&format!("SELECT migrate.backfill_start('victim', $a${assignments}$a$, {f}, '{{\"manual\": true}}')"))
        };
        for assignments in [
            "b = 1 WHERE id = 1",
            "b = 1; DROP TABLE victim",
            "b = 1 RETURNING *",
            "b = 1 FROM pg_class",
            "b = (1)) , c = ((2",
            "b = 1 /* unterminated",
            "(b, c) = (1, 2)",
        ] {
            assert_eq!(start(assignments, None).as_deref(), Some("42601"), "{assignments}");
        }
        for filter in [
            "true); DROP TABLE victim; SELECT (1",
            "true) RETURNING (1",
            "true) GROUP BY (1",
            "id = 1 UNION SELECT 1",
        ] {
            assert_eq!(start("b = 1", Some(filter)).as_deref(), Some("42601"), "{filter}");
        }
        // A trailing comment cannot swallow the rest of pg_migrate's UPDATE.
        let job = int("SELECT migrate.backfill_start('victim', 'b = 1 -- set b', 'id <= 3 -- only three', '{\"manual\": true}')");
        while int(&format!("SELECT migrate.backfill_batch({job})")) > 0 {}
        assert_eq!(int("SELECT count(*) FROM victim WHERE b = 1"), 3);
        // Subqueries are expressions too.
        let (_, _) = backfill("victim", "c = (SELECT count(*) FROM victim v2 WHERE v2.id <= victim.id)", None, "{}");
        assert_eq!(int("SELECT sum(c) FROM victim"), 55);
    }

    #[pg_test]
    fn bad_input_is_refused_with_its_own_sqlstate_and_queues_nothing() {
        Spi::run(
            "CREATE TABLE bad (id int PRIMARY KEY, n int, g int GENERATED ALWAYS AS (n * 2) STORED,
                               i int GENERATED ALWAYS AS IDENTITY);
             CREATE VIEW bad_view AS SELECT * FROM bad;",
        )
        .unwrap();
        let jobs_before = int("SELECT count(*) FROM migrate.jobs");
        for (sql, code) in [
            ("SELECT migrate.backfill_start('bad', 'nope = 1')", "42703"),
            ("SELECT migrate.backfill_start('bad', 'id = id + 1')", "0A000"),
            ("SELECT migrate.backfill_start('bad', 'g = 1')", "428C9"),
            ("SELECT migrate.backfill_start('bad', 'i = 1')", "428C9"),
            ("SELECT migrate.backfill_start('bad_view', 'n = 1')", "42809"),
            ("SELECT migrate.backfill_start('bad', 'n = ''x''')", "22P02"),
            ("SELECT migrate.backfill_start('bad', 'n = 1', 'n + 1')", "42804"),
            ("SELECT migrate.backfill_start('bad', 'n = 1', NULL, '{\"batch_size\": 0}')", "22023"),
            ("SELECT migrate.backfill_start('bad', 'n = 1', NULL, '{\"speed\": 1}')", "22023"),
            ("SELECT migrate.backfill_start('bad', 'n = 1', NULL, '[1]')", "22023"),
            ("SELECT migrate.backfill_start('bad', NULL)", "22004"),
            ("SELECT migrate.backfill_batch(NULL)", "22004"),
            ("SELECT migrate.backfill_batch(-42)", "42704"),
            ("SELECT migrate.pause(-42)", "42704"),
        ] {
            assert_eq!(sqlstate(sql).as_deref(), Some(code), "{sql}");
        }
        assert_eq!(int("SELECT count(*) FROM migrate.jobs"), jobs_before);
    }

    #[pg_test]
    fn batch_sizes_adapt_to_the_target_time_within_bounds() {
        use crate::backfill::batch::next_size;
        use crate::catalog::backfills::Pace;
        let pace = Pace { batch_size: 1000, fixed_batch: false, batch_time_ms: 200, sleep_ms: 0, max_replica_lag_ms: 0 };
        assert_eq!(next_size(&pace, 1000, 1000, 100.0, false), 2000);
        assert_eq!(next_size(&pace, 1000, 1000, 1000.0, false), 500);
        assert_eq!(next_size(&pace, 1000, 1000, 200.0, false), 1000);
        assert_eq!(next_size(&pace, 1000, 1000, 1.0, false), 2000);
        assert_eq!(next_size(&pace, 1000, 1000, 100.0, true), 500);
        assert_eq!(next_size(&pace, 100_000, 100_000, 10.0, false), 100_000);
        assert_eq!(next_size(&pace, 10, 10, 10_000.0, false), 10);
        // The short last batch of a walk says nothing about speed.
        assert_eq!(next_size(&pace, 1000, 10, 1.0, false), 1000);
        let fixed = Pace { fixed_batch: true, ..pace };
        assert_eq!(next_size(&fixed, 1000, 1000, 5000.0, true), 1000);
    }
}
