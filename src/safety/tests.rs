//! Tests of lint, plan and verify inside one transaction. The rule corpus (docs/lint-corpus) has
//! for every rule a migration that breaks it and a safe twin; both run against the corpus'
//! fixture schema. Apply with commits, several sessions and the fuzz test are in pgrx-tests/.

use pgrx::prelude::*;

macro_rules! corpus {
    ($($rule:literal),* $(,)?) => {
        /// (rule, migration that breaks it, safe twin)
        const CASES: &[(&str, &str, &str)] = &[$((
            $rule,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lint-corpus/", $rule, ".bad.sql")),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lint-corpus/", $rule, ".safe.sql")),
        )),*];
    };
}

corpus!(
    "index-not-concurrent",
    "drop-index-not-concurrent",
    "concurrently-in-transaction",
    "reindex-not-concurrent",
    "vacuum-full",
    "cluster",
    "refresh-matview-not-concurrent",
    "add-foreign-key-without-not-valid",
    "add-check-without-not-valid",
    "validate-in-same-migration",
    "set-not-null-without-check",
    "add-column-not-null-without-default",
    "add-column-volatile-default",
    "add-column-generated-stored",
    "add-column-serial",
    "alter-column-type",
    "constraint-builds-index",
    "rename-column",
    "rename-table",
    "drop-column",
    "drop-table",
    "drop-schema",
    "drop-not-null",
    "truncate",
    "enum-value-renamed",
    "enum-value-removed",
    "prefer-jsonb",
    "mixed-ddl-and-data",
    "whole-table-write",
    "statement-after-access-exclusive",
    "ddl-on-published-table",
    "missing-lock-timeout",
);

const FIXTURE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lint-corpus/_schema.sql"));

/// (rule, severity, line) of every finding.
fn lint(sql: &str) -> Vec<(String, String, i32)> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        for row in client.select("SELECT rule, severity, line FROM migrate.lint($1)", None, &[sql.into()])? {
            out.push((row.get::<String>(1)?.unwrap(), row.get::<String>(2)?.unwrap(), row.get::<i32>(3)?.unwrap()));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap()
}

fn rules(sql: &str) -> Vec<String> {
    lint(sql).into_iter().map(|(r, _, _)| r).collect()
}

fn one<T: pgrx::IntoDatum + pgrx::FromDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).expect(sql)
}

