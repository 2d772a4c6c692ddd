"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

The revision id is the pg_migrate version: give it a prefix that sorts after the previous one
(alembic revision --rev-id 0005_<name> -m "<message>").
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: Union[str, Sequence[str], None] = ${repr(down_revision)}
branch_labels: Union[str, Sequence[str], None] = ${repr(branch_labels)}
depends_on: Union[str, Sequence[str], None] = ${repr(depends_on)}

UP = """${"\\"}
-- up SQL: what migrate.apply() runs
"""

DOWN = """${"\\"}
-- down SQL: what migrate.rollback() runs
"""


def upgrade() -> None:
    op.execute(sa.text("SELECT migrate.apply(:version, :up, :down)")
               .bindparams(version=revision, up=UP, down=DOWN))
    # If UP has CREATE INDEX CONCURRENTLY (or anything else that runs in a background job):
    # with op.get_context().autocommit_block():
    #     op.execute(sa.text("CALL migrate.wait_version(:version)").bindparams(version=revision))


def downgrade() -> None:
    op.execute(sa.text("SELECT migrate.rollback(:version)").bindparams(version=revision))
