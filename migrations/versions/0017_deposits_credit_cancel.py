"""money before the machine leaves: deposits (a customer's and the company's terms, fixed on each
order; a deposit invoice per order, its own series DEP, deducted on the final invoice), credit
limits and credit holds, cancelling an order before its first shipment with a credit note (its
own series CN); a deal, an order and a wait can be cancelled, an invoice credited

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

STATUS = {  # table: (before, after)
    "deals": ("'open','won','lost'", "'open','won','lost','cancelled'"),
    "waits": ("'open','answered','refused'", "'open','answered','refused','cancelled'"),
    "sales_orders": ("'awaiting_qa','released','partially_shipped','shipped'",
                     "'awaiting_qa','released','partially_shipped','shipped','cancelled'"),
    "invoices": ("'open','partially_paid','paid'", "'open','partially_paid','paid','credited'"),
}


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("deposit_pct", sa.Numeric(5, 2), nullable=True))
        batch.add_column(sa.Column("deposit_before", sa.String(10), nullable=True))
        batch.add_column(sa.Column("credit_limit", sa.Numeric(14, 2), nullable=True))
        batch.create_check_constraint("deposit_pct", "deposit_pct BETWEEN 0 AND 100")
        batch.create_check_constraint("deposit_before", "deposit_before in ('shipping','release')")
        batch.create_check_constraint("credit_limit", "credit_limit >= 0")
    with op.batch_alter_table("company") as batch:
        batch.add_column(sa.Column("deposit_pct", sa.Numeric(5, 2), nullable=False, server_default="0"))
        batch.add_column(sa.Column("deposit_before", sa.String(10), nullable=False, server_default="shipping"))
        batch.add_column(sa.Column("credit_overdue_days", sa.Integer(), nullable=False, server_default="30"))
    with op.batch_alter_table("estimate_revisions") as batch:  # the deposit terms an estimate offered when sent
        batch.add_column(sa.Column("deposit_pct", sa.Numeric(5, 2), nullable=True))
        batch.add_column(sa.Column("deposit_before", sa.String(10), nullable=True))
    with op.batch_alter_table("sales_orders") as batch:
        batch.add_column(sa.Column("deposit_pct", sa.Numeric(5, 2), nullable=False, server_default="0"))
        batch.add_column(sa.Column("deposit_before", sa.String(10), nullable=False, server_default="shipping"))
        batch.add_column(sa.Column("cancel_reason", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("kind", sa.String(10), nullable=False, server_default="final"))
        batch.drop_constraint(op.f("uq_invoices_order_id"), type_="unique")
        batch.drop_constraint(op.f("uq_invoices_deal_id"), type_="unique")
        batch.create_unique_constraint(op.f("uq_invoices_deal_id_kind"), ["deal_id", "kind"])
        batch.create_index(op.f("ix_invoices_order_id"), ["order_id"], unique=False)
        batch.create_index(op.f("ix_invoices_deal_id"), ["deal_id"], unique=False)
        batch.create_check_constraint("kind", "kind in ('deposit','final')")
    with op.batch_alter_table("invoice_lines") as batch:
        batch.alter_column("order_line_id", existing_type=sa.Integer(), nullable=True)
    for table, (_, after) in STATUS.items():
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
            batch.create_check_constraint("status", f"status in ({after})")
    op.create_table(
        "credit_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("exposure", sa.Numeric(14, 2), nullable=False),
        sa.Column("order_total", sa.Numeric(14, 2), nullable=False),
        sa.Column("credit_limit", sa.Numeric(14, 2), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("deposit_pct", sa.Numeric(5, 2), nullable=True),
        sa.Column("deposit_before", sa.String(10), nullable=True),
        sa.CheckConstraint("status in ('open','released','deposit','rejected')", name=op.f("ck_credit_holds_status")),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], name=op.f("fk_credit_holds_deal_id_deals")),
        sa.ForeignKeyConstraint(["revision_id"], ["estimate_revisions.id"],
                                name=op.f("fk_credit_holds_revision_id_estimate_revisions")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_credit_holds_customer_id_customers")),
        sa.ForeignKeyConstraint(["decided_by_id"], ["staff_users.id"],
                                name=op.f("fk_credit_holds_decided_by_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_holds")),
        sa.UniqueConstraint("revision_id", name=op.f("uq_credit_holds_revision_id")),
    )
    with op.batch_alter_table("credit_holds") as batch:
        batch.create_index(op.f("ix_credit_holds_deal_id"), ["deal_id"], unique=False)
        batch.create_index(op.f("ix_credit_holds_customer_id"), ["customer_id"], unique=False)
        batch.create_index(op.f("ix_credit_holds_status"), ["status"], unique=False)
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("settlement", sa.String(10), nullable=False),
        sa.Column("refunded", sa.Numeric(14, 2), nullable=False),
        sa.Column("kept_as_credit", sa.Numeric(14, 2), nullable=False),
        sa.Column("refund_method", sa.String(20), nullable=False),
        sa.Column("refund_number", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("issued_by_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("settlement in ('refund','credit','none')", name=op.f("ck_credit_notes_settlement")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_credit_notes_amount_positive")),
        sa.CheckConstraint("refunded >= 0 and kept_as_credit >= 0", name=op.f("ck_credit_notes_settled_not_negative")),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], name=op.f("fk_credit_notes_deal_id_deals")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_credit_notes_customer_id_customers")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_credit_notes_invoice_id_invoices")),
        sa.ForeignKeyConstraint(["issued_by_id"], ["staff_users.id"],
                                name=op.f("fk_credit_notes_issued_by_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
        sa.UniqueConstraint("number", name=op.f("uq_credit_notes_number")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_credit_notes_invoice_id")),
        sa.UniqueConstraint("refund_number", name=op.f("uq_credit_notes_refund_number")),
    )
    with op.batch_alter_table("credit_notes") as batch:
        batch.create_index(op.f("ix_credit_notes_deal_id"), ["deal_id"], unique=False)
        batch.create_index(op.f("ix_credit_notes_customer_id"), ["customer_id"], unique=False)
    conn = op.get_bind()
    for doc_type in ("deposit", "credit_note", "refund"):
        if conn.execute(sa.text("SELECT count(*) FROM document_sequences WHERE doc_type = :t"),
                        {"t": doc_type}).scalar() == 0:
            conn.execute(sa.text("INSERT INTO document_sequences (doc_type, last_value) VALUES (:t, 0)"),
                         {"t": doc_type})


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.text("DELETE FROM document_sequences WHERE doc_type IN ('deposit', 'credit_note', 'refund')"))
    op.drop_table("credit_notes")
    op.drop_table("credit_holds")
    for table, (before, _) in STATUS.items():
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
            batch.create_check_constraint("status", f"status in ({before})")
    with op.batch_alter_table("invoice_lines") as batch:
        batch.alter_column("order_line_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("invoices") as batch:
        batch.drop_constraint(op.f("ck_invoices_kind"), type_="check")
        batch.drop_index(op.f("ix_invoices_deal_id"))
        batch.drop_index(op.f("ix_invoices_order_id"))
        batch.drop_constraint(op.f("uq_invoices_deal_id_kind"), type_="unique")
        batch.create_unique_constraint(op.f("uq_invoices_deal_id"), ["deal_id"])
        batch.create_unique_constraint(op.f("uq_invoices_order_id"), ["order_id"])
        batch.drop_column("kind")
    with op.batch_alter_table("sales_orders") as batch:
        for name in ("cancel_reason", "deposit_before", "deposit_pct"):
            batch.drop_column(name)
    with op.batch_alter_table("estimate_revisions") as batch:
        for name in ("deposit_before", "deposit_pct"):
            batch.drop_column(name)
    with op.batch_alter_table("company") as batch:
        for name in ("credit_overdue_days", "deposit_before", "deposit_pct"):
            batch.drop_column(name)
    with op.batch_alter_table("customers") as batch:
        batch.drop_constraint(op.f("ck_customers_credit_limit"), type_="check")
        batch.drop_constraint(op.f("ck_customers_deposit_before"), type_="check")
        batch.drop_constraint(op.f("ck_customers_deposit_pct"), type_="check")
        for name in ("credit_limit", "deposit_before", "deposit_pct"):
            batch.drop_column(name)
