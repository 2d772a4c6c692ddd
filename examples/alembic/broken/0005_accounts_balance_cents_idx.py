"""an index built the unsafe way, which pg_migrate refuses

Revision ID: 0005_accounts_balance_cents_idx
Revises: 0004_balance_cents_contract

Not part of the project's history: only `alembic -n broken …` sees this folder (test.sh uses it).
A plain CREATE INDEX on an existing table blocks every write to it for the whole build, so
pg_migrate's lint refuses it with SQLSTATE 42P17 and a HINT, before anything runs; the revision's
transaction rolls back and alembic_version stays where it was. The fix is in the HINT: CREATE
INDEX CONCURRENTLY (and a CALL migrate.wait_version, as in 0002_accounts_email_idx).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005_accounts_balance_cents_idx"
down_revision: Union[str, Sequence[str], None] = "0004_balance_cents_contract"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UP = """\
CREATE INDEX accounts_balance_cents_idx ON accounts (balance_cents);
"""

DOWN = """\
DROP INDEX accounts_balance_cents_idx;
"""


def upgrade() -> None:
    op.execute(sa.text("SELECT migrate.apply(:version, :up, :down)")
               .bindparams(version=revision, up=UP, down=DOWN))


def downgrade() -> None:
    op.execute(sa.text("SELECT migrate.rollback(:version)").bindparams(version=revision))
