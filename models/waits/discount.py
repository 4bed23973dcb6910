"""A sales manager approves a discount over its preparer's limit before the estimate goes out:
approve it, approve a lower one (the revision's lines and totals are recomputed), or send it back
to the engineer with a reason. Nothing is rendered or sent to the customer before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit
from ..billing import Invoice
from ..clock import working_hours
from ..deal import Deal
from ..errors import ValidationError
from ..estimates import DISCOUNT_DECISIONS, DISCOUNT_WORDS
from ..markdown import Markdown
from ..money import parse_money
from ..prompts import lines_table, money
from ..reminders import Reminder, ReminderRule, ReminderRules, open_waits_at, staff_with, to_staff
from ..staff import Role, StaffUser
from ..states import DealStatus, InvoiceStatus, RevisionStatus
from ..typed import line_of, notes_of
from .forms import Amount, Fields
from .kind import WaitKind


class DiscountFields(Fields):
    """Approve the estimate's discount, approve a lower one, or send it back to the engineer."""
    decision: Literal[(*DISCOUNT_WORDS, *DISCOUNT_DECISIONS)] = Field(  # type: ignore[valid-type]
        title="Your decision",
        description="approve: the estimate goes to the customer as it is; approve a lower discount: say the "
                    "highest below; send back: the engineer prepares a new revision (say why).")
    discount_pct: Amount | None = Field(
        title="Highest discount %", default=None,
        description="When you approve a lower discount: the highest discount a line may have; lines above it are "
                    "lowered to it.", json_schema_extra={"minimum": 0, "maximum": 100})
    reason: str = Field(title="Reason", default="",
                        description="When you send it back: what the engineer should change (they read it on "
                                    "their form). Otherwise a note for the record.")

    words: ClassVar[dict[str, dict[str, str]]] = {"decision": DISCOUNT_WORDS}


def at(deal: Deal) -> dict[str, Any] | None:
    latest = deal.estimate.latest
    return {"revision": latest.revision} if latest.status == RevisionStatus.DRAFT and latest.discount_pending else None


def _pct(value: Decimal) -> str:
    return format(value.normalize(), "f")


def customer_history(session: Session, deal: Deal) -> Markdown:
    """The customer's other deals, won, lost and open, and what they owe now (per currency)."""
    others = session.scalars(select(Deal).where(Deal.customer_id == deal.customer_id, Deal.id != deal.id)).all()
    counts = {status: sum(1 for d in others if d.status == status)
              for status in (DealStatus.WON, DealStatus.LOST, DealStatus.OPEN, DealStatus.CANCELLED)}
    owed: dict[str, Decimal] = {}
    for invoice in session.scalars(select(Invoice).join(Deal, Invoice.deal_id == Deal.id)
                                   .where(Deal.customer_id == deal.customer_id,
                                          Invoice.status.not_in((InvoiceStatus.PAID, InvoiceStatus.CREDITED)))):
        owed[invoice.deal.currency] = owed.get(invoice.deal.currency, Decimal(0)) + invoice.amount_due
    balance = Markdown(", ").join(money(v, c) for c, v in sorted(owed.items()) if v) or Markdown("nothing")
    cancelled = Markdown(", {} cancelled").format(counts["cancelled"]) if counts["cancelled"] else Markdown("")
    return Markdown("**{}** before this deal: {} won, {} lost, {} open{}; open balance {}.").format(
        deal.customer_name, counts["won"], counts["lost"], counts["open"], cancelled, balance)


def describe(session: Session, deal: Deal) -> Markdown:
    rev = deal.estimate.latest
    t = rev.totals
    gross = sum((ln.quantity * ln.unit_price for ln in rev.lines), Decimal(0))
    return Markdown("approve the discount on estimate revision {}, prepared by {}: up to **{} %**, over their "
                    "limit of {} %. "
                    "Approve it, approve a lower discount (give the highest), or send it back with a reason. "
                    "Nothing goes to the customer before you decide.\n\n{}\n\nList price {}, discount {}, net {}, "
                    "tax {}, **total {}**.\n\n{}").format(
        rev.revision, rev.prepared_by.name, _pct(rev.discount_asked_pct), _pct(rev.discount_limit_pct),
        lines_table(rev.lines, deal.currency), money(gross, deal.currency), money(gross - t.net, deal.currency),
        money(t.net, deal.currency), money(t.tax, deal.currency), money(t.total, deal.currency),
        customer_history(session, deal))


def prefill(session: Session, deal: Deal, typed: dict[str, Any] | None) -> dict[str, Any]:
    """What was typed; else the decision starts as approve."""
    return typed if typed is not None else {"decision": "approve"}


def answer(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    rev = deal.estimate.latest
    decision = line_of(answer, "decision", 20, required=True)
    reason = notes_of(answer, "reason", 2000)
    asked = _pct(rev.discount_asked_pct)
    if decision == "approve":
        rev.approve_discount(person, reason)
        return f"revision {rev.revision}: {asked} % discount approved"
    if decision == "lower":
        if answer.get("discount_pct") in (None, ""):
            raise ValidationError("discount_pct", "say the highest discount a line may have when you lower it")
        before = {ln.sku: ln.discount_pct for ln in rev.lines}
        pct = parse_money(answer.get("discount_pct"), "discount_pct")
        rev.lower_discount(person, pct, reason)
        audit.record(session, person.handle, "estimate.discount_lowered", deal_id=deal.id,
                     subject=f"revision {rev.revision}",
                     lines=[{"sku": ln.sku, "from": before[ln.sku], "to": ln.discount_pct} for ln in rev.lines
                            if before[ln.sku] != ln.discount_pct], total=rev.totals.total)
        return (f"revision {rev.revision}: discount lowered from {asked} % to {_pct(pct)} %, total "
                f"{rev.totals.total} {deal.currency}")
    if decision == "send_back":
        rev.send_back(person, reason)
        return f"revision {rev.revision} sent back to {rev.prepared_by.handle}"
    raise ValidationError("decision", "must be approve, lower or send_back")


def waiting_approval(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    """The sales managers, when a discount has waited for approval more than N working hours
    (Monday to Friday, 9 to 17 UTC); once a day while it waits."""
    today = now.date()
    managers = staff_with(session, Role.MANAGER)
    for wait, deal in open_waits_at(session, "discount", "discount-approval", today):
        hours = working_hours(wait.opened_at, now)
        if hours <= rules.discount_approval_hours:
            continue
        rev = deal.estimate.latest
        yield from to_staff(
            "discount-approval", wait, deal, managers, today,
            f"Discount waiting for approval {hours:.0f} working hours: {deal.number} ({deal.customer_name})",
            f"Revision {rev.revision} of {deal.number}'s estimate waits for your approval of its discount",
            [f"{_pct(rev.discount_asked_pct)} % asked by {rev.prepared_by.name} (limit {_pct(rev.discount_limit_pct)} "
             f"%), total {rev.totals.total} {deal.currency}",
             f"waiting since {wait.opened_at:%Y-%m-%d %H:%M} UTC: {wait.key}"])


DISCOUNT = WaitKind(
    name="discount", title="the discount approval", roles=(Role.MANAGER,),
    at=at, key=lambda facts: f"discount-rev-{facts['revision']}",
    fields=DiscountFields, describe=describe, prefill=prefill, answer=answer,
    reminder=ReminderRule("discount-approval", waiting_approval))
