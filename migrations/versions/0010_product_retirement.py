"""products can be retired: no longer offered in new estimates

``products.active``: offered in new estimates (every existing product is); ``products.retired_at``:
when it was retired. What was already issued (revisions, orders, invoices) keeps its lines.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("retired_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_column("retired_at")
        batch.drop_column("active")
