"""staff accounts: several roles each, TOTP enrolment, sessions, wrong-code lock; waits record the proof

``staff_users.role`` (one role) becomes ``roles`` (comma separated). A TOTP secret is kept
encrypted (a Fernet token) with the last time step used; ``answer_failures`` counts wrong codes
for the lock; ``staff_sessions`` holds the encrypted keys of CLI sessions. Waits record how their
answer was proven and whom a manager stood in for.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.add_column(sa.Column("roles", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("totp_secret", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("enrolled_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(), nullable=True))
    op.execute("UPDATE staff_users SET roles = role")
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.alter_column("roles", existing_type=sa.String(200), nullable=False)
        batch_op.drop_column("role")
    op.create_table(
        "answer_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"], name="fk_answer_failures_staff_id_staff_users"),
        sa.PrimaryKeyConstraint("id", name="pk_answer_failures"),
    )
    op.create_index("ix_answer_failures_staff_id", "answer_failures", ["staff_id"])
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"], name="fk_staff_sessions_staff_id_staff_users"),
        sa.PrimaryKeyConstraint("id", name="pk_staff_sessions"),
    )
    op.create_index("ix_staff_sessions_staff_id", "staff_sessions", ["staff_id"])
    with op.batch_alter_table("waits") as batch_op:
        batch_op.add_column(sa.Column("proof", sa.String(20), nullable=True))
        batch_op.add_column(sa.Column("stand_in_for", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("waits") as batch_op:
        batch_op.drop_column("stand_in_for")
        batch_op.drop_column("proof")
    op.drop_table("staff_sessions")
    op.drop_table("answer_failures")
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(30), nullable=True))
    op.execute("UPDATE staff_users SET role = roles")
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.drop_column("locked_until")
        batch_op.drop_column("enrolled_at")
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_secret")
        batch_op.drop_column("roles")
