"""when a wait's form was confirmed stored with its suspended run

A run can die after Prefect marks it Suspended and before Prefect stores the wait's form; such
a run could never be answered. Waits without this mark are what recovery checks and repairs.
Waits already open are taken as stored (they were answered or can be, as before).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("waits") as batch_op:
        batch_op.add_column(sa.Column("form_stored_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE waits SET form_stored_at = opened_at")


def downgrade() -> None:
    with op.batch_alter_table("waits") as batch_op:
        batch_op.drop_column("form_stored_at")
