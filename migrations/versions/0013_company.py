"""the company that sells: one row (name, address, phone, email, tax ID, bank, currency, mail
sender, a new customer's payment terms), made by ``dealflow init`` and changed by
``dealflow company edit``.

An installation made before keeps the letterhead it printed: where the database already has
staff, the row is made from the DEALFLOW_COMPANY_* settings it was configured with (Glocial's
where none was set). A new database gets no row: ``init`` asks.

Revision ID: 0013
Revises: 0012
"""

import os
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    company = op.create_table(
        "company",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(150), nullable=False),
        sa.Column("address", sa.Text(), nullable=False, server_default=""),
        sa.Column("phone", sa.String(60), nullable=False, server_default=""),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("tax_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("bank", sa.String(300), nullable=False, server_default=""),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("mail_from", sa.String(200), nullable=False),
        sa.Column("payment_terms_days", sa.Integer(), nullable=False, server_default="30"),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name="one_company"),
        sa.CheckConstraint("payment_terms_days BETWEEN 0 AND 365", name="company_terms"),
    )
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM staff_users")).scalar():
        env = os.environ
        sender = env.get("DEALFLOW_MAIL_FROM", "sales@glocial.example")
        op.bulk_insert(company, [{
            "id": 1, "name": env.get("DEALFLOW_COMPANY_NAME", "Glocial Machineries"),
            "address": env.get("DEALFLOW_COMPANY_ADDRESS", "12 Foundry Road, Riverside Industrial Park"),
            "phone": env.get("DEALFLOW_COMPANY_PHONE", "+1 555 0100"), "email": sender,
            "tax_id": env.get("DEALFLOW_COMPANY_TAX_ID", "").strip(),
            "bank": env.get("DEALFLOW_COMPANY_BANK", "IBAN XX00 0000 0000 0000 0000 00"),
            "currency": (env.get("DEALFLOW_CURRENCY") or "").strip().upper() or "USD", "mail_from": sender,
            "payment_terms_days": 30, "updated_at": datetime.now(UTC).replace(tzinfo=None)}])


def downgrade() -> None:
    op.drop_table("company")
