"""what sales learns reaches the engineer: ``opportunities.handoff_note``, the hand-off's note
(shown on the estimate form, the deal's page and `deal show`; before, it was kept only with the
answer)

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("opportunities") as batch:
        batch.add_column(sa.Column("handoff_note", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("opportunities") as batch:
        batch.drop_column("handoff_note")
