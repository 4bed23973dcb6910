"""Gap-free document numbers per type, drawn in the transaction that makes a document official."""

from __future__ import annotations

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base

PREFIXES = {
    "deal": "DEAL",
    "estimate": "EST",
    "order": "SO",
    "receipt": "RCPT",
    "shipment": "SHP",
    "invoice": "INV",
    "payment": "PAY",
    "deposit": "DEP",  # deposit invoices: their own gap-free series
    "credit_note": "CN",
    "refund": "RFD",  # refund payments (a credit note's money paid back)
    "return": "RMA",  # returns (return merchandise authorizations)
    "claim": "WC",  # warranty claims
}


class DocumentSequence(Base):
    __tablename__ = "document_sequences"

    doc_type: Mapped[str] = mapped_column(String(20), primary_key=True)
    last_value: Mapped[int] = mapped_column(default=0)


def next_number(session: Session, doc_type: str) -> str:
    """The next number of a type. The row lock makes two transactions queue, and a rollback
    gives the number back, so numbers have no gaps."""
    prefix = PREFIXES[doc_type]
    seq = session.scalars(
        select(DocumentSequence).where(DocumentSequence.doc_type == doc_type).with_for_update()
        .execution_options(populate_existing=True)  # the value the lock protects, not a cached one
    ).one_or_none()
    if seq is None:  # the migration creates every type's row; this is for a hand-made schema
        seq = DocumentSequence(doc_type=doc_type, last_value=0)
        session.add(seq)
    seq.last_value += 1
    session.flush()
    return f"{prefix}-{seq.last_value:04d}"
