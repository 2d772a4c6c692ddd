"""expand: accounts.balance (numeric) -> balance_cents (bigint), step 1 of 2

Revision ID: 0003_balance_cents_expand
Revises: 0002_accounts_email_idx

migrate.expand_column() adds balance_cents, a trigger that keeps it and balance in step (the
application deployed before this revision writes balance, the next one writes balance_cents),
and a backfill that fills balance_cents for the existing rows in a background worker, in small
batches. Nothing here waits for the backfill: 0004_balance_cents_contract does, once the new
application is deployed.

Called inside migrate.apply() without down SQL, pg_migrate records the version's down SQL
itself: SELECT migrate.abort(<change>), which removes the column, the trigger and the backfill
and leaves the table exactly as it was.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003_balance_cents_expand"
down_revision: Union[str, Sequence[str], None] = "0002_accounts_email_idx"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UP = """\
SELECT migrate.expand_column('accounts', 'balance',
                             new_name => 'balance_cents', new_type => 'bigint',
                             up       => 'round(balance * 100)::bigint',
                             down     => 'balance_cents / 100.0');
"""


def upgrade() -> None:
    op.execute(sa.text("SELECT migrate.apply(:version, :up)").bindparams(version=revision, up=UP))


def downgrade() -> None:
    op.execute(sa.text("SELECT migrate.rollback(:version)").bindparams(version=revision))
