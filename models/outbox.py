"""Documents and the email outbox.

Both are written in the transaction of the business change that causes them, as a template
name plus the plain data it renders (a snapshot), so what a customer was sent can be rendered
again byte for byte. ``dedupe_key`` makes "the estimate email for EST-0003-R2" exist once.

Email states: pending -> sending -> sent | failed (failed may be retried: -> pending).

``sending`` is a sender's claim, and it has two phases. Until the sender is about to send the
line that ends the message in SMTP's ``DATA`` (``handed_at`` empty), the server has nothing: if
the claiming process is gone, or its lease ran out, the claim is released back to ``pending``
(``release_dead_claims``) and the mail goes out later, once. From ``handed_at`` on, the message
may have reached the server: a sender that dies then leaves the row ``sending`` with its fate
unknown, never sent again by itself (at most once), for a person to check (``dealflow outbox``)
and settle (``confirm_arrived``, or ``requeue`` with force).
Every transition of a claimed row names its claimant, so a sender whose claim was released
(a lease that ran out) can neither hand the message over nor mark the row afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, utcnow
from .errors import InvalidTransition
from .states import EmailStatus


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
        CheckConstraint(EmailStatus.check(), name="status"),
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
    status: Mapped[str] = mapped_column(String(10), default=EmailStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str] = mapped_column(String(120), default="")  # host:pid:start:token of the sending pass
    lease_until: Mapped[datetime | None]  # a claim not handed over by then is released
    handed_at: Mapped[datetime | None]  # just before the message's last line: from here its fate may be unknown

    @property
    def fate_unknown(self) -> bool:
        """Claimed and handed to SMTP, never marked: it may or may not have arrived."""
        return self.status == EmailStatus.SENDING and self.handed_at is not None


# a row handed over longer ago than this, and not marked, has a sender that stopped mid-way
UNKNOWN_AFTER = timedelta(minutes=1)


def requeue(session: Session, mail: Email, *, force: bool, is_alive: Callable[[str], bool],
            now: datetime | None = None) -> None:
    """A person asks to send an email again: a failed one; with ``force`` also one whose fate is
    unknown (the customer may receive it twice) or whose sender is gone. Never one that a live
    sender is handing over right now. One conditional statement: if a sender changed the row
    since it was read (marked it sent a moment ago), nothing changes and the person is told."""
    now = now or utcnow()
    allowed = mail.status in (EmailStatus.FAILED, EmailStatus.PENDING) or (force and mail.status == EmailStatus.SENDING and (
        not is_alive(mail.claimed_by)
        or (mail.handed_at is not None and mail.handed_at < now - UNKNOWN_AFTER)))
    if not allowed:
        why = "retry it" + (" (use --force)" if mail.status == EmailStatus.SENDING and not force else "")
        if force and mail.status == EmailStatus.SENDING:
            why = "retry it: its sender is handing it over right now" + (
                f"; if it never arrives, try again after {mail.handed_at + UNKNOWN_AFTER:%H:%M:%S} UTC"
                if mail.handed_at is not None else "")
        raise InvalidTransition(f"email {mail.id}", mail.status, why)
    seen = (Email.status == mail.status, Email.claimed_by == mail.claimed_by,
            Email.handed_at.is_(None) if mail.handed_at is None else Email.handed_at == mail.handed_at)
    done = session.execute(update(Email).where(Email.id == mail.id, *seen).values(
        status=EmailStatus.PENDING, claimed_by="", lease_until=None, handed_at=None)
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise InvalidTransition(f"email {mail.id}", "changed a moment ago", "retry it; look again with `dealflow outbox`")
    session.expire(mail)


def confirm_arrived(mail: Email, message_id: str) -> None:
    """A person checked that an email of unknown fate did arrive: it is sent, and stays so."""
    if not mail.fate_unknown:
        state = "sending (not handed over yet)" if mail.status == EmailStatus.SENDING else mail.status
        raise InvalidTransition(f"email {mail.id}", state, "confirm it arrived")
    mail.status, mail.message_id, mail.sent_at, mail.lease_until = EmailStatus.SENT, message_id, utcnow(), None
    mail.last_error = ""


def claim_email(session: Session, email_id: int, owner: str, lease: timedelta) -> bool:
    """Take a pending email for sending (one statement: of two senders exactly one wins).
    The caller commits before it talks to SMTP."""
    now = utcnow()
    done = session.execute(update(Email).where(Email.id == email_id, Email.status == EmailStatus.PENDING).values(
        status=EmailStatus.SENDING, claimed_by=owner, claimed_at=now, lease_until=now + lease, handed_at=None,
        attempts=Email.attempts + 1).execution_options(synchronize_session=False))
    return done.rowcount == 1


def begin_handover(session: Session, email_id: int, owner: str) -> bool:
    """Record, just before the line that ends the message in SMTP's DATA, that it is about to be
    handed over. False if the claim is no longer this sender's (released after its lease ran
    out): then it must not send that line."""
    done = session.execute(update(Email).where(
        Email.id == email_id, Email.status == EmailStatus.SENDING, Email.claimed_by == owner, Email.handed_at.is_(None),
        Email.lease_until >= utcnow()).values(handed_at=utcnow()).execution_options(synchronize_session=False))
    return done.rowcount == 1


def _finish(session: Session, email_id: int, owner: str, **values: Any) -> bool:
    done = session.execute(update(Email).where(Email.id == email_id, Email.status == EmailStatus.SENDING,
                                               Email.claimed_by == owner).values(**values)
                           .execution_options(synchronize_session=False))
    return done.rowcount == 1


def mark_sent(session: Session, email_id: int, owner: str, message_id: str) -> bool:
    return _finish(session, email_id, owner, status=EmailStatus.SENT, message_id=message_id, sent_at=utcnow(),
                   last_error="", lease_until=None)


def release_claim(session: Session, email_id: int, owner: str, error: str) -> bool:
    """The server could not take it now (and had not taken it): back in the queue."""
    return _finish(session, email_id, owner, status=EmailStatus.PENDING, last_error=error[:2000], claimed_by="",
                   lease_until=None, handed_at=None)


def mark_failed(session: Session, email_id: int, owner: str, error: str) -> bool:
    return _finish(session, email_id, owner, status=EmailStatus.FAILED, last_error=error[:2000], lease_until=None)


def note_fate_unknown(session: Session, email_id: int, owner: str, error: str) -> bool:
    """The connection broke as the message was handed over: it stays 'sending' (fate unknown)."""
    return _finish(session, email_id, owner, last_error=error[:2000], lease_until=None)


def dead_claims(session: Session, is_alive: Callable[[str], bool], deal_id: int | None = None) -> list[Email]:
    """Claims that were never handed over and whose sender is gone (or whose lease ran out)."""
    query = select(Email).where(Email.status == EmailStatus.SENDING, Email.handed_at.is_(None))
    if deal_id is not None:
        query = query.where(Email.deal_id == deal_id)
    now = utcnow()
    return [m for m in session.scalars(query)
            if m.lease_until is None or m.lease_until < now or not is_alive(m.claimed_by)]


def release_dead_claims(session: Session, is_alive: Callable[[str], bool], deal_id: int | None = None) -> list[int]:
    """Put back to pending every claim whose sender died before handing it over: the server has
    nothing of it, so sending it again sends it once. The caller commits."""
    released = []
    for mail in dead_claims(session, is_alive, deal_id):
        done = session.execute(update(Email).where(
            Email.id == mail.id, Email.status == EmailStatus.SENDING, Email.handed_at.is_(None),
            Email.claimed_by == mail.claimed_by).values(
            status=EmailStatus.PENDING, claimed_by="", lease_until=None,
            last_error=f"its sender {mail.claimed_by or '?'} stopped before handing it to the mail server; "
                       f"released to be sent again")
            .execution_options(synchronize_session=False))
        if done.rowcount == 1:
            released.append(mail.id)
    return released


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


def outbox_health(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """What operations look at: how much mail waits and since when, and what needs a person."""
    from sqlalchemy import func

    now = now or utcnow()
    oldest = session.execute(select(Email.id, Email.created_at).where(Email.status == EmailStatus.PENDING)
                             .order_by(Email.created_at, Email.id).limit(1)).first()
    count = lambda *cond: session.scalar(select(func.count()).select_from(Email).where(*cond))  # noqa: E731
    return {
        "pending": count(Email.status == EmailStatus.PENDING),
        "oldest_pending_id": oldest.id if oldest else None,
        "oldest_pending_since": oldest.created_at if oldest else None,
        "oldest_pending_seconds": int((now - oldest.created_at).total_seconds()) if oldest else 0,
        "fate_unknown": count(Email.status == EmailStatus.SENDING, Email.handed_at.is_not(None),
                              Email.handed_at < now - UNKNOWN_AFTER),
        "failed": count(Email.status == EmailStatus.FAILED),
    }


def waited(seconds: int) -> str:
    """3 min, 2 h 05 min, 3 d 4 h: how long something has waited, for people."""
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
