"""The mail outbox as a person sees it and acts on it: what waits, is sent, failed or of unknown
fate; sending now; confirming that a mail of unknown fate arrived; sending a failed one again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from models import DomainError, Email, NotFound, audit, utcnow
from models.deal import deal_by_number
from models.outbox import confirm_arrived, outbox_health, requeue, waited
from models.staff import staff_member
from models.states import EmailStatus
from services.config import load_settings, with_smtp_password

from .uow import unit_of_work


@dataclass(frozen=True)
class Outbox:
    mail: list[dict[str, Any]]  # each email: id, kind, to, subject, status, attempts, waiting, sent_at, …
    health: dict[str, Any]  # models.outbox.outbox_health: pending, the oldest, fate unknown, failed


def list_mail(status: str | None = None, deal_number: str | None = None) -> Outbox:
    """Every email, oldest first (``status``, ``deal_number``: only those); one whose sender
    stopped while the mail server was taking it shows as "sending (fate unknown)"."""
    from services.mailer import stuck

    now = utcnow()
    with unit_of_work() as s:
        q = select(Email).order_by(Email.id)
        if status:
            q = q.where(Email.status == status)
        if deal_number:
            q = q.where(Email.deal_id == deal_by_number(s, deal_number).id)
        stuck_ids = {m.id for m in stuck(s)}
        rows = [{"id": m.id, "kind": m.kind, "to": m.to_addr, "subject": m.subject,
                 "status": "sending (fate unknown)" if m.id in stuck_ids else m.status, "attempts": m.attempts,
                 "waiting": waited(int((now - m.created_at).total_seconds())) if m.status == EmailStatus.PENDING else None,
                 "sent_at": m.sent_at.isoformat(timespec="seconds") if m.sent_at else None,
                 "message_id": m.message_id, "error": m.last_error or None} for m in s.scalars(q)]
        return Outbox(rows, outbox_health(s, now))


def send_pending() -> dict[str, Any]:
    """Send all pending mail now, after releasing the claims of senders that stopped before
    handing their message over. ``error``: why the mail server took no more (the rest stays
    pending), or None."""
    from services.mailer import TransientMailError, deliver

    settings = with_smtp_password(load_settings())
    with unit_of_work() as s:
        error = None
        try:
            sent = deliver(s, settings=settings)
        except TransientMailError as exc:
            sent, error = exc.sent, str(exc)
        health = outbox_health(s)
    return {"sent": sent, "pending": health["pending"], "oldest_pending_seconds": health["oldest_pending_seconds"],
            "error": error}


def send_all_pending() -> dict[str, Any]:
    """What the scheduled outbox run does: every pending email, once. A mail server that cannot
    take mail now is reported (``error``), not raised: the next run tries again, and the rows stay
    pending until then. With the outbox's health after it (``models.outbox.outbox_health``; its
    ``oldest_pending_since`` as ISO text)."""
    from services.mailer import TransientMailError, deliver

    with unit_of_work() as s:
        error = None
        try:
            sent = deliver(s, settings=with_smtp_password(load_settings()))
        except TransientMailError as exc:
            sent, error = exc.sent, str(exc)
        health = outbox_health(s)
        return {"sent": sent, "error": error, **health,
                "oldest_pending_since": health["oldest_pending_since"].isoformat(timespec="seconds")
                if health["oldest_pending_since"] else None}


def confirm_arrival(email_id: int, by: str) -> dict[str, Any]:
    """``by`` (a staff handle) checked that an email of unknown fate did arrive: it is sent."""
    from services.company import sender as company_sender
    from services.mailer import message_id

    with unit_of_work() as s:
        person = staff_member(s, by, "by")
        mail = s.get(Email, email_id)
        if mail is None:
            raise NotFound("email", email_id)
        confirm_arrived(mail, message_id(mail, company_sender()[1]))
        audit.record(s, person.handle, "email.confirmed_arrived", deal_id=mail.deal_id, subject=f"email {mail.id}",
                     to=mail.to_addr, kind=mail.kind)
        return {"id": email_id, "status": mail.status, "message_id": mail.message_id}


def retry(email_id: int, force: bool = False) -> dict[str, Any]:
    """Send a failed (``force``: also a stuck) email again, now; its status after the attempt."""
    from services.mailer import TransientMailError, deliver, sender_alive

    settings = with_smtp_password(load_settings())  # before anything changes: a missing secret stops here
    with unit_of_work() as s:
        mail = s.get(Email, email_id)
        if mail is None:
            raise NotFound("email", email_id)
        requeue(s, mail, force=force, is_alive=sender_alive)
        s.commit()  # pending again before the sender claims it (in transactions of its own)
        try:
            deliver(s, email_ids=[email_id], settings=settings)
        except TransientMailError as exc:
            raise DomainError(f"smtp: {exc}; it stays pending and goes out with the next outbox run") from None
        mail = s.get(Email, email_id)
        return {"id": email_id, "status": mail.status, "error": mail.last_error or None}