#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn every_rule_has_a_breaking_migration_and_a_safe_twin() {
        let names: Vec<&str> = crate::safety::rules::ALL.iter().map(|r| r.name).collect();
        let cased: Vec<&str> = CASES.iter().map(|c| c.0).collect();
        assert_eq!(names, cased, "docs/lint-corpus must have a case for every rule, in rule order");

        Spi::run(FIXTURE).unwrap();
        let mut wrong = Vec::new();
        for (rule, bad, safe) in CASES {
            let found = lint(bad);
            if !found.iter().any(|(r, _, _)| r == rule) {
                wrong.push(format!("{rule}.bad.sql does not trigger it: {found:?}"));
            }
            let found = lint(safe);
            if found.iter().any(|(r, _, _)| r == rule) {
                wrong.push(format!("{rule}.safe.sql triggers it: {found:?}"));
            }
            if let Some(e) = found.iter().find(|(_, s, _)| s == "error") {
                wrong.push(format!("{rule}.safe.sql has an error-level finding: {e:?}"));
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    #[pg_test]
    fn findings_say_where_why_and_what_to_do() {
        let row = Spi::get_three::<i32, String, String>(
            "SELECT line, message, hint FROM migrate.lint(E'SELECT 1;\\n\\nCREATE INDEX i\\n  ON users (email);')
              WHERE rule = 'index-not-concurrent'",
        )
        .unwrap();
        // The line of the table name, the most precise location the parse tree has.
        assert_eq!(row.0, Some(4));
        let message = row.1.unwrap();
        assert!(message.starts_with("CREATE INDEX i on existing table users without CONCURRENTLY: "), "{message}");
        assert!(message.contains("SHARE lock"), "{message}");
        assert!(row.2.unwrap().contains("migrate.create_index"));
        assert_eq!(one::<i64>("SELECT count(*) FROM migrate.lint_rules() WHERE hint !~ 'migrate\\.|jsonb|pg_repack'"), Some(0));
    }

    #[pg_test]
    fn a_table_created_by_the_script_is_new() {
        let sql = "CREATE TABLE t (id int, payload text);\n\
                   CREATE INDEX t_payload ON t (payload);\n\
                   ALTER TABLE t ADD COLUMN n int NOT NULL, ALTER COLUMN payload TYPE int USING payload::int;\n\
                   ALTER TABLE t RENAME TO t2;\n\
                   ALTER TABLE t2 ADD CONSTRAINT t2_n CHECK (n > 0);\n\
                   DROP TABLE t2;";
        assert_eq!(rules(sql), Vec::<String>::new());
    }

    #[pg_test]
    fn schema_qualified_names_and_quoted_identifiers() {
        Spi::run("CREATE SCHEMA app; CREATE TABLE app.\"Users\" (id int, name varchar(10))").unwrap();
        assert_eq!(rules("ALTER TABLE app.\"Users\" ALTER COLUMN name TYPE varchar(20);"), vec!["missing-lock-timeout"]);
        assert!(rules("ALTER TABLE app.\"Users\" ALTER COLUMN name TYPE varchar(5);").contains(&"alter-column-type".to_string()));
        // A table of that name created in another schema by the script does not make app.users new.
        assert!(rules("CREATE TABLE other.\"Users\" (id int);\nDROP TABLE app.\"Users\";").contains(&"drop-table".to_string()));
    }

    #[pg_test]
    fn type_changes_without_the_catalog_are_taken_as_rewrites() {
        let msg = one::<String>("SELECT message FROM migrate.lint('ALTER TABLE nowhere ALTER COLUMN c TYPE text') WHERE rule = 'alter-column-type'").unwrap();
        assert!(msg.contains("not in this database's catalog"), "{msg}");
        Spi::run("CREATE TABLE w (c varchar(5))").unwrap();
        let msg = one::<String>("SELECT message FROM migrate.lint('ALTER TABLE w ALTER COLUMN c TYPE no_such_type') WHERE rule = 'alter-column-type'").unwrap();
        assert!(msg.contains("type no_such_type is not in the catalog"), "{msg}");
        let msg = one::<String>("SELECT message FROM migrate.lint('ALTER TABLE w ALTER COLUMN c TYPE int USING c::int') WHERE rule = 'alter-column-type'").unwrap();
        assert!(msg.contains("USING converts every row"), "{msg}");
    }

    #[pg_test]
    fn volatile_defaults_are_found_inside_expressions() {
        assert!(rules("ALTER TABLE t ADD COLUMN c text DEFAULT 'x' || md5(random()::text);").contains(&"add-column-volatile-default".to_string()));
        assert!(rules("ALTER TABLE t ADD COLUMN c bigint DEFAULT nextval('s');").contains(&"add-column-volatile-default".to_string()));
        assert!(rules("ALTER TABLE t ADD COLUMN c text DEFAULT not_a_function_yet();").contains(&"add-column-volatile-default".to_string()));
        assert!(!rules("ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now() + interval '1 day';").contains(&"add-column-volatile-default".to_string()));
        assert!(!rules("ALTER TABLE t ADD COLUMN c date DEFAULT current_date;").contains(&"add-column-volatile-default".to_string()));
    }

    #[pg_test]
    fn only_stored_generated_columns_rewrite() {
        let rule = "add-column-generated-stored".to_string();
        assert!(rules("ALTER TABLE t ADD COLUMN c text GENERATED ALWAYS AS (lower(b)) STORED;").contains(&rule));
        // PostgreSQL 18's VIRTUAL generated columns (the default kind there) are computed when
        // read: adding one rewrites nothing. Earlier majors have only STORED ones (and refuse
        // the VIRTUAL keyword, so the statement is not tried there).
        if cfg!(feature = "pg18") {
            assert!(!rules("ALTER TABLE t ADD COLUMN c text GENERATED ALWAYS AS (lower(b)) VIRTUAL;").contains(&rule));
            assert!(!rules("ALTER TABLE t ADD COLUMN c text GENERATED ALWAYS AS (lower(b));").contains(&rule));
        }
    }

    #[pg_test]
    fn set_not_null_after_a_validated_check_in_the_same_script() {
        let found = rules(
            "ALTER TABLE t ADD CONSTRAINT t_c_nn CHECK (c IS NOT NULL) NOT VALID;\n\
             ALTER TABLE t VALIDATE CONSTRAINT t_c_nn;\n\
             ALTER TABLE t ALTER COLUMN c SET NOT NULL;",
        );
        assert!(found.contains(&"validate-in-same-migration".to_string()), "{found:?}");
        assert!(!found.contains(&"set-not-null-without-check".to_string()), "{found:?}");
    }

    #[pg_test]
    fn mixing_reports_every_data_statement() {
        let rows = lint("INSERT INTO audit VALUES (1);\nALTER TABLE t ADD COLUMN c int;\nDELETE FROM audit WHERE id = 1;");
        let mixed: Vec<i32> = rows.iter().filter(|(r, _, _)| r == "mixed-ddl-and-data").map(|r| r.2).collect();
        assert_eq!(mixed, vec![1, 3]);
        assert!(rules("WITH moved AS (UPDATE t SET c = 1 WHERE id = 2 RETURNING id) SELECT count(*) FROM moved;\nDROP INDEX CONCURRENTLY x;")
            .contains(&"mixed-ddl-and-data".to_string()));
    }

    #[pg_test]
    fn lock_timeout_of_zero_or_reset_does_not_count() {
        assert!(rules("SET lock_timeout = 0;\nALTER TABLE t ADD COLUMN c int;").contains(&"missing-lock-timeout".to_string()));
        assert!(rules("SET lock_timeout = '1s';\nRESET lock_timeout;\nALTER TABLE t ADD COLUMN c int;").contains(&"missing-lock-timeout".to_string()));
        assert!(!rules("SET LOCAL lock_timeout TO 1500;\nALTER TABLE t ADD COLUMN c int;").contains(&"missing-lock-timeout".to_string()));
    }

    #[pg_test]
    fn concurrently_with_other_statements() {
        let found = rules("ALTER TABLE t ADD COLUMN c int;\nCREATE INDEX CONCURRENTLY t_c ON t (c);");
        assert!(found.contains(&"concurrently-in-transaction".to_string()), "{found:?}");
        assert!(!rules("SET lock_timeout = '1s';\nDROP INDEX CONCURRENTLY t_c;").contains(&"concurrently-in-transaction".to_string()));
        assert!(rules("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;\nSELECT 1;").contains(&"concurrently-in-transaction".to_string()));
    }

    #[pg_test]
    fn allowed_findings_are_still_listed_and_marked() {
        let msg = one::<String>(
            "SELECT message FROM migrate.lint(E'-- migrate:allow drop-column\\nALTER TABLE t DROP COLUMN c;') WHERE rule = 'drop-column'",
        )
        .unwrap();
        assert!(msg.ends_with("(allowed by the -- migrate:allow comment at line 1)"), "{msg}");
    }

    #[pg_test(error = "syntax error at or near \"SELEC\" in linted SQL at line 2, column 1")]
    fn syntax_errors_have_line_and_column() {
        Spi::run("SELECT * FROM migrate.lint(E'SELECT 1;\\nSELEC 2;')").unwrap();
    }

    #[pg_test(error = "unknown lint rule \"drop-colum\" in the -- migrate:allow comment at line 1 of linted SQL")]
    fn unknown_allowed_rule_is_an_error() {
        Spi::run("SELECT * FROM migrate.lint(E'-- migrate:allow drop-colum\\nSELECT 1')").unwrap();
    }

    #[pg_test]
    fn empty_and_comment_only_sql_has_no_findings() {
        assert_eq!(rules(""), Vec::<String>::new());
        assert_eq!(rules("-- nothing\n;;"), Vec::<String>::new());
        assert_eq!(one::<i64>("SELECT count(*) FROM migrate.lint(NULL)"), Some(0));
    }

    #[pg_test]
    fn lint_resolves_names_with_the_callers_search_path_and_leaves_it_alone() {
        Spi::run("CREATE SCHEMA app; CREATE TABLE app.accounts (name varchar(10)); SET LOCAL search_path = app, public").unwrap();
        assert!(!rules("ALTER TABLE accounts ALTER COLUMN name TYPE text;").contains(&"alter-column-type".to_string()));
        assert_eq!(one::<String>("SHOW search_path").as_deref(), Some("app, public"));
    }

    // ---- apply refuses and accepts -------------------------------------------------------

    #[pg_test(error = "up SQL of version \"1\" breaks lint rule drop-column at statement 1 (line 1)")]
    fn apply_refuses_error_findings() {
        Spi::run("CREATE TABLE t (id int, c int)").unwrap();
        Spi::run("SELECT migrate.apply('1', 'ALTER TABLE t DROP COLUMN c;')").unwrap();
    }

    #[pg_test]
    fn apply_accepts_allowed_findings_and_records_them() {
        Spi::run("CREATE TABLE t (id int, c int)").unwrap();
        Spi::run("SELECT migrate.apply('1', E'ALTER TABLE t DROP COLUMN c;\\n-- migrate:allow drop-column')").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'c'"), Some(0));
        assert_eq!(
            one::<Vec<String>>("SELECT lint_accepted FROM migrate.migrations WHERE version = '1'"),
            Some(vec!["drop-column".to_string()])
        );
        assert_eq!(
            one::<String>("SELECT detail->>'lint_accepted' FROM migrate.events WHERE version = '1'").as_deref(),
            Some("[\"drop-column\"]")
        );
        // A harmless migration records nothing.
        Spi::run("SELECT migrate.apply('2', 'ALTER TABLE t ADD COLUMN d int;')").unwrap();
        assert_eq!(one::<Vec<String>>("SELECT lint_accepted FROM migrate.migrations WHERE version = '2'"), Some(vec![]));
    }

    #[pg_test(error = "unknown lint rule \"drop-collumn\" in the -- migrate:allow comment at line 1 of up SQL of version \"1\"")]
    fn apply_refuses_unknown_allowed_rules() {
        Spi::run("SELECT migrate.apply('1', E'-- migrate:allow drop-collumn\\nSELECT 1;')").unwrap();
    }

    // ---- plan --------------------------------------------------------------------------

    /// (statement, relation, lock_mode, rewrites, note) rows of a plan.
    fn plan(sql: &str) -> Vec<(i32, Option<String>, Option<String>, Option<bool>, String)> {
        Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select("SELECT statement, relation, lock_mode, rewrites, note FROM migrate.plan($1)", None, &[sql.into()])? {
                out.push((row.get(1)?.unwrap(), row.get(2)?, row.get(3)?, row.get(4)?, row.get::<String>(5)?.unwrap()));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
        .unwrap()
    }

    // Lock measurements need a table whose locks the session does not hold yet, i.e. one created
    // in an earlier transaction: pgrx-tests/tests/safety.rs. Here: rewrites and the rollback.
    #[pg_test]
    fn plan_finds_rewrites_and_leaves_nothing_behind() {
        Spi::run("CREATE TABLE p (id int PRIMARY KEY, v varchar(10)); INSERT INTO p SELECT g, 'x' FROM generate_series(1, 100) g").unwrap();
        let filenode = one::<i64>("SELECT relfilenode::int8 FROM pg_class WHERE relname = 'p'");
        let rows = plan(
            "ALTER TABLE p ADD COLUMN a int;\n\
             ALTER TABLE p ALTER COLUMN v TYPE varchar(20);\n\
             ALTER TABLE p ALTER COLUMN v TYPE int USING length(v);\n\
             CREATE INDEX CONCURRENTLY p_v ON p (v);",
        );
        let find = |n: i32, rel: &str| rows.iter().find(|r| r.0 == n && r.1.as_deref() == Some(rel)).cloned();
        // This transaction created p, so it holds every lock already: nothing new, no rewrite.
        assert!(rows.iter().any(|r| r.0 == 1 && r.1.is_none() && r.3 == Some(false) && r.4 == "no new relation locks"), "{rows:?}");
        assert!(rows.iter().any(|r| r.0 == 2 && r.1.is_none() && r.3 == Some(false)), "varchar(10) to varchar(20) rewrites nothing: {rows:?}");
        let s3 = find(3, "public.p").expect("statement 3 rewrites p");
        assert_eq!(s3.3, Some(true));
        assert!(s3.4.contains("rewritten"), "{}", s3.4);
        assert_eq!(find(3, "public.p_pkey").and_then(|r| r.3), Some(true), "its index is rebuilt too: {rows:?}");
        let s4 = find(4, "p").expect("statement 4 is reported with its documented lock");
        assert_eq!((s4.2.as_deref(), s4.3), (Some("ShareUpdateExclusiveLock"), None));
        assert!(s4.4.starts_with("not executed: CREATE INDEX CONCURRENTLY"), "{}", s4.4);
        // Everything was rolled back.
        assert_eq!(one::<i64>("SELECT relfilenode::int8 FROM pg_class WHERE relname = 'p'"), filenode);
        assert_eq!(
            one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'p'::regclass AND attname = 'v'").as_deref(),
            Some("character varying(10)")
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_attribute WHERE attrelid = 'p'::regclass AND attname = 'a'"), Some(0));
    }

    #[pg_test]
    fn plan_stops_at_a_failing_statement() {
        let rows = plan("CREATE TABLE q (id int);\nALTER TABLE nope ADD COLUMN x int;\nDROP TABLE q;");
        let last = rows.last().unwrap();
        assert_eq!(last.0, 2);
        assert!(last.4.starts_with("failed: relation \"nope\" does not exist; the 1 later statement(s) were not run"), "{}", last.4);
        assert!(rows.iter().any(|r| r.0 == 1 && r.1.as_deref() == Some("public.q") && r.4.starts_with("created by this statement")), "{rows:?}");
        assert_eq!(one::<bool>("SELECT to_regclass('q') IS NULL"), Some(true));
    }

    // ---- verify ------------------------------------------------------------------------

    fn verify(up: &str, down: &str) -> Vec<(String, String, String)> {
        Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select("SELECT step, object, difference FROM migrate.verify($1, $2)", None, &[up.into(), down.into()])? {
                out.push((row.get(1)?.unwrap(), row.get(2)?.unwrap(), row.get(3)?.unwrap()));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
        .unwrap()
    }

    #[pg_test]
    fn verify_of_a_clean_round_trip_has_no_rows() {
        Spi::run("CREATE TABLE users (id int PRIMARY KEY)").unwrap();
        let rows = verify(
            "ALTER TABLE users ADD COLUMN email text NOT NULL DEFAULT '';\n\
             CREATE INDEX users_email ON users (email);\n\
             CREATE TYPE mood AS ENUM ('a', 'b');\n\
             CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users, m mood);\n\
             CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            "DROP FUNCTION f();\nDROP TABLE orders;\nDROP TYPE mood;\nALTER TABLE users DROP COLUMN email;",
        );
        assert_eq!(rows, vec![]);
        assert_eq!(one::<bool>("SELECT to_regclass('orders') IS NULL"), Some(true));
    }

    #[pg_test]
    fn verify_names_what_down_does_not_restore() {
        Spi::run("CREATE TABLE users (id int PRIMARY KEY, name text)").unwrap();
        let rows = verify(
            "ALTER TABLE users ADD COLUMN email text;\nALTER TABLE users ALTER COLUMN name SET NOT NULL;\nCREATE INDEX users_name ON users (name);",
            "DROP INDEX users_name;\nALTER TABLE users DROP COLUMN email;",
        );
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("down", "column public.users.name"));
        assert_eq!(rows[0].2, "changed; expected: text position 2; found: text not null position 2");
    }

    #[pg_test]
    fn verify_reports_leftovers_and_a_failing_step() {
        let rows = verify("CREATE TABLE a (id int);", "SELECT 1;");
        let shown: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
        assert_eq!(
            shown,
            vec![("down", "column public.a.id"), ("down", "table public.a"), ("up again", "statement 1 (line 1) of up SQL")],
            "{rows:?}"
        );
        assert!(rows[1].2.starts_with("unexpected; found: owner "), "{}", rows[1].2);
        assert_eq!(rows[2].2, "failed: relation \"a\" already exists");
    }

    #[pg_test]
    fn verify_a_recorded_version() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE a (id int);', 'DROP TABLE a;')").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM migrate.verify('1')"), Some(0));
        // A down that forgets the column: walking the applied version down and up again fails.
        Spi::run("SELECT migrate.apply('2', 'ALTER TABLE a ADD COLUMN b int;', 'SELECT 1;')").unwrap();
        let step = one::<String>("SELECT string_agg(step || ': ' || object || ': ' || difference, ' | ') FROM migrate.verify('2')").unwrap();
        assert_eq!(step, "up: statement 1 (line 1) of up SQL: failed: column \"b\" of relation \"a\" already exists");
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_attribute WHERE attrelid = 'a'::regclass AND attname = 'b'"), Some(1));
    }

    #[pg_test(error = "cannot verify version \"1\": no down SQL recorded")]
    fn verify_needs_a_down_script() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE a (id int);')").unwrap();
        Spi::run("SELECT * FROM migrate.verify('1')").unwrap();
    }

    #[pg_test(error = "statement 1/1 (line 1) of up SQL cannot be verified: CREATE INDEX CONCURRENTLY cannot run inside a transaction block")]
    fn verify_refuses_non_transactional_statements() {
        Spi::run("SELECT * FROM migrate.verify('CREATE INDEX CONCURRENTLY i ON t (c);', 'DROP INDEX i;')").unwrap();
    }
}
