"""after the sale: returns (RMA, their own series) with their lines and serial numbers, warranty
claims (WC), and credit notes for a return (less a restocking fee; several per invoice, one per
return)

Revision ID: 0019
Revises: 0018_serials
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018_serials"
branch_labels = None
depends_on = None

RETURN_STATES = "'requested','authorized','refused','received','inspected','closed'"


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("with_credit", sa.Boolean(), nullable=False),
        sa.Column("restocking_fee_pct", sa.Numeric(5, 2), nullable=False),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.Column("flow_run_id", sa.String(40), nullable=True),
        sa.Column("requested_by", sa.String(40), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by", sa.String(40), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=True),
        sa.Column("inspected_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(f"status in ({RETURN_STATES})", name=op.f("ck_returns_status")),
        sa.CheckConstraint("restocking_fee_pct >= 0 and restocking_fee_pct <= 100", name=op.f("ck_returns_fee_pct")),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], name=op.f("fk_returns_deal_id_deals")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_returns_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_returns")),
        sa.UniqueConstraint("number", name=op.f("uq_returns_number")),
    )
    with op.batch_alter_table("returns") as batch:
        batch.create_index(op.f("ix_returns_deal_id"), ["deal_id"], unique=False)
        batch.create_index(op.f("ix_returns_customer_id"), ["customer_id"], unique=False)
        batch.create_index(op.f("ix_returns_status"), ["status"], unique=False)
    op.create_table(
        "return_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("return_id", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("order_line_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("received_qty", sa.Integer(), nullable=False),
        sa.Column("restock_qty", sa.Integer(), nullable=False),
        sa.Column("scrap_qty", sa.Integer(), nullable=False),
        sa.Column("repair_qty", sa.Integer(), nullable=False),
        sa.Column("inspection_note", sa.Text(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_return_lines_quantity_positive")),
        sa.CheckConstraint("received_qty >= 0 and received_qty <= quantity", name=op.f("ck_return_lines_received_in_range")),
        sa.CheckConstraint("restock_qty >= 0 and scrap_qty >= 0 and repair_qty >= 0",
                           name=op.f("ck_return_lines_outcomes_not_negative")),
        sa.ForeignKeyConstraint(["return_id"], ["returns.id"], name=op.f("fk_return_lines_return_id_returns")),
        sa.ForeignKeyConstraint(["order_line_id"], ["sales_order_lines.id"],
                                name=op.f("fk_return_lines_order_line_id_sales_order_lines")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_lines")),
        sa.UniqueConstraint("return_id", "line_no", name=op.f("uq_return_lines_return_id_line_no")),
    )
    with op.batch_alter_table("return_lines") as batch:
        batch.create_index(op.f("ix_return_lines_return_id"), ["return_id"], unique=False)
        batch.create_index(op.f("ix_return_lines_order_line_id"), ["order_line_id"], unique=False)
    op.create_table(
        "return_line_serials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("return_line_id", sa.Integer(), nullable=False),
        sa.Column("serial_id", sa.Integer(), nullable=False),
        sa.Column("received", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.ForeignKeyConstraint(["return_line_id"], ["return_lines.id"],
                                name=op.f("fk_return_line_serials_return_line_id_return_lines")),
        sa.ForeignKeyConstraint(["serial_id"], ["serials.id"], name=op.f("fk_return_line_serials_serial_id_serials")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_line_serials")),
        sa.UniqueConstraint("return_line_id", "serial_id", name=op.f("uq_return_line_serials_return_line_id_serial_id")),
    )
    with op.batch_alter_table("return_line_serials") as batch:
        batch.create_index(op.f("ix_return_line_serials_return_line_id"), ["return_line_id"], unique=False)
        batch.create_index(op.f("ix_return_line_serials_serial_id"), ["serial_id"], unique=False)
    op.create_table(
        "warranty_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("serial_id", sa.Integer(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("issue", sa.Text(), nullable=False),
        sa.Column("warranty_end", sa.Date(), nullable=False),
        sa.Column("diagnosis", sa.Text(), nullable=False),
        sa.Column("resolution", sa.String(20), nullable=False),
        sa.Column("diagnosed_by", sa.String(40), nullable=True),
        sa.Column("return_id", sa.Integer(), nullable=True),
        sa.Column("close_note", sa.Text(), nullable=False),
        sa.Column("closed_by", sa.String(40), nullable=True),
        sa.Column("flow_run_id", sa.String(40), nullable=True),
        sa.Column("opened_by", sa.String(40), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("status in ('open','diagnosed','closed')", name=op.f("ck_warranty_claims_status")),
        sa.CheckConstraint("resolution in ('', 'repair_on_site', 'return')", name=op.f("ck_warranty_claims_resolution")),
        sa.ForeignKeyConstraint(["serial_id"], ["serials.id"], name=op.f("fk_warranty_claims_serial_id_serials")),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], name=op.f("fk_warranty_claims_deal_id_deals")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_warranty_claims_customer_id_customers")),
        sa.ForeignKeyConstraint(["return_id"], ["returns.id"], name=op.f("fk_warranty_claims_return_id_returns")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warranty_claims")),
        sa.UniqueConstraint("number", name=op.f("uq_warranty_claims_number")),
        sa.UniqueConstraint("return_id", name=op.f("uq_warranty_claims_return_id")),
    )
    with op.batch_alter_table("warranty_claims") as batch:
        batch.create_index(op.f("ix_warranty_claims_serial_id"), ["serial_id"], unique=False)
        batch.create_index(op.f("ix_warranty_claims_deal_id"), ["deal_id"], unique=False)
        batch.create_index(op.f("ix_warranty_claims_customer_id"), ["customer_id"], unique=False)
        batch.create_index(op.f("ix_warranty_claims_status"), ["status"], unique=False)
    with op.batch_alter_table("credit_notes") as batch:
        batch.drop_constraint(op.f("uq_credit_notes_invoice_id"), type_="unique")
        batch.create_index(op.f("ix_credit_notes_invoice_id"), ["invoice_id"], unique=False)
        batch.add_column(sa.Column("return_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("restocking_fee", sa.Numeric(14, 2), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lines", sa.JSON(), nullable=True))
        batch.create_foreign_key(op.f("fk_credit_notes_return_id_returns"), "returns", ["return_id"], ["id"])
        batch.create_unique_constraint(op.f("uq_credit_notes_return_id"), ["return_id"])
    conn = op.get_bind()
    for doc_type in ("return", "claim"):
        if conn.execute(sa.text("SELECT count(*) FROM document_sequences WHERE doc_type = :t"),
                        {"t": doc_type}).scalar() == 0:
            conn.execute(sa.text("INSERT INTO document_sequences (doc_type, last_value) VALUES (:t, 0)"),
                         {"t": doc_type})


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.text("DELETE FROM document_sequences WHERE doc_type IN ('return', 'claim')"))
    conn.execute(sa.text("DELETE FROM credit_notes WHERE return_id IS NOT NULL"))
    with op.batch_alter_table("credit_notes") as batch:
        batch.drop_constraint(op.f("uq_credit_notes_return_id"), type_="unique")
        batch.drop_constraint(op.f("fk_credit_notes_return_id_returns"), type_="foreignkey")
        batch.drop_column("lines")
        batch.drop_column("restocking_fee")
        batch.drop_column("return_id")
        batch.drop_index(op.f("ix_credit_notes_invoice_id"))
        batch.create_unique_constraint(op.f("uq_credit_notes_invoice_id"), ["invoice_id"])
    op.drop_table("warranty_claims")
    op.drop_table("return_line_serials")
    op.drop_table("return_lines")
    op.drop_table("returns")
