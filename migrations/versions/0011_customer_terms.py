"""customers' own terms: tax ID, payment terms, currency; the customer's purchase-order number

``customers.tax_id``, ``customers.payment_terms_days`` (30 for those made before), ``customers.currency``
(NULL: the settings' default when a deal is converted); ``estimate_revisions.customer_po`` (the PO
the customer gave with their approval) copied to ``sales_orders.customer_po``;
``sales_orders.qa_checks``: what QA checks on the order, fixed when it is made.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("tax_id", sa.String(40), nullable=False, server_default=""))
        batch.add_column(sa.Column("payment_terms_days", sa.Integer(), nullable=False, server_default="30"))
        batch.add_column(sa.Column("currency", sa.String(3), nullable=True))
    with op.batch_alter_table("estimate_revisions") as batch:
        batch.add_column(sa.Column("customer_po", sa.String(60), nullable=False, server_default=""))
    with op.batch_alter_table("sales_orders") as batch:
        batch.add_column(sa.Column("customer_po", sa.String(60), nullable=False, server_default=""))
        batch.add_column(sa.Column("qa_checks", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sales_orders") as batch:
        batch.drop_column("qa_checks")
        batch.drop_column("customer_po")
    with op.batch_alter_table("estimate_revisions") as batch:
        batch.drop_column("customer_po")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("currency")
        batch.drop_column("payment_terms_days")
        batch.drop_column("tax_id")
