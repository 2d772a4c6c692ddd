"""contract: finish balance -> balance_cents, step 2 of 2

Revision ID: 0004_balance_cents_contract
Revises: 0003_balance_cents_expand

Run it once no application version writes accounts.balance any more. Everything here runs
outside a transaction block (autocommit_block): CALL migrate.wait_change() waits for the
backfill of 0003; migrate.contract() queues the job that validates balance_cents, moves the
CHECK, NOT NULL and DEFAULT to it and drops balance and the trigger in one short transaction;
CALL migrate.wait() waits for that job.

The change id is looked up in migrate.changes by the version that made it. Re-running this
revision after a failure is safe: migrate.contract() of a change whose contract job failed
resumes that job.

There is no way back: the contract dropped the old column (pg_migrate refuses to abort a
contracted change, and records no down SQL for it). To undo it, write a new forward revision
(an expand_column from balance_cents back to a numeric column, then its contract).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004_balance_cents_contract"
down_revision: Union[str, Sequence[str], None] = "0003_balance_cents_expand"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

EXPAND_VERSION = "0003_balance_cents_expand"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        change = bind.execute(
            sa.text("SELECT change FROM migrate.changes WHERE version = :version"),
            {"version": EXPAND_VERSION},
        ).scalar_one_or_none()
        if change is None:
            raise RuntimeError(f"no open pg_migrate change was made by {EXPAND_VERSION}: "
                               "see SELECT * FROM migrate.changes")
        bind.execute(sa.text("CALL migrate.wait_change(:change)"), {"change": change})
        job = bind.execute(sa.text("SELECT migrate.contract(:change)"),
                           {"change": change}).scalar_one()
        bind.execute(sa.text("CALL migrate.wait(:job)"), {"job": job})


def downgrade() -> None:
    raise RuntimeError(
        f"{revision} cannot be downgraded: the contract dropped accounts.balance. "
        "Undo it with a new forward revision (expand_column back to numeric, then contract).")
