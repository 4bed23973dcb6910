"""``dealflow deal cancel``: a manager cancels a deal's order before its first shipment, proven as
an answer is (a one-time code, or the session of ``dealflow login``)."""

from __future__ import annotations

import os
from typing import Any

import click

from models.deposit_terms import SETTLEMENTS

from .common import acting, emit
from .deals import deal


@deal.command("cancel")
@click.argument("deal_number", metavar="DEAL")
@click.option("--reason", required=True, help="Why the order is cancelled: the customer is told, the deal keeps it.")
@click.option("--settle", type=click.Choice(SETTLEMENTS), default="refund", show_default=True,
              help="What becomes of a deposit paid: refund (paid back, recorded as a refund) or credit (kept as "
                   "credit on the customer's account).")
@click.option("--method", default="bank_transfer", show_default=True,
              help="How a refund is paid: bank_transfer, card, cheque or cash.")
@click.option("--by", help="Your staff handle (a manager; the session's, when you logged in).")
@click.option("--code", metavar="NNNNNN", help="Your one-time code, without `dealflow login`.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def deal_cancel(deal_number: str, reason: str, settle: str, method: str, by: str | None, code: str | None,
                as_json: bool) -> None:
    """Cancel DEAL's order before its first shipment (a manager's step): what it reserved is free
    again, a deposit invoice is reversed by a credit note (emailed) and what was paid on it is
    refunded or kept as credit, the customer is told, and the deal's flow run ends Cancelled with
    the reason. Repeated (or run again after it was interrupted), nothing is done or sent twice;
    the run's end and the mail still pending are tried again."""
    from application import deals

    by, proof = acting("deal cancel", by, code, deal_number, "cancel",
                       lambda who: deals.cancel_payload(who, reason, settle, method), "a manager")
    stop_run = None
    if os.environ.get("PREFECT_API_URL"):
        from services.orchestration.runs import cancel

        stop_run = cancel
    out = deals.cancel_deal(deal_number, by, reason, settle=settle, method=method, proof=proof, stop_run=stop_run)
    emit(out, as_json, _said(out))


def _said(out: dict[str, Any]) -> str:
    cur = out["currency"]
    if out["already"]:
        lines = [f"{out['deal']} was already cancelled ({out['reason']}); nothing was cancelled again"]
    else:
        lines = [f"{out['deal']} cancelled by {out['by']}: {out['reason']}"]
        if out["order"]:
            lines.append(f"  order {out['order']} cancelled; what it reserved is free again")
        note = out["credit_note"]
        if note:
            settled = {"refund": f"{note['refunded']} {cur} refunded to the customer ({note['method']})",
                       "credit": f"{note['kept_as_credit']} {cur} kept as credit on the customer's account",
                       "none": "nothing had been paid on it"}[note["settlement"]]
            lines.append(f"  deposit invoice {note['invoice']} reversed by credit note {note['number']} "
                         f"({note['amount']} {cur}): {settled}")
    if out["flow_run_id"]:
        run = out["run"] or ("PREFECT_API_URL is not set: a run on a temporary server (a deal started without "
                             "`dealflow up`) sees the cancel within seconds and ends Cancelled itself")
        lines.append(f"  flow run {out['flow_run_id']}: {run}")
    sent = len(out["mail_sent"])
    if out["mail_left"]:
        lines.append(f"  mail: {sent} sent; the rest waits in the outbox ({out['mail_left']}): the outbox run "
                     f"sends it, or run this again")
    else:
        lines.append(f"  mail: {sent} sent" if sent else "  mail: nothing left to send")
    return "\n".join(lines)
