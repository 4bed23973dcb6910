"""the customer's own answers from the portal: what they typed, saw and answered from

One row per revision answered online (the first answer wins), with the name typed as a
signature, the purchase-order number, the change request or reason, the IP address, the user
agent, the SHA-256 of the PDF shown, the time and the signed answer's nonce (used once).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("wait_key", sa.String(60), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("po_number", sa.String(60), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=False),
        sa.Column("pdf_sha256", sa.String(64), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("nonce", sa.String(40), nullable=False),
        sa.CheckConstraint("action in ('accept','request_changes','decline')", name=op.f("ck_customer_answers_action")),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], name="fk_customer_answers_deal_id_deals"),
        sa.ForeignKeyConstraint(["revision_id"], ["estimate_revisions.id"],
                                name="fk_customer_answers_revision_id_estimate_revisions"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_customer_answers_contact_id_contacts"),
        sa.PrimaryKeyConstraint("id", name="pk_customer_answers"),
        sa.UniqueConstraint("revision_id", name="uq_customer_answers_revision_id"),
        sa.UniqueConstraint("nonce", name="uq_customer_answers_nonce"),
    )
    op.create_index("ix_customer_answers_deal_id", "customer_answers", ["deal_id"])


def downgrade() -> None:
    op.drop_table("customer_answers")
