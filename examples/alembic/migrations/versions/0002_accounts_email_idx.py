"""index accounts.email without blocking writes

Revision ID: 0002_accounts_email_idx
Revises: 0001_create_accounts

CREATE INDEX CONCURRENTLY cannot run in a transaction block: migrate.apply() returns 'applying'
and a background worker builds the index once this revision's transaction has committed.
autocommit_block() commits it, and CALL migrate.wait_version() (which must run outside a
transaction block) waits for the build, so the next revision starts only when the index exists
(pg_migrate refuses to apply another version while one is still applying: SQLSTATE 55006).
The rollback drops the index concurrently, in a job too.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002_accounts_email_idx"
down_revision: Union[str, Sequence[str], None] = "0001_create_accounts"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UP = """\
CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);
"""

DOWN = """\
DROP INDEX CONCURRENTLY IF EXISTS accounts_email_idx;
"""


def wait_for_job() -> None:
    with op.get_context().autocommit_block():
        op.execute(sa.text("CALL migrate.wait_version(:version)").bindparams(version=revision))


def upgrade() -> None:
    op.execute(sa.text("SELECT migrate.apply(:version, :up, :down)")
               .bindparams(version=revision, up=UP, down=DOWN))
    wait_for_job()


def downgrade() -> None:
    op.execute(sa.text("SELECT migrate.rollback(:version)").bindparams(version=revision))
    wait_for_job()
