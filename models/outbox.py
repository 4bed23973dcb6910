"""Documents and the email outbox.

Both are written in the transaction of the business change that causes them, as a template
name plus the plain data it renders (a snapshot), so what a customer was sent can be rendered
again byte for byte. ``dedupe_key`` makes "the estimate email for EST-0003-R2" exist once.

Email states: pending -> sending -> sent | failed (failed may be retried: -> pending).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, utcnow
from .errors import InvalidTransition


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("kind", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    number: Mapped[str] = mapped_column(String(30))
    template: Mapped[str] = mapped_column(String(80))
    context: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def filename(self) -> str:
        return f"{self.number}.html"

    @property
    def pdf_filename(self) -> str:
        return f"{self.number}.pdf"


class Email(Base):
    __tablename__ = "emails"
    __table_args__ = (
        CheckConstraint("status in ('pending','sending','sent','failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    to_addr: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300))
    template: Mapped[str] = mapped_column(String(80))
    context: Mapped[dict[str, Any]]
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]

    def claim(self) -> None:
        """Taken by a sender: from now on no one else sends it."""
        if self.status != "pending":
            raise InvalidTransition(f"email {self.id}", self.status, "send it")
        self.status = "sending"
        self.attempts += 1
        self.claimed_at = utcnow()

    def mark_sent(self, message_id: str) -> None:
        if self.status != "sending":
            raise InvalidTransition(f"email {self.id}", self.status, "mark it sent")
        self.status = "sent"
        self.message_id = message_id
        self.sent_at = utcnow()
        self.last_error = ""

    def release(self, error: str) -> None:
        """The server could not take it now: back in the queue for a later attempt."""
        self.status = "pending"
        self.last_error = error[:2000]

    def mark_failed(self, error: str) -> None:
        self.status = "failed"
        self.last_error = error[:2000]

    def requeue(self, force: bool = False) -> None:
        """A person asks to send a failed email again; with ``force`` also one stuck in 'sending'
        (whose fate is unknown: the customer may receive it twice)."""
        if self.status in ("failed", "pending") or (force and self.status == "sending"):
            self.status = "pending"
            return
        raise InvalidTransition(f"email {self.id}", self.status,
                                "retry it" + ("" if self.status != "sending" else " (use --force)"))


def add_document(session: Session, deal_id: int, kind: str, number: str, template: str,
                 context: dict[str, Any]) -> Document:
    existing = session.scalars(
        select(Document).where(Document.kind == kind, Document.number == number)).one_or_none()
    if existing is not None:
        return existing
    doc = Document(deal_id=deal_id, kind=kind, number=number, template=template, context=context)
    session.add(doc)
    session.flush()
    return doc


def queue_email(session: Session, *, deal_id: int | None, dedupe_key: str, kind: str, to_addr: str,
                subject: str, template: str, context: dict[str, Any],
                document: Document | None = None) -> Email:
    existing = session.scalars(select(Email).where(Email.dedupe_key == dedupe_key)).one_or_none()
    if existing is not None:
        return existing
    mail = Email(deal_id=deal_id, dedupe_key=dedupe_key, kind=kind, to_addr=to_addr,
                 subject=subject, template=template, context=context,
                 document_id=document.id if document else None)
    session.add(mail)
    session.flush()
    return mail
