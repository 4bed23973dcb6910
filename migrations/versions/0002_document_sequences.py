"""one sequence row per document type, so that even the first number is drawn under a row lock

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TYPES = ("deal", "estimate", "order", "receipt", "shipment", "invoice", "payment")


def upgrade() -> None:
    conn = op.get_bind()
    existing = {row[0] for row in conn.execute(sa.text("SELECT doc_type FROM document_sequences"))}
    for doc_type in TYPES:
        if doc_type not in existing:
            conn.execute(sa.text("INSERT INTO document_sequences (doc_type, last_value) VALUES (:t, 0)"),
                         {"t": doc_type})


def downgrade() -> None:
    op.get_bind().execute(sa.text("DELETE FROM document_sequences WHERE last_value = 0"))
