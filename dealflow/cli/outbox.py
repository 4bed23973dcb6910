"""``dealflow outbox``: the mail outbox, and what a person does about mail that did not go."""

from __future__ import annotations

import click

from models import DomainError

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
    from application import outbox as mail
    from models.outbox import waited

    listed = mail.list_mail(status, deal_number)
    rows, health = listed.mail, listed.health
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
    from application import outbox as mail
    from models.outbox import waited

    out = mail.send_pending()
    emit(out, as_json, f"{len(out['sent'])} sent; {out['pending']} pending"
         + (f" (the oldest has waited {waited(out['oldest_pending_seconds'])})" if out["pending"] else ""))
    if out["error"]:
        raise DomainError(f"smtp: {out['error']}; the rest stays pending")


@outbox.command("confirm")
@click.argument("email_id", type=RECORD_ID)
@click.option("--by", required=True, help="Your staff handle (who checked).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def outbox_confirm(email_id: int, by: str, as_json: bool) -> None:
    """Record that an email of unknown fate did arrive (you asked the recipient, or found it in the
    mail server's log): it is marked sent. If it never arrived, use `outbox retry ID --force`."""
    from application import outbox as mail

    out = mail.confirm_arrival(email_id, by)
    emit(out, as_json, f"email {email_id}: sent (confirmed by {by})")


@outbox.command("retry")
@click.argument("email_id", type=RECORD_ID)
@click.option("--force", is_flag=True,
              help="Also retry a message stuck in 'sending' (its first attempt may have arrived: "
                   "the customer could get it twice).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def outbox_retry(email_id: int, force: bool, as_json: bool) -> None:
    """Send a failed (or, with --force, stuck) message again, now."""
    from application import outbox as mail

    out = mail.retry(email_id, force)
    emit(out, as_json, f"email {email_id}: {out['status']}" + (f" ({out['error']})" if out["error"] else ""))
