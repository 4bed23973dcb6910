"""Credit control decides on an order held because the customer's credit does not cover it (over
their limit, or an invoice overdue too long): release it with a reason, ask for a deposit instead
(the order is made with that deposit, and waits for it), or reject it (the deal is lost and the
customer is told, kindly, why)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from .. import audit
from ..clock import working_hours
from ..credit import CreditHold, exposure_of, open_hold
from ..deal import Deal
from ..deposits import BEFORE_WORDS, DEPOSIT_BEFORE, deposit_before, deposit_pct
from ..documents import credit_declined_context
from ..errors import ValidationError
from ..markdown import Markdown
from ..outbox import queue_email
from ..prompts import lines_table, money
from ..reminders import Reminder, ReminderRule, ReminderRules, open_waits_at, staff_with, to_staff
from ..staff import Role, StaffUser
from ..states import HoldStatus
from ..typed import line_of, notes_of
from .discount import customer_history
from .forms import Amount, Fields
from .kind import WaitKind

CREDIT_WORDS = {"release": "release", "ask for a deposit": "deposit", "reject": "reject"}
CREDIT_DECISIONS = ("release", "deposit", "reject")
BEFORE_CHOICES = {words: code for code, words in BEFORE_WORDS.items()}


class CreditFields(Fields):
    """Release the order held for credit, ask for a deposit instead, or reject it."""
    decision: Literal[(*CREDIT_WORDS, *CREDIT_DECISIONS)] = Field(  # type: ignore[valid-type]
        title="Your decision",
        description="release: the order is made as accepted; ask for a deposit: the order is made and waits for "
                    "the deposit you set; reject: the deal is lost and the customer is told why.")
    reason: str = Field(title="Reason", description="Why (kept with the decision; for a rejection, sent to the "
                                                    "customer, so word it for them).")
    deposit_pct: Amount | None = Field(title="Deposit %", default=None,
                                       description="When you ask for a deposit: the share of the order, in %.",
                                       json_schema_extra={"minimum": 0, "maximum": 100})
    deposit_before: Literal[(*BEFORE_CHOICES, *DEPOSIT_BEFORE)] = Field(  # type: ignore[valid-type]
        title="Deposit due", default="before shipping",
        description="When you ask for a deposit: paid before shipping, or before QA and release.")

    words: ClassVar[dict[str, dict[str, str]]] = {"decision": CREDIT_WORDS, "deposit_before": BEFORE_CHOICES}


def at(deal: Deal) -> dict[str, Any] | None:
    hold = open_hold(deal)
    return {"revision": deal.estimate.latest.revision} if hold is not None and deal.order is None else None


def describe(session: Session, deal: Deal) -> Markdown:
    hold: CreditHold = open_hold(deal)
    rev = deal.estimate.latest
    exposure = exposure_of(session, hold.customer, leave_out=deal.id)
    limit = (money(hold.credit_limit, hold.currency) if hold.credit_limit is not None else Markdown("none"))
    return Markdown("decide on the order of {} ({}, **{}**), on credit hold: {}.\n\n"
                    "Credit limit {}; exposure now {} (unpaid invoices {}, confirmed and not invoiced {}). "
                    "Release it (say why), ask for a deposit instead (say how much and when), or reject it (the "
                    "deal is lost and the customer is told the reason you give).\n\n{}\n\n{}").format(
        deal.customer_name, rev.number, money(rev.totals.total, deal.currency), hold.why, limit,
        money(exposure.total, exposure.currency), money(exposure.unpaid, exposure.currency),
        money(exposure.uninvoiced, exposure.currency), lines_table(rev.lines, deal.currency),
        customer_history(session, deal))


def prefill(session: Session, deal: Deal, typed: dict[str, Any] | None) -> dict[str, Any]:
    return typed if typed is not None else {"decision": "release", "deposit_before": "shipping"}


def answer(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    hold: CreditHold | None = open_hold(deal)
    if hold is None:
        raise ValidationError("decision", f"{deal.number} has no order on credit hold")
    decision = line_of(answer, "decision", 20, required=True)
    reason = notes_of(answer, "reason", 2000)
    if decision == "release":
        hold.decide(HoldStatus.RELEASED, person, reason)
        deal.opportunity.move_to("closed_won", person)  # won once credit control lets the order be made
        return f"credit hold released: {reason}"
    if decision == "deposit":
        if answer.get("deposit_pct") in (None, ""):
            raise ValidationError("deposit_pct", "say the deposit's share of the order, in % (more than 0)")
        pct = deposit_pct(answer.get("deposit_pct"), "deposit_pct")
        if not pct:
            raise ValidationError("deposit_pct", "must be more than 0 when you ask for a deposit (release it "
                                                 "instead to ask for none)")
        before = deposit_before(answer.get("deposit_before") or "shipping", "deposit_before")
        hold.decide(HoldStatus.DEPOSIT, person, reason)
        hold.deposit_pct, hold.deposit_before = pct, before
        deal.opportunity.move_to("closed_won", person)
        return f"credit hold released with a {format(pct.normalize(), 'f')} % deposit {BEFORE_WORDS[before]}"
    if decision == "reject":
        hold.decide(HoldStatus.REJECTED, person, reason)
        deal.opportunity.move_to("closed_lost", person)
        deal.close_lost(f"credit rejected: {reason}")
        session.flush()
        ctx = credit_declined_context(hold)
        queue_email(session, deal_id=deal.id, dedupe_key=f"credit_declined:{hold.id}", kind="credit_declined",
                    to_addr=ctx["customer"]["email"], subject=f"Your order from estimate {ctx['estimate']}",
                    template="emails/credit_declined", context=ctx)
        audit.record(session, person.handle, "credit.rejected", deal_id=deal.id, subject=ctx["estimate"],
                     reason=reason)
        return f"order rejected on credit: {reason}"
    raise ValidationError("decision", "must be release, deposit or reject")


def waiting_credit(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    """Credit control and the managers, when an order has waited on credit hold more than N
    working hours; once a day while it waits."""
    today = now.date()
    people = staff_with(session, Role.CREDIT, Role.MANAGER)
    for wait, deal in open_waits_at(session, "credit", "credit-hold", today):
        hours = working_hours(wait.opened_at, now)
        hold = open_hold(deal)
        if hold is None or hours <= rules.credit_hold_hours:
            continue
        yield from to_staff(
            "credit-hold", wait, deal, people, today,
            f"Order on credit hold {hours:.0f} working hours: {deal.number} ({deal.customer_name})",
            f"{deal.number}'s order waits for your credit decision",
            [hold.why, f"order total {hold.order_total} {hold.currency}",
             f"waiting since {wait.opened_at:%Y-%m-%d %H:%M} UTC: {wait.key}"])


CREDIT = WaitKind(
    name="credit", title="the credit decision", roles=(Role.CREDIT,),
    at=at, key=lambda facts: f"credit-rev-{facts['revision']}",
    fields=CreditFields, describe=describe, prefill=prefill, answer=answer,
    reminder=ReminderRule("credit-hold", waiting_credit))
