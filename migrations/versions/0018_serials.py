"""serial numbers: a product can be serialized, with its warranty in months; each unit's serial
number (unique per product), where it is (in stock, with a customer, back, scrapped, in repair),
which shipment line it left in and its history

Revision ID: 0018_serials
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_serials"
down_revision = "0017"
branch_labels = None
depends_on = None

STATUS = "status in ('in_stock','shipped','returned','scrapped','in_repair')"


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("serialized", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("warranty_months", sa.Integer(), nullable=False, server_default="0"))
        batch.create_check_constraint("warranty_months", "warranty_months >= 0 and warranty_months <= 120")
    op.create_table(
        "serials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(60), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("received_ref", sa.String(40), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("shipment_line_id", sa.Integer(), nullable=True),
        sa.Column("shipped_on", sa.Date(), nullable=True),
        sa.Column("warranty_end", sa.Date(), nullable=True),
        sa.CheckConstraint(STATUS, name=op.f("ck_serials_status")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_serials_product_id_products")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_serials_customer_id_customers")),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], name=op.f("fk_serials_deal_id_deals")),
        sa.ForeignKeyConstraint(["shipment_line_id"], ["shipment_lines.id"],
                                name=op.f("fk_serials_shipment_line_id_shipment_lines")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_serials")),
        sa.UniqueConstraint("product_id", "serial", name=op.f("uq_serials_product_id_serial")),
    )
    with op.batch_alter_table("serials") as batch:
        for column in ("product_id", "status", "customer_id", "deal_id", "warranty_end"):
            batch.create_index(op.f(f"ix_serials_{column}"), [column], unique=False)
    op.create_table(
        "shipment_serials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shipment_line_id", sa.Integer(), nullable=False),
        sa.Column("serial_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["shipment_line_id"], ["shipment_lines.id"],
                                name=op.f("fk_shipment_serials_shipment_line_id_shipment_lines")),
        sa.ForeignKeyConstraint(["serial_id"], ["serials.id"], name=op.f("fk_shipment_serials_serial_id_serials")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment_serials")),
        sa.UniqueConstraint("shipment_line_id", "serial_id", name=op.f("uq_shipment_serials_shipment_line_id_serial_id")),
    )
    with op.batch_alter_table("shipment_serials") as batch:
        batch.create_index(op.f("ix_shipment_serials_shipment_line_id"), ["shipment_line_id"], unique=False)
        batch.create_index(op.f("ix_shipment_serials_serial_id"), ["serial_id"], unique=False)
    op.create_table(
        "serial_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("reference", sa.String(40), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("by", sa.String(40), nullable=False),
        sa.ForeignKeyConstraint(["serial_id"], ["serials.id"], name=op.f("fk_serial_events_serial_id_serials")),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], name=op.f("fk_serial_events_deal_id_deals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_serial_events")),
    )
    with op.batch_alter_table("serial_events") as batch:
        batch.create_index(op.f("ix_serial_events_serial_id"), ["serial_id"], unique=False)


def downgrade() -> None:
    op.drop_table("serial_events")
    op.drop_table("shipment_serials")
    op.drop_table("serials")
    with op.batch_alter_table("products") as batch:
        batch.drop_constraint(op.f("ck_products_warranty_months"), type_="check")
        batch.drop_column("warranty_months")
        batch.drop_column("serialized")
