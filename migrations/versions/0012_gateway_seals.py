"""the gateway: seals of answers (good once), locks that grow

``answer_seals``: the nonce of every gateway seal the flow accepted, so that a sealed answer is
good once; ``staff_users.locks_in_row``: how many locks in a row a person has had (each next one
lasts twice as long, up to a day).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answer_seals",
        sa.Column("nonce", sa.String(40), primary_key=True),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff_users.id"), nullable=False, index=True),
        sa.Column("wait_key", sa.String(80), nullable=False),
        sa.Column("sealed_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(sa.Column("locks_in_row", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("locks_in_row")
    op.drop_table("answer_seals")
