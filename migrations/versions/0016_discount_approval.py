"""a manager approves a discount over its preparer's limit: ``staff_users.discount_limit_pct``
(None: the role's default, 10 % for everyone but managers, who have none), and on each estimate
revision what was asked over which limit, who decided what and when; a revision sent back by the
manager is ``returned``

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

OLD = "status in ('draft','sent','approved','changes_requested','declined')"
NEW = "status in ('draft','returned','sent','approved','changes_requested','declined')"


def upgrade() -> None:
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(sa.Column("discount_limit_pct", sa.Numeric(5, 2), nullable=True))
    with op.batch_alter_table("estimate_revisions") as batch:
        batch.add_column(sa.Column("discount_asked_pct", sa.Numeric(5, 2), nullable=True))
        batch.add_column(sa.Column("discount_limit_pct", sa.Numeric(5, 2), nullable=True))
        batch.add_column(sa.Column("discount_decision", sa.String(10), nullable=True))
        batch.add_column(sa.Column("discount_decided_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("discount_decided_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("discount_reason", sa.Text(), nullable=False, server_default=""))
        batch.create_foreign_key("fk_estimate_revisions_discount_decided_by_id_staff_users", "staff_users",
                                 ["discount_decided_by_id"], ["id"])
        batch.drop_constraint(op.f("ck_estimate_revisions_status"), type_="check")
        batch.create_check_constraint("status", NEW)


def downgrade() -> None:
    with op.batch_alter_table("estimate_revisions") as batch:
        batch.drop_constraint(op.f("ck_estimate_revisions_status"), type_="check")
        batch.create_check_constraint("status", OLD)
        batch.drop_constraint("fk_estimate_revisions_discount_decided_by_id_staff_users", type_="foreignkey")
        for name in ("discount_reason", "discount_decided_at", "discount_decided_by_id", "discount_decision",
                     "discount_limit_pct", "discount_asked_pct"):
            batch.drop_column(name)
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("discount_limit_pct")
