"""Finance records the deposit received against the deposit invoice (part payments until it is
paid) before the stage it blocks: QA and release, or the first shipment. The customer is thanked
with a receipt of each payment."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from ..billing import Invoice
from ..deal import Deal, Wait
from ..deposits import BEFORE_WORDS
from ..markdown import Markdown
from ..prompts import money
from ..reminders import Reminder, ReminderRule, ReminderRules, open_waits_at, staff_with, to_staff
from ..staff import Role
from ..stages import release_if_nothing_to_check
from .kind import WaitKind
from .payment import PaymentFields, record


class DepositFields(PaymentFields):
    """Record a deposit payment received against the deposit invoice."""


def at(deal: Deal) -> dict[str, Any] | None:
    order = deal.order
    if order is None or not order.waits_for_deposit():
        return None
    return {"seq": len(deal.deposit_invoice.payments) + 1}


def describe(session: Session, deal: Deal) -> Markdown:
    inv, order = deal.deposit_invoice, deal.order
    return Markdown("record the deposit received for {} (deposit invoice {}, due {}): {} of {}, "
                    "{}. Total {}, paid so far {}, **still due {}**. The order waits for it.").format(
        order.number, inv.number, inv.due_date, money(inv.totals.total, deal.currency),
        money(order.totals.total, deal.currency), order.deposit_terms.words(),
        money(inv.totals.total, deal.currency), money(inv.paid, deal.currency), money(inv.amount_due, deal.currency))


def prefill(session: Session, deal: Deal, typed: dict[str, Any] | None) -> dict[str, Any]:
    """What was typed, else the deposit still due."""
    return typed if typed is not None else {"amount": str(deal.deposit_invoice.amount_due)}


def answer(session: Session, deal: Deal, person, answer: dict[str, Any]) -> str:
    outcome = record(session, deal, deal.deposit_invoice, person, answer)
    if deal.deposit_invoice.is_settled and release_if_nothing_to_check(session, deal.order, person):
        outcome += f"; {deal.order.number} released (nothing for QA to check)"
    return outcome


def waiting_for_deposit(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    """The managers and finance, once a day, when a deal has waited for its deposit N days."""
    today = now.date()
    people = staff_with(session, Role.MANAGER, Role.FINANCE)
    for wait, deal in open_waits_at(session, "deposit", "deposit-waiting", today,
                                    Wait.opened_at <= now - timedelta(days=rules.deposit_waiting_days)):
        inv: Invoice = deal.deposit_invoice
        days = (now - wait.opened_at).days
        yield from to_staff(
            "deposit-waiting", wait, deal, people, today,
            f"Waiting for deposit {days} days: {deal.number} ({deal.customer_name})",
            f"{deal.number} is waiting for deposit: order {deal.order.number} is held "
            f"{BEFORE_WORDS[deal.order.deposit_before]}",
            [f"deposit invoice {inv.number}: {inv.totals.total} {deal.currency}, paid {inv.paid}, due "
             f"{inv.amount_due} by {inv.due_date}",
             f"waiting since {wait.opened_at:%Y-%m-%d} ({days} days): {wait.key}"])


DEPOSIT = WaitKind(
    name="deposit", title="the deposit", roles=(Role.FINANCE,),
    at=at, key=lambda facts: f"deposit-{facts['seq']}",
    fields=DepositFields, describe=describe, prefill=prefill, answer=answer,
    reminder=ReminderRule("deposit-waiting", waiting_for_deposit))
