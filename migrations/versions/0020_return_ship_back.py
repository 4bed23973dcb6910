"""a return's repaired units shipped back to their customer: how many of each line went back, and
the carrier, tracking number, day and person of the shipment back

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("returns") as batch:
        batch.add_column(sa.Column("back_carrier", sa.String(80), nullable=False, server_default=""))
        batch.add_column(sa.Column("back_tracking_number", sa.String(80), nullable=False, server_default=""))
        batch.add_column(sa.Column("shipped_back_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("shipped_back_by", sa.String(40), nullable=True))
    with op.batch_alter_table("return_lines") as batch:
        batch.add_column(sa.Column("shipped_back_qty", sa.Integer(), nullable=False, server_default="0"))
        batch.create_check_constraint(op.f("ck_return_lines_shipped_back_in_range"),
                                      "shipped_back_qty >= 0 and shipped_back_qty <= repair_qty")


def downgrade() -> None:
    with op.batch_alter_table("return_lines") as batch:
        batch.drop_constraint(op.f("ck_return_lines_shipped_back_in_range"), type_="check")
        batch.drop_column("shipped_back_qty")
    with op.batch_alter_table("returns") as batch:
        batch.drop_column("shipped_back_by")
        batch.drop_column("shipped_back_on")
        batch.drop_column("back_tracking_number")
        batch.drop_column("back_carrier")
