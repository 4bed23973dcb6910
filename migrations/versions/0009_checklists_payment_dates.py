"""what QA checks on each product, and the day a payment was received

``products.qa_checklist``: the items QA signs off one by one (NULL: the standard machine
checklist; an empty list: nothing to check). ``payments.received_on``: the day the money came
in, as finance says (NULL for payments recorded before this column: their record time is it).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("qa_checklist", sa.JSON(), nullable=True))
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("received_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("received_on")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("qa_checklist")
