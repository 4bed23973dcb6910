"""money in the customer's currency: price lists and dated exchange rates

``product_prices``: a product's price in a currency other than the company's; ``exchange_rates``:
units of a currency per unit of the company's, from a date; ``estimate_revisions.fx_rate``,
``fx_on``, ``fx_converted``: the rate of the day a revision was drafted, fixed with its prices.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "product_prices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("product_id", sa.Integer(), sa.ForeignKey("products.id"), nullable=False, index=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("unit_price", sa.Numeric(14, 2), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("product_id", "currency"),
        sa.CheckConstraint("unit_price >= 0", name="list_price_not_negative"),
    )
    op.create_table(
        "exchange_rates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False, index=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("rate", sa.Numeric(18, 6), nullable=False),
        sa.Column("set_by", sa.String(40), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("currency", "valid_from"),
        sa.CheckConstraint("rate > 0", name="rate_positive"),
    )
    with op.batch_alter_table("estimate_revisions") as batch:
        batch.add_column(sa.Column("fx_rate", sa.Numeric(18, 6), nullable=True))
        batch.add_column(sa.Column("fx_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("fx_converted", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("estimate_revisions") as batch:
        batch.drop_column("fx_converted")
        batch.drop_column("fx_on")
        batch.drop_column("fx_rate")
    op.drop_table("exchange_rates")
    op.drop_table("product_prices")
