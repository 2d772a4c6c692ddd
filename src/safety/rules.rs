//! The lint rules: one stable name each, a severity, why the pattern is dangerous and what to do
//! instead. This table is the single source for lint findings, `migrate.lint_rules()`, the
//! `-- migrate:allow` check and docs/lint.md. Names are kebab-case and never change meaning:
//! migrations and `migrate.migrations.lint_accepted` refer to them.

use pgrx::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// `migrate.apply()` refuses the migration unless the rule is allowed.
    Error,
    /// Reported (a NOTICE under `migrate.apply()`), never refused.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub severity: Severity,
    /// Why the pattern is dangerous; every finding's message ends with it.
    pub why: &'static str,
    /// The safe pattern, naming the pg_migrate function that implements it.
    pub hint: &'static str,
}

macro_rules! rules {
    ($($id:ident = $name:literal, $sev:ident, $why:literal, $hint:literal;)*) => {
        $(pub static $id: Rule = Rule { name: $name, severity: Severity::$sev, why: $why, hint: $hint };)*
        /// Every rule, in documentation order.
        pub static ALL: &[&Rule] = &[$(&$id),*];
    };
}

rules! {
    INDEX_NOT_CONCURRENT = "index-not-concurrent", Error,
        "CREATE INDEX without CONCURRENTLY holds a SHARE lock for the whole build: every INSERT, UPDATE and DELETE on the table waits until the index is built.",
        "Build it with SELECT migrate.create_index(...) (CREATE INDEX CONCURRENTLY in a background worker), or run CREATE INDEX CONCURRENTLY on its own, outside a transaction.";
    DROP_INDEX_NOT_CONCURRENT = "drop-index-not-concurrent", Error,
        "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the index's table: reads and writes wait, and so does everything queued behind them.",
        "Use SELECT migrate.drop_index(...) (DROP INDEX CONCURRENTLY in a background worker), or run DROP INDEX CONCURRENTLY on its own, outside a transaction.";
    CONCURRENTLY_IN_TRANSACTION = "concurrently-in-transaction", Error,
        "CONCURRENTLY cannot run inside a transaction block: Postgres refuses it there, so the migration fails half-way in tools that wrap a file in a transaction or send it as one multi-statement query.",
        "Put the statement in a migration of its own, or let pg_migrate run it as a background job: migrate.create_index, migrate.drop_index or migrate.run_async.";
    REINDEX_NOT_CONCURRENT = "reindex-not-concurrent", Error,
        "REINDEX without CONCURRENTLY blocks writes to the table, and reads that use the index, until the rebuild finishes.",
        "Use REINDEX ... CONCURRENTLY outside a transaction, for example as a job: SELECT migrate.run_async('REINDEX INDEX CONCURRENTLY ...').";
    VACUUM_FULL = "vacuum-full", Error,
        "VACUUM FULL rewrites the whole table under an ACCESS EXCLUSIVE lock: nothing can read or write it until it finishes, and it needs room for a second copy.",
        "Use plain VACUUM (SELECT migrate.run_async('VACUUM ...')), or an online rebuild tool such as pg_repack or pg_squeeze.";
    CLUSTER = "cluster", Error,
        "CLUSTER rewrites the table in index order under an ACCESS EXCLUSIVE lock: no reads or writes until it finishes.",
        "There is no concurrent CLUSTER: use an online rebuild tool such as pg_repack, or run it in a maintenance window, never in a migration.";
    REFRESH_MATVIEW_NOT_CONCURRENT = "refresh-matview-not-concurrent", Error,
        "REFRESH MATERIALIZED VIEW without CONCURRENTLY holds an ACCESS EXCLUSIVE lock on the view: every query on it waits for the refresh.",
        "Give the view a unique index and use REFRESH MATERIALIZED VIEW CONCURRENTLY, for example as a job: SELECT migrate.run_async('REFRESH MATERIALIZED VIEW CONCURRENTLY ...').";
    ADD_FOREIGN_KEY_WITHOUT_NOT_VALID = "add-foreign-key-without-not-valid", Error,
        "Adding a FOREIGN KEY checks every existing row while holding locks that block writes on both tables.",
        "Use SELECT migrate.add_foreign_key(...), or ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID now and VALIDATE CONSTRAINT in a later migration.";
    ADD_CHECK_WITHOUT_NOT_VALID = "add-check-without-not-valid", Error,
        "Adding a CHECK constraint scans the whole table under an ACCESS EXCLUSIVE lock: reads and writes wait for the scan.",
        "Use SELECT migrate.add_check(...), or ADD CONSTRAINT ... CHECK (...) NOT VALID now and VALIDATE CONSTRAINT in a later migration.";
    VALIDATE_IN_SAME_MIGRATION = "validate-in-same-migration", Error,
        "VALIDATE CONSTRAINT in the same transaction as the NOT VALID add gains nothing: the lock the add took is still held while every row is checked.",
        "Validate in a later migration, where VALIDATE takes only a SHARE UPDATE EXCLUSIVE lock, or let migrate.add_check / migrate.add_foreign_key do both steps.";
    SET_NOT_NULL_WITHOUT_CHECK = "set-not-null-without-check", Error,
        "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock, unless a validated CHECK (column IS NOT NULL) already proves it.",
        "First add CHECK (column IS NOT NULL) NOT VALID and validate it in a later migration (SELECT migrate.add_check(...)); SET NOT NULL is then instant and the check can be dropped.";
    ADD_COLUMN_NOT_NULL_WITHOUT_DEFAULT = "add-column-not-null-without-default", Error,
        "A NOT NULL column without a default fails on a table that has rows, and makes every INSERT from application code that does not know the column yet fail.",
        "Add the column nullable (or with a constant DEFAULT), backfill it with migrate.backfill_start, then add NOT NULL through a validated check; SELECT migrate.add_column(...) does all of it.";
    ADD_COLUMN_VOLATILE_DEFAULT = "add-column-volatile-default", Error,
        "A DEFAULT that calls a volatile function (random(), gen_random_uuid(), clock_timestamp(), nextval(), or a function Postgres cannot prove stable) makes Postgres rewrite the whole table under an ACCESS EXCLUSIVE lock.",
        "Add the column without a default, then SET DEFAULT (applies to new rows only) and fill the old rows with migrate.backfill_start; SELECT migrate.add_column(...) does this.";
    ADD_COLUMN_GENERATED_STORED = "add-column-generated-stored", Error,
        "Adding a STORED generated column computes it for every row: a full table rewrite under an ACCESS EXCLUSIVE lock.",
        "Add a plain nullable column, fill it with migrate.backfill_start and keep it current with a trigger; SELECT migrate.add_column(...) does this.";
    ADD_COLUMN_SERIAL = "add-column-serial", Error,
        "Adding a serial or identity column fills every existing row from a sequence: a full table rewrite under an ACCESS EXCLUSIVE lock.",
        "Add a nullable bigint column, set its sequence DEFAULT afterwards, backfill old rows with migrate.backfill_start and add NOT NULL last; SELECT migrate.add_column(...) does this.";
    ALTER_COLUMN_TYPE = "alter-column-type", Error,
        "Changing a column's type rewrites the table and rebuilds its indexes under an ACCESS EXCLUSIVE lock (only binary-compatible changes such as varchar(n) to varchar(m > n) or to text are instant).",
        "Use expand/contract: SELECT migrate.expand_column(...) adds the new column, keeps it in sync and backfills it; migrate.contract(...) switches over once the code uses it.";
    CONSTRAINT_BUILDS_INDEX = "constraint-builds-index", Error,
        "ADD PRIMARY KEY, UNIQUE or EXCLUDE builds an index while holding an ACCESS EXCLUSIVE lock: no reads or writes for the whole build.",
        "Build a unique index first with SELECT migrate.create_index(...) (CONCURRENTLY), then ADD CONSTRAINT ... PRIMARY KEY / UNIQUE USING INDEX, which is instant. EXCLUDE has no such form: add it while the table is small or quiet.";
    RENAME_COLUMN = "rename-column", Error,
        "Renaming a column breaks every running query and deployed application version that still uses the old name.",
        "Use expand/contract: SELECT migrate.expand_column(...) adds the new name and keeps it in sync with the old; migrate.contract(...) drops the old one once no code uses it.";
    RENAME_TABLE = "rename-table", Error,
        "Renaming a table breaks every running query and deployed application version that still uses the old name.",
        "Create the new table (or a view under the new name), move readers and writers over with expand/contract (migrate.expand_column, migrate.contract), and drop the old name last.";
    DROP_COLUMN = "drop-column", Error,
        "Dropping a column destroys its data and breaks application versions that still read or write it; a down migration cannot bring the data back.",
        "Stop using the column in code first, then SELECT migrate.drop_column(...): a soft drop (renamed to _deprecated) that migrate.contract finishes later.";
    DROP_TABLE = "drop-table", Error,
        "Dropping a table destroys its data under an ACCESS EXCLUSIVE lock and breaks code that still uses it; a down migration cannot bring the data back.",
        "Remove every reference from code first, keep a snapshot (CREATE TABLE ... AS), and drop it in a later contract step (migrate.contract).";
    DROP_SCHEMA = "drop-schema", Error,
        "Dropping a schema destroys every object in it (silently, with CASCADE) and no down migration can bring the data back.",
        "Drop the objects one by one in contract steps after the code stopped using them (migrate.contract).";
    DROP_NOT_NULL = "drop-not-null", Warning,
        "Dropping NOT NULL lets in NULLs that readers relying on the constraint do not expect, and the down migration's SET NOT NULL fails once one is written.",
        "Make sure every reader handles NULL first, and relax the constraint in a contract step (migrate.contract).";
    TRUNCATE = "truncate", Error,
        "TRUNCATE removes every row at once under an ACCESS EXCLUSIVE lock, and no down migration can bring the rows back.",
        "Leave data removal out of schema migrations; if rows must go, delete them in batches with migrate.backfill_start.";
    ENUM_VALUE_RENAMED = "enum-value-renamed", Error,
        "Renaming an enum value breaks every application version and stored query that still uses the old label.",
        "Enum values are append-only: add the new label with SELECT migrate.add_enum_value(...), move rows to it with migrate.backfill_start, and stop using the old one.";
    ENUM_VALUE_REMOVED = "enum-value-removed", Error,
        "Postgres cannot remove an enum value: dropping or rebuilding the enum type, or deleting from pg_enum, breaks or corrupts every column and row that uses it.",
        "Enum values are append-only: add values with migrate.add_enum_value and stop using old ones; to really shrink the set, move the column to a new type with expand/contract (migrate.expand_column).";
    PREFER_JSONB = "prefer-jsonb", Warning,
        "json keeps the text as it was written: it has no equality operator (DISTINCT, GROUP BY and UNIQUE fail), no GIN indexing, and every access parses it again.",
        "Use jsonb.";
    MIXED_DDL_AND_DATA = "mixed-ddl-and-data", Error,
        "Changing data in the same migration as the schema holds the schema change's locks for as long as the data change runs, and a failure of either undoes both.",
        "Put data changes in a migration of their own, and run large ones as a batched backfill: SELECT migrate.backfill_start(...).";
    WHOLE_TABLE_WRITE = "whole-table-write", Error,
        "An UPDATE or DELETE without WHERE locks every row of the table in one transaction: writers wait until it commits, and the table and WAL bloat at once.",
        "Run it as a batched backfill: SELECT migrate.backfill_start(...) commits every batch and throttles itself.";
    STATEMENT_AFTER_ACCESS_EXCLUSIVE = "statement-after-access-exclusive", Warning,
        "An ACCESS EXCLUSIVE lock is held until the migration commits, so every statement after it extends the time nobody can read or write the table.",
        "Make the statement that takes ACCESS EXCLUSIVE the last of its migration (several changes to one table fit in one ALTER TABLE), or move what follows to a migration of its own, applied in its own transaction (one SELECT migrate.apply(...) per transaction).";
    DDL_ON_PUBLISHED_TABLE = "ddl-on-published-table", Warning,
        "Logical replication does not carry DDL: the subscribers of a publication that includes this table keep its old shape, and replication stops at the first change they cannot apply (a column they do not have).",
        "Run the same change on every subscriber, in an order that never sends them a column they lack: add a column on the subscribers before migrate.expand_column or migrate.add_column on the publisher, drop one there only after migrate.contract (docs/ha.md, Logical replication).";
    MISSING_LOCK_TIMEOUT = "missing-lock-timeout", Warning,
        "Without a lock_timeout, a statement waiting for its lock queues every later query on the table behind it, and the application stalls while it waits.",
        "Start the migration with SET lock_timeout = '2s' and retry when it fails, or apply it with migrate.apply(), which sets lock_timeout and retries with backoff by itself.";
}

pub fn find(name: &str) -> Option<&'static Rule> {
    ALL.iter().copied().find(|r| r.name == name)
}

/// `migrate.lint_rules()`: every rule with its severity, why it matters and the safe pattern.
#[pg_extern(immutable, parallel_safe, name = "lint_rules")]
#[search_path(pg_catalog, pg_temp)]
fn lint_rules() -> TableIterator<
    'static,
    (name!(rule, String), name!(severity, String), name!(why, String), name!(hint, String)),
> {
    TableIterator::new(ALL.iter().map(|r| {
        (r.name.to_string(), r.severity.as_str().to_string(), r.why.to_string(), r.hint.to_string())
    }))
}
