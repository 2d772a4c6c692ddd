//! Single-transaction behaviour of apply / rollback / baseline / repair. Anything that needs
//! commits or several sessions lives in pgrx-tests/.

use pgrx::prelude::*;

fn one<T: pgrx::IntoDatum + pgrx::FromDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).expect(sql)
}

fn state(version: &str) -> Option<String> {
    // max() so that an unknown version is one NULL row, not zero rows.
    one::<String>(&format!("SELECT max(state) FROM migrate.status() WHERE version = '{version}'"))
}

fn table_exists(name: &str) -> bool {
    one::<bool>(&format!("SELECT to_regclass('{name}') IS NOT NULL")).unwrap()
}

/// Events of `version`, leaving out failed attempts: those are written by a worker in their own
/// transaction, so other tests' expected failures are visible here.
fn events(version: &str) -> i64 {
    one::<i64>(&format!(
        "SELECT count(*) FROM migrate.events WHERE version = '{version}' AND action NOT LIKE '%\\_failed'"
    ))
    .unwrap()
}

#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn apply_records_and_runs_every_statement() {
        let s = one::<String>(
            "SELECT migrate.apply('20240101000000_users',
                $$CREATE TABLE users (id bigint PRIMARY KEY);
                  CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint);$$,
                $$DROP TABLE orders; DROP TABLE users;$$)",
        );
        assert_eq!(s.as_deref(), Some("applied"));
        assert!(table_exists("users") && table_exists("orders"));
        assert_eq!(state("20240101000000_users").as_deref(), Some("applied"));
        assert_eq!(
            one::<String>("SELECT name FROM migrate.status() WHERE version = '20240101000000_users'").as_deref(),
            Some("users")
        );
        assert_eq!(one::<bool>("SELECT has_down FROM migrate.status()"), Some(true));
        assert_eq!(events("20240101000000_users"), 1);
    }

    #[pg_test]
    fn reapply_same_checksum_is_a_noop() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE t1 (id int);')").unwrap();
        // Different line endings and trailing spaces: same checksum, nothing runs again.
        let s = one::<String>("SELECT migrate.apply('1', E'CREATE TABLE t1 (id int);  \\r\\n')");
        assert_eq!(s.as_deref(), Some("applied"));
        assert_eq!(events("1"), 1);
    }

    #[pg_test(error = "version \"1\" is already applied with a different checksum")]
    fn reapply_different_checksum_is_an_error() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE t1 (id int);')").unwrap();
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE t1 (id bigint);')").unwrap();
    }

    #[pg_test(error = "statement 2/2 (line 2) of up SQL of version \"2\" failed: relation \"nope\" does not exist")]
    fn failing_statement_is_named() {
        Spi::run("SELECT migrate.apply('2', $$CREATE TABLE gone (id int);\nALTER TABLE nope ADD COLUMN x int;$$)")
            .unwrap();
    }

    #[pg_test(error = "syntax error at or near \"TABEL\" in up SQL of version \"3\" at line 2, column 8")]
    fn syntax_error_reports_line_and_column() {
        Spi::run("SELECT migrate.apply('3', E'CREATE TABLE a (i int);\\nCREATE TABEL b (i int);')").unwrap();
    }

    #[pg_test(error = "syntax error at or near \"DRP\" in down SQL of version \"3\" at line 1, column 1")]
    fn syntax_error_in_down_is_found_at_apply() {
        Spi::run("SELECT migrate.apply('3', 'CREATE TABLE a (i int);', 'DRP TABLE a;')").unwrap();
    }

    #[pg_test]
    fn rollback_runs_down_of_latest() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE a (i int);', 'DROP TABLE a;')").unwrap();
        Spi::run("SELECT migrate.apply('2', 'CREATE TABLE b (i int);', 'DROP TABLE b;')").unwrap();
        assert_eq!(one::<String>("SELECT migrate.rollback()").as_deref(), Some("rolled_back"));
        assert!(!table_exists("b") && table_exists("a"));
        assert_eq!(state("2").as_deref(), Some("rolled_back"));
        assert_eq!(state("1").as_deref(), Some("applied"));
        // A rolled-back version can be applied again.
        Spi::run("SELECT migrate.apply('2', 'CREATE TABLE b (i int);', 'DROP TABLE b;')").unwrap();
        assert!(table_exists("b"));
        assert_eq!(
            one::<String>("SELECT string_agg(action, ',' ORDER BY id) FROM migrate.events WHERE version = '2' AND action NOT LIKE '%\\_failed'").as_deref(),
            Some("apply,rollback,reapply")
        );
    }

    #[pg_test(error = "version \"1\" is not the latest applied version")]
    fn rollback_of_older_version_is_refused() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE a (i int);', 'DROP TABLE a;')").unwrap();
        Spi::run("SELECT migrate.apply('2', 'CREATE TABLE b (i int);', 'DROP TABLE b;')").unwrap();
        Spi::run("SELECT migrate.rollback('1')").unwrap();
    }

    #[pg_test(error = "cannot roll back: no down SQL recorded for \"1\"")]
    fn rollback_without_down_is_refused() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE a (i int);')").unwrap();
        Spi::run("SELECT migrate.rollback()").unwrap();
    }

    #[pg_test(error = "unknown migration version \"nope\"")]
    fn rollback_of_unknown_version() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE a (i int);', 'DROP TABLE a;')").unwrap();
        Spi::run("SELECT migrate.rollback('nope')").unwrap();
    }

    #[pg_test(error = "there is no applied migration to roll back")]
    fn rollback_with_empty_history() {
        Spi::run("SELECT migrate.rollback()").unwrap();
    }

    #[pg_test]
    fn rollback_to_rolls_back_newest_first() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE a (i int);', 'DROP TABLE a;')").unwrap();
        Spi::run("SELECT migrate.apply('2', 'ALTER TABLE a ADD COLUMN j int;', 'ALTER TABLE a DROP COLUMN j;')").unwrap();
        Spi::run("SELECT migrate.apply('3', 'ALTER TABLE a ADD COLUMN k int;', 'ALTER TABLE a DROP COLUMN k;')").unwrap();
        let order = one::<String>("SELECT string_agg(version, ',') FROM migrate.rollback_to('1')");
        assert_eq!(order.as_deref(), Some("3,2"));
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_attribute WHERE attrelid = 'a'::regclass AND attnum > 0 AND NOT attisdropped"), Some(1));
        assert_eq!(state("1").as_deref(), Some("applied"));
    }

    #[pg_test(error = "cannot roll back: no down SQL recorded for \"2\"")]
    fn rollback_to_is_all_or_nothing() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE a (i int);', 'DROP TABLE a;')").unwrap();
        Spi::run("SELECT migrate.apply('2', 'ALTER TABLE a ADD COLUMN j int;')").unwrap();
        Spi::run("SELECT migrate.apply('3', 'ALTER TABLE a ADD COLUMN k int;', 'ALTER TABLE a DROP COLUMN k;')").unwrap();
        Spi::run("SELECT * FROM migrate.rollback_to('1')").unwrap();
    }

    #[pg_test]
    fn baseline_skips_older_versions() {
        assert_eq!(one::<String>("SELECT migrate.baseline('20240101_existing')").as_deref(), Some("applied"));
        assert_eq!(state("20240101_existing").as_deref(), Some("baseline"));
        Spi::run("SELECT migrate.apply('20231231_old', 'CREATE TABLE never (i int);')").unwrap();
        assert!(!table_exists("never"));
        assert_eq!(state("20231231_old"), None);
        Spi::run("SELECT migrate.apply('20240102_new', 'CREATE TABLE fresh (i int);')").unwrap();
        assert!(table_exists("fresh"));
    }

    #[pg_test]
    fn naming_a_baseline_in_rollback_forgets_it() {
        Spi::run("SELECT migrate.baseline('20240101_existing')").unwrap();
        assert_eq!(one::<bool>("SELECT owner = current_user FROM migrate.status()"), Some(true));
        assert_eq!(one::<String>("SELECT migrate.rollback('20240101_existing')").as_deref(), Some("rolled_back"));
        assert_eq!(state("20240101_existing").as_deref(), Some("rolled_back"));
        // Nothing is skipped any more.
        Spi::run("SELECT migrate.apply('20231231_old', 'CREATE TABLE once_skipped (i int);')").unwrap();
        assert!(table_exists("once_skipped"));
    }

    #[pg_test(error = "cannot roll back: \"20240101_existing\" is a baseline, which ran nothing")]
    fn bare_rollback_stops_at_a_baseline() {
        Spi::run("SELECT migrate.baseline('20240101_existing')").unwrap();
        Spi::run("SELECT migrate.rollback()").unwrap();
    }

    #[pg_test]
    fn repair_realigns_checksum_and_logs_it() {
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE a (i int);')").unwrap();
        let old = one::<String>("SELECT checksum FROM migrate.status()").unwrap();
        Spi::run("SELECT migrate.repair('1', 'CREATE TABLE a (i int); -- reviewed')").unwrap();
        let new = one::<String>("SELECT checksum FROM migrate.status()").unwrap();
        assert_ne!(old, new);
        assert_eq!(new, one::<String>("SELECT migrate.checksum('CREATE TABLE a (i int); -- reviewed')").unwrap());
        assert_eq!(
            one::<String>("SELECT detail->>'previous_checksum' FROM migrate.events WHERE action = 'repair'"),
            Some(old)
        );
        // The edited text is now a no-op.
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE a (i int); -- reviewed')").unwrap();
    }

    #[pg_test(error = "migration version must not be NULL")]
    fn null_version() {
        Spi::run("SELECT migrate.apply(NULL, 'SELECT 1')").unwrap();
    }

    #[pg_test(error = "migration version must not be empty")]
    fn empty_version() {
        Spi::run("SELECT migrate.apply('', 'SELECT 1')").unwrap();
    }

    #[pg_test(error = "up SQL of version \"1\" must not be NULL")]
    fn null_up() {
        Spi::run("SELECT migrate.apply('1', NULL)").unwrap();
    }

    #[pg_test(error = "up SQL of version \"1\" is empty")]
    fn empty_up() {
        Spi::run("SELECT migrate.apply('1', '   ')").unwrap();
    }

    #[pg_test(error = "migration version \"1 or 1=1\" contains the character ' '")]
    fn odd_version() {
        Spi::run("SELECT migrate.apply('1 or 1=1', 'SELECT 1')").unwrap();
    }

    #[pg_test(error = "migration version is too long (5000 characters)")]
    fn long_version() {
        Spi::run("SELECT migrate.apply(repeat('9', 5000), 'SELECT 1')").unwrap();
    }

    #[pg_test(error = "up SQL of version \"1\" is too large (10485773 bytes)")]
    fn huge_script() {
        Spi::run("SELECT migrate.apply('1', 'SELECT 1; -- ' || repeat('x', 10 * 1024 * 1024))").unwrap();
    }

    #[pg_test(error = "statement 1/2 (line 1) of up SQL of version \"1\" cannot run inside a migration: transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) is not allowed")]
    fn transaction_control_is_refused() {
        Spi::run("SELECT migrate.apply('1', 'COMMIT; CREATE TABLE a (i int);')").unwrap();
    }

    #[pg_test(error = "statement 1/1 (line 1) of up SQL of version \"1\" failed: migrate.apply() cannot be called from the SQL of a migration")]
    fn nested_apply_is_refused() {
        Spi::run("SELECT migrate.apply('1', $$SELECT migrate.apply('2', 'SELECT 1')$$)").unwrap();
    }

    #[pg_test]
    fn user_search_path_applies_to_migration_sql() {
        Spi::run("CREATE SCHEMA app; SET LOCAL search_path = app, public").unwrap();
        Spi::run("SELECT migrate.apply('1', 'CREATE TABLE things (i int);')").unwrap();
        assert!(table_exists("app.things"));
        assert_eq!(one::<String>("SHOW search_path").as_deref(), Some("app, public"));
        assert_eq!(one::<String>("SHOW lock_timeout").as_deref(), Some("0"));
    }

    #[pg_test(error = "migrate.events is append-only: UPDATE is not allowed")]
    fn events_are_append_only() {
        Spi::run("SELECT migrate.apply('1', 'SELECT 1;')").unwrap();
        Spi::run("UPDATE migrate.events SET action = 'forged'").unwrap();
    }

    #[pg_test(error = "migrate.events is append-only: DELETE is not allowed")]
    fn events_refuse_delete() {
        Spi::run("SELECT migrate.apply('1', 'SELECT 1;')").unwrap();
        Spi::run("DELETE FROM migrate.events").unwrap();
    }
}
