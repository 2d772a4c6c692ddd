"""Alembic environment for the pg_migrate example.

- The database is DATABASE_URL (postgres://…), used through SQLAlchemy with psycopg 3.
- transaction_per_migration: each revision commits on its own, together with its row in
  alembic_version. A revision that waits for a pg_migrate background job commits its
  migrate.apply() first (op.get_context().autocommit_block()), because the job starts only when
  the transaction that queued it has committed, and CALL migrate.wait…() refuses to run inside
  a transaction block.
- pg_migrate reports progress as NOTICEs (applied, job queued, backfill progress): they are
  logged as alembic.pg_migrate lines. When pg_migrate refuses something, its SQLSTATE, DETAIL and
  HINT are logged before alembic prints the traceback.
"""
import logging
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import DBAPIError

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
log = logging.getLogger("alembic.pg_migrate")


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set (postgres://user@host:port/dbname)")
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


def log_notice(diag) -> None:
    log.info("%s: %s", diag.severity, diag.message_primary)


def log_database_error(error: DBAPIError) -> None:
    diag = getattr(error.orig, "diag", None)
    if diag is None:
        return
    log.error("SQLSTATE %s: %s", diag.sqlstate, diag.message_primary)
    if diag.message_detail:
        log.error("DETAIL: %s", diag.message_detail)
    if diag.message_hint:
        log.error("HINT: %s", diag.message_hint)


def run_migrations_offline() -> None:
    # A revision that waits for a job, or looks up a change id, needs a live connection.
    raise SystemExit("this project has no offline (--sql) mode: pg_migrate's waits need a connection")


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.connection.driver_connection.add_notice_handler(log_notice)
        context.configure(connection=connection, target_metadata=None,
                          transaction_per_migration=True)
        try:
            with context.begin_transaction():
                context.run_migrations()
        except DBAPIError as error:
            log_database_error(error)
            raise


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
