"""create the accounts table

Revision ID: 0001_create_accounts
Revises:

An ordinary migration: pg_migrate runs UP in this revision's transaction, records the version
(with its checksum and DOWN) and refuses unsafe statements. The revision id is the pg_migrate
version.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001_create_accounts"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UP = """\
CREATE TABLE accounts (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email   text NOT NULL,
    balance numeric(12,2) NOT NULL DEFAULT 0 CHECK (balance >= 0)
);
"""

DOWN = """\
DROP TABLE accounts;
"""


def upgrade() -> None:
    op.execute(sa.text("SELECT migrate.apply(:version, :up, :down)")
               .bindparams(version=revision, up=UP, down=DOWN))


def downgrade() -> None:
    op.execute(sa.text("SELECT migrate.rollback(:version)").bindparams(version=revision))
