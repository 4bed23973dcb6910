"""``dealflow outbox``: the mail outbox, and what a person does about mail that did not go."""

from __future__ import annotations

import click

from models import DomainError, utcnow
from models.states import EmailStatus

from .common import RECORD_ID, DealflowGroup, emit, table


@click.group(cls=DealflowGroup, invoke_without_command=True)
@click.option("--status", type=click.Choice(["pending", "sending", "sent", "failed"]), help="Only this state.")
@click.option("--deal", "deal_number", help="Only this deal's mail.")
@click.option("--json", "as_json", is_flag=True, help="Print the mail as JSON.")
@click.pass_context
def outbox(ctx: click.Context, status: str | None, deal_number: str | None, as_json: bool) -> None:
    """The mail outbox: pending (and for how long), sending, sent, failed, and mail whose fate is
    unknown (the sender stopped while the mail server was taking it: check whether it arrived)."""
    if ctx.invoked_subcommand:
        return
    from sqlalchemy import select

    from models import Email
    from models.deal import deal_by_number
    from models.outbox import outbox_health, waited
    from services.db import session_scope
    from services.mailer import stuck

    now = utcnow()
    with session_scope() as s:
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
        health = outbox_health(s, now)
    text = table(rows, ["id", "kind", "to", "status", "attempts", "waiting", "sent_at", "error"])
    if health["pending"]:
        text += (f"\n{health['pending']} pending; the oldest (email {health['oldest_pending_id']}) has waited "
                 f"{waited(health['oldest_pending_seconds'])}")
    if health["fate_unknown"]:
        text += (f"\n{health['fate_unknown']} of unknown fate: the sender stopped while the mail server was "
                 f"taking it; check with the recipient, then `dealflow outbox confirm ID --by YOU` if it "
                 f"arrived, or `dealflow outbox retry ID --force` if it never came")
    emit(rows, as_json, text)


@outbox.command("send")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def outbox_send(as_json: bool) -> None:
    """Send all pending mail now (what the scheduled `outbox` run does), after releasing the
    claims of senders that stopped before handing their message over."""
    from models.outbox import outbox_health, waited
    from services.config import load_settings, with_smtp_password
    from services.db import session_scope
    from services.mailer import TransientMailError, deliver

    settings = with_smtp_password(load_settings())
    with session_scope() as s:
        error = None
        try:
            sent = deliver(s, settings=settings)
        except TransientMailError as exc:
            sent, error = exc.sent, str(exc)
        health = outbox_health(s)
    out = {"sent": sent, "pending": health["pending"], "oldest_pending_seconds": health["oldest_pending_seconds"],
           "error": error}
    emit(out, as_json, f"{len(sent)} sent; {health['pending']} pending"
         + (f" (the oldest has waited {waited(health['oldest_pending_seconds'])})" if health["pending"] else ""))
    if error:
        raise DomainError(f"smtp: {error}; the rest stays pending")


@outbox.command("confirm")
@click.argument("email_id", type=RECORD_ID)
@click.option("--by", required=True, help="Your staff handle (who checked).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def outbox_confirm(email_id: int, by: str, as_json: bool) -> None:
    """Record that an email of unknown fate did arrive (you asked the recipient, or found it in the
    mail server's log): it is marked sent. If it never arrived, use `outbox retry ID --force`."""
    from models import Email, NotFound, audit
    from models.outbox import confirm_arrived
    from models.process import staff_by_handle
    from services.company import sender as company_sender
    from services.db import session_scope
    from services.mailer import message_id

    with session_scope() as s:
        person = staff_by_handle(s, by)
        mail = s.get(Email, email_id)
        if mail is None:
            raise NotFound("email", email_id)
        confirm_arrived(mail, message_id(mail, company_sender()[1]))
        audit.record(s, person.handle, "email.confirmed_arrived", deal_id=mail.deal_id, subject=f"email {mail.id}",
                     to=mail.to_addr, kind=mail.kind)
        s.commit()
        out = {"id": email_id, "status": mail.status, "message_id": mail.message_id}
    emit(out, as_json, f"email {email_id}: sent (confirmed by {by})")


@outbox.command("retry")
@click.argument("email_id", type=RECORD_ID)
@click.option("--force", is_flag=True,
              help="Also retry a message stuck in 'sending' (its first attempt may have arrived: "
                   "the customer could get it twice).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def outbox_retry(email_id: int, force: bool, as_json: bool) -> None:
    """Send a failed (or, with --force, stuck) message again, now."""
    from models import Email, NotFound
    from models.outbox import requeue
    from services.config import load_settings, with_smtp_password
    from services.db import session_scope
    from services.mailer import TransientMailError, deliver, sender_alive

    settings = with_smtp_password(load_settings())  # before anything changes: a missing secret stops here
    with session_scope() as s:
        mail = s.get(Email, email_id)
        if mail is None:
            raise NotFound("email", email_id)
        requeue(s, mail, force=force, is_alive=sender_alive)
        s.commit()
        try:
            deliver(s, email_ids=[email_id], settings=settings)
        except TransientMailError as exc:
            raise DomainError(f"smtp: {exc}; it stays pending and goes out with the next outbox run") from None
        mail = s.get(Email, email_id)
        out = {"id": email_id, "status": mail.status, "error": mail.last_error or None}
    emit(out, as_json, f"email {email_id}: {out['status']}" + (f" ({out['error']})" if out["error"] else ""))
