"""What a person needs to decide at each wait, as short Markdown for the form and the inbox."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from .catalog import StockLevel
from .deal import Deal, Wait
from .documents import revision_changes

QA_CHECKLIST = ("spindle_runout", "safety_guards", "emergency_stop", "hydraulics", "control_software")


def _lines_table(lines, currency: str) -> str:
    rows = ["| SKU | Qty | Unit price | Disc. | Net |", "|---|---:|---:|---:|---:|"]
    rows += [f"| {ln.sku} | {ln.quantity} | {ln.unit_price} | {ln.discount_pct}% | {ln.net} |" for ln in lines]
    return "\n".join(rows)


def describe(session: Session, deal: Deal, step: str, key: str) -> str:
    who = f"**{deal.number}** · {deal.customer_name}"
    note = ""
    base = re.sub(r"-retry-\d+$", "", key)
    if base != key:  # a retry: say why the previous answer to this same wait was refused
        refused = session.scalars(select(Wait).where(
            Wait.deal_id == deal.id, Wait.status == "refused",
            (Wait.key == base) | Wait.key.like(f"{base}-retry-%")).order_by(Wait.id.desc())).first()
        if refused is not None:
            note = f"\n\n> Previous answer by {refused.answered_by or '?'} was refused: {refused.refusal_reason}"
    body = _BODY[step](session, deal)
    return f"{who}: {body}{note}"


def _qualify(session: Session, deal: Deal) -> str:
    lead = deal.lead
    return (f"qualify the lead from {lead.contact_name} ({lead.email}), source {lead.source}. "
            f"Notes: {lead.notes or '-'}. Answer qualified yes/no with budget and timeline.")


def _handoff(session: Session, deal: Deal) -> str:
    opp = deal.opportunity
    done = sum(1 for f in opp.followups if f.is_done)
    return (f"opportunity at stage {opp.stage} ({opp.probability}%), {done}/{len(opp.followups)} follow-ups "
            f"done. Hand it to a sales engineer (his handle) when it is ready for an estimate.")


def _estimate(session: Session, deal: Deal) -> str:
    latest = deal.estimate.latest if deal.estimate else None
    if latest is None:
        budget = deal.lead.budget
        return (f"prepare estimate revision 1: lines (SKU, quantity, discount %). Budget "
                f"{budget if budget is not None else 'not given'}, timeline {deal.lead.timeline or '-'}.")
    cr = latest.change_request
    return (f"prepare revision {latest.revision + 1}. The customer asked on {latest.number}: "
            f"\"{cr.text if cr else '-'}\"\n\n{_lines_table(latest.lines, deal.currency)}")


def _decision(session: Session, deal: Deal) -> str:
    rev = deal.estimate.latest
    previous = deal.estimate.revisions[-2] if len(deal.estimate.revisions) > 1 else None
    changes = revision_changes(previous, rev)
    t = rev.totals
    text = (f"record the customer's decision on {rev.number} (valid until {rev.valid_until}): "
            f"approve, request_changes (say what) or decline, and how it came (channel).\n\n"
            f"{_lines_table(rev.lines, deal.currency)}\n\nNet {t.net}, tax {t.tax}, "
            f"**total {deal.currency} {t.total}**")
    if changes:
        text += "\n\nChanged since the previous revision: " + "; ".join(changes)
    return text


def _qa(session: Session, deal: Deal) -> str:
    order = deal.order
    machines = ", ".join(f"{ln.quantity} × {ln.sku}" for ln in order.lines)
    failed = [i for i in order.inspections if not i.passed]
    text = (f"test order {order.number} ({machines}). Checklist: {', '.join(QA_CHECKLIST)}. "
            f"Pass releases it for picking.")
    if failed:
        text += f" Attempt {failed[-1].attempt} failed: {failed[-1].notes}"
    return text


def _shipment(session: Session, deal: Deal) -> str:
    order = deal.order
    parts = []
    for ln in order.lines:
        if ln.remaining:
            level = session.get(StockLevel, ln.product_id)
            parts.append(f"{ln.sku}: {ln.remaining} to ship, {level.on_hand if level else 0} in stock")
    return (f"confirm a shipment of {order.number}: carrier, tracking number and lines "
            f"(none = all that is left). " + "; ".join(parts))


def _payment(session: Session, deal: Deal) -> str:
    inv = deal.invoice
    return (f"record a payment on {inv.number} (due {inv.due_date}): total {inv.totals.total}, "
            f"paid {inv.paid}, **due {deal.currency} {inv.amount_due}**.")


_BODY = {"qualify": _qualify, "handoff": _handoff, "estimate": _estimate, "decision": _decision,
         "qa": _qa, "shipment": _shipment, "payment": _payment}
