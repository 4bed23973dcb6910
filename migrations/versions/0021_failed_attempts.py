"""failed attempts counted per address in the database (the portal's links that do not verify,
the gateway's failed sign-ins), so that every replica of a door counts the same ones

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failed_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(12), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("scope in ('portal','gateway')", name=op.f("ck_failed_attempts_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failed_attempts")),
    )
    with op.batch_alter_table("failed_attempts") as batch:
        batch.create_index("ix_failed_attempts_scope_key_at", ["scope", "key", "at"], unique=False)
        batch.create_index("ix_failed_attempts_scope_at", ["scope", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("failed_attempts") as batch:
        batch.drop_index("ix_failed_attempts_scope_at")
        batch.drop_index("ix_failed_attempts_scope_key_at")
    op.drop_table("failed_attempts")
