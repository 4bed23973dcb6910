"""an email's claim names its sender, has a lease, and records when the SMTP DATA step began

A claim that never reached DATA can then be released when its sender is gone. Rows already
'sending' were claimed under the old rule (claimed, then rendered, then sent), so whether they
reached the server is unknown: they are marked as handed over, and stay for a person to check.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("emails") as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=120), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("handed_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE emails SET handed_at = COALESCE(claimed_at, created_at) WHERE status = 'sending'")


def downgrade() -> None:
    with op.batch_alter_table("emails") as batch_op:
        batch_op.drop_column("handed_at")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("claimed_by")
