"""pg_migrate from plain psycopg 3: apply migrations, wait for background jobs, handle errors.

Usage: DATABASE_URL=postgres://user@host:port/dbname python migrate_demo.py

The connection is in autocommit mode. Each migration runs in an explicit transaction
(`with conn.transaction():`), so migrate.apply() and anything the application does with it
commit or roll back together. CALL migrate.wait…() runs outside any transaction block, on its
own: it commits between its polls, and PostgreSQL refuses that inside a transaction block.

Then it makes pg_migrate refuse things (and a background job fail) and prints what reaches the
client: the exception class, e.sqlstate and e.diag's message_primary, message_detail and
message_hint. It exits non-zero when something is not as expected.
"""
import os
import sys

import psycopg
from psycopg import errors

CREATE_ACCOUNTS = "20240101000000_create_accounts"
CREATE_ACCOUNTS_UP = """\
CREATE TABLE accounts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL,
    balance    numeric(12,2) NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""
CREATE_ACCOUNTS_DOWN = "DROP TABLE accounts;"

EMAIL_INDEX = "20240102000000_accounts_email_idx"
EMAIL_INDEX_UP = "CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);"
EMAIL_INDEX_DOWN = "DROP INDEX CONCURRENTLY IF EXISTS accounts_email_idx;"

BALANCE_INDEX = "20240103000000_accounts_balance_idx"
BALANCE_INDEX_UP = "CREATE INDEX accounts_balance_idx ON accounts (balance);"  # lint refuses it

CREATED_AT_INDEX = "20240104000000_accounts_created_at_idx"
CREATED_AT_INDEX_UP = "CREATE INDEX CONCURRENTLY accounts_created_at_idx ON accounts (created_at);"
CREATED_AT_INDEX_DOWN = "DROP INDEX CONCURRENTLY IF EXISTS accounts_created_at_idx;"

NOTE = "20240105000000_accounts_note"
NOTE_UP = "ALTER TABLE accounts ADD COLUMN note text;"
NOTE_DOWN = "ALTER TABLE accounts DROP COLUMN note;"

UNIQUE_EMAIL = "20240106000000_accounts_email_key"
UNIQUE_EMAIL_UP = "CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (email);"
UNIQUE_EMAIL_DOWN = "DROP INDEX CONCURRENTLY IF EXISTS accounts_email_key;"

failures: list[str] = []


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def check(ok: bool, what: str) -> None:
    print(f"  {'ok' if ok else 'FAILED'}: {what}", flush=True)
    if not ok:
        failures.append(what)


def apply(conn: psycopg.Connection, version: str, up: str, down: str | None = None) -> str:
    """One migration, in a transaction of its own; returns 'applied' or 'applying'."""
    with conn.transaction():
        return conn.execute("SELECT migrate.apply(%s, %s, %s)", (version, up, down)).fetchone()[0]


def wait_version(conn: psycopg.Connection, version: str) -> None:
    """Outside any transaction block: the connection is in autocommit mode."""
    assert conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    conn.execute("CALL migrate.wait_version(%s)", (version,))


def state(conn: psycopg.Connection, version: str) -> str | None:
    row = conn.execute("SELECT state FROM migrate.status() WHERE version = %s", (version,)).fetchone()
    return row[0] if row else None


def expect_error(title: str, exc_class: type[psycopg.Error], sqlstate: str,
                 in_primary: str, in_detail: str | None, in_hint: str, action) -> None:
    """Runs action(), which must raise exc_class; prints and checks what reached the client."""
    step(title)
    try:
        action()
    except psycopg.Error as e:
        print(f"  caught {type(e).__module__}.{type(e).__name__}")
        print(f"  e.sqlstate:                {e.sqlstate}")
        print(f"  e.diag.message_primary:    {e.diag.message_primary}")
        print(f"  e.diag.message_detail:     {e.diag.message_detail}")
        print(f"  e.diag.message_hint:       {e.diag.message_hint}")
        check(isinstance(e, exc_class), f"the exception is {exc_class.__name__}")
        check(e.sqlstate == sqlstate, f"sqlstate is {sqlstate}")
        check(in_primary in (e.diag.message_primary or ""), f"message_primary has {in_primary!r}")
        if in_detail is not None:
            check(in_detail in (e.diag.message_detail or ""), f"message_detail has {in_detail!r}")
        check(in_hint in (e.diag.message_hint or ""), f"message_hint has {in_hint!r}")
    else:
        check(False, f"{title}: no error was raised")


def main() -> int:
    url = os.environ["DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: print(f"  {d.severity}: {d.message_primary}", flush=True))

        step("apply a migration in a transaction")
        check(apply(conn, CREATE_ACCOUNTS, CREATE_ACCOUNTS_UP, CREATE_ACCOUNTS_DOWN) == "applied",
              "apply() returned 'applied'")
        with conn.transaction():
            conn.execute("INSERT INTO accounts (email, balance) "
                         "SELECT 'user' || g || '@example.com', g FROM generate_series(1, 1000) g")

        step("apply it again: nothing to do")
        check(apply(conn, CREATE_ACCOUNTS, CREATE_ACCOUNTS_UP, CREATE_ACCOUNTS_DOWN) == "applied",
              "apply() of the same version and SQL returned 'applied'")

        step("CREATE INDEX CONCURRENTLY: apply() returns 'applying'; CALL wait_version() in autocommit")
        check(apply(conn, EMAIL_INDEX, EMAIL_INDEX_UP, EMAIL_INDEX_DOWN) == "applying",
              "apply() returned 'applying'")
        wait_version(conn, EMAIL_INDEX)
        check(state(conn, EMAIL_INDEX) == "applied", "the version is applied once the wait returns")

        # Errors. After each one the transaction it happened in is rolled back and the
        # connection is ready for the next statement.
        expect_error(
            "an applied migration, edited",
            errors.ObjectNotInPrerequisiteState, "55000",
            f'version "{CREATE_ACCOUNTS}" is already applied with a different checksum',
            "Recorded checksum", "migrate.repair",
            lambda: apply(conn, CREATE_ACCOUNTS, CREATE_ACCOUNTS_UP.replace("(12,2)", "(14,2)"),
                          CREATE_ACCOUNTS_DOWN))

        def wait_in_transaction():
            job = conn.execute("SELECT job FROM migrate.jobs WHERE version = %s ORDER BY job DESC",
                               (EMAIL_INDEX,)).fetchone()[0]
            with conn.transaction():
                conn.execute("CALL migrate.wait(%s)", (job,))

        expect_error(
            "CALL migrate.wait() inside a transaction block",
            errors.ActiveSqlTransaction, "25001",
            "cannot run inside a transaction block", "between polls", "COMMIT first",
            wait_in_transaction)

        expect_error(
            "a migration that pg_migrate's lint refuses",
            errors.InvalidObjectDefinition, "42P17",
            "breaks lint rule index-not-concurrent", "without CONCURRENTLY",
            "CREATE INDEX CONCURRENTLY",
            lambda: apply(conn, BALANCE_INDEX, BALANCE_INDEX_UP))
        check(state(conn, BALANCE_INDEX) is None, "the refused version is not recorded")

        # One version in flight: a session with an open REPEATABLE READ snapshot makes the index
        # build of CREATED_AT_INDEX wait, so that version stays 'applying' until it commits.
        with psycopg.connect(url) as reader:
            reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            reader.execute("SELECT count(*) FROM accounts").fetchone()
            step("a version whose index build waits for a long-running reader")
            check(apply(conn, CREATED_AT_INDEX, CREATED_AT_INDEX_UP, CREATED_AT_INDEX_DOWN) == "applying",
                  "apply() returned 'applying'")
            expect_error(
                "another apply() while that version is applying",
                errors.ObjectInUse, "55006",
                f'version "{CREATED_AT_INDEX}" is still applying', f'"{NOTE}" must wait', "migrate.wait(",
                lambda: apply(conn, NOTE, NOTE_UP, NOTE_DOWN))
            reader.commit()
        step("the reader has committed: wait for the version, then apply the next one")
        wait_version(conn, CREATED_AT_INDEX)
        check(apply(conn, NOTE, NOTE_UP, NOTE_DOWN) == "applied", "apply() returned 'applied'")

        # A job that fails: the unique index cannot be built while an email is duplicated.
        # The wait raises the job's error; the version is 'failed'; the same apply resumes it.
        with conn.transaction():
            conn.execute("INSERT INTO accounts (email) VALUES ('user1@example.com')")
        step("a version whose job fails")
        check(apply(conn, UNIQUE_EMAIL, UNIQUE_EMAIL_UP, UNIQUE_EMAIL_DOWN) == "applying",
              "apply() returned 'applying'")
        expect_error(
            "CALL migrate.wait_version() of that version",
            errors.UniqueViolation, "23505",
            'could not create unique index "accounts_email_key"', None,
            "apply the version again to resume",
            lambda: wait_version(conn, UNIQUE_EMAIL))
        check(state(conn, UNIQUE_EMAIL) == "failed", "the version is failed")
        check(conn.execute("SELECT to_regclass('accounts_email_key')").fetchone()[0] is None,
              "no INVALID index was left behind")
        step("fix the data, apply the same version again: its job resumes")
        with conn.transaction():
            conn.execute("DELETE FROM accounts WHERE id = (SELECT max(id) FROM accounts)")
        check(apply(conn, UNIQUE_EMAIL, UNIQUE_EMAIL_UP, UNIQUE_EMAIL_DOWN) == "applying",
              "apply() returned 'applying'")
        wait_version(conn, UNIQUE_EMAIL)
        check(state(conn, UNIQUE_EMAIL) == "applied", "the version is applied")

        step("migrate.status()")
        for version, st in conn.execute("SELECT version, state FROM migrate.status()"):
            print(f"  {version}  {st}")
        check([r[1] for r in conn.execute("SELECT version, state FROM migrate.status()")]
              == ["applied"] * 5, "five versions applied")

    if failures:
        print(f"\n{len(failures)} check(s) FAILED:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
