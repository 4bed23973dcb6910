"""Finance records a payment received against the invoice (part payments until it is paid); the
customer is thanked with a receipt of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..billing import METHOD_WORDS, PAYMENT_METHODS, Invoice
from ..credit_notes import credit_balance
from ..crm import Customer
from ..deal import Deal
from ..documents import dunning_context, payment_context
from ..markdown import Markdown
from ..money import parse_money
from ..prompts import money
from ..reminders import Reminder, ReminderRule, ReminderRules, ReminderSent
from ..sending import issue_document
from ..staff import Role, StaffUser
from ..states import InvoiceStatus
from ..typed import day_of, line_of
from .forms import Amount, Fields
from .kind import WaitKind


class PaymentFields(Fields):
    """Record a payment received against the invoice."""
    amount: Amount = Field(title="Amount received", description="Amount received, at most what is still due.")
    received_on: date | None = Field(title="Date received", default=None,
                                     description="The day the money arrived (empty: today).")
    method: Literal[(*METHOD_WORDS, *PAYMENT_METHODS)] = Field(  # type: ignore[valid-type]
        title="Payment method", default="bank transfer", description="Bank transfer, card, cheque or cash.")
    reference: str = Field(title="Reference", default="", description="Bank reference or cheque number.")

    words: ClassVar[dict[str, dict[str, str]]] = {"method": METHOD_WORDS}


def at(deal: Deal) -> dict[str, Any] | None:
    invoice = deal.invoice
    return {"seq": len(invoice.payments) + 1} if invoice.status != InvoiceStatus.PAID else None


def describe(session: Session, deal: Deal) -> Markdown:
    inv = deal.invoice
    return Markdown("record a payment received for {} (due {}): total {}, paid so far {}, **still due {}**.").format(
        inv.number, inv.due_date, money(inv.totals.total, deal.currency), money(inv.paid, deal.currency),
        money(inv.amount_due, deal.currency))


def prefill(session: Session, deal: Deal, typed: dict[str, Any] | None) -> dict[str, Any]:
    """What was typed, else the amount still due."""
    return typed if typed is not None else {"amount": str(deal.invoice.amount_due)}


def answer(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    return record(session, deal, deal.invoice, person, answer)


def record(session: Session, deal: Deal, invoice: Invoice, person: StaffUser, answer: dict[str, Any]) -> str:
    """A payment against ``invoice`` (the final one, or the deposit invoice), with its receipt to the customer."""
    amount = parse_money(answer.get("amount"), "amount")
    method = line_of(answer, "method", 20) or "bank_transfer"
    on_account = None
    if method == "account_credit" and deal.customer is not None:
        # one spend of the customer's credit at a time (two deals' payments lock only their own
        # deals): the second waits here and then counts what the first took, never the same credit twice
        session.scalars(select(Customer).where(Customer.id == deal.customer_id).with_for_update()).one()
        on_account = credit_balance(session, deal.customer, deal.currency)
    payment = invoice.record_payment(session, amount, method, line_of(answer, "reference", 80), person,
                                     day_of(answer, "received_on"), account_credit=on_account)
    session.flush()
    issue_document(session, deal, "payment", payment.number, payment_context(payment),
                   f"Thank you for your payment {payment.number} on {invoice.title.lower()} {invoice.number}")
    return f"{payment.number}: {payment.amount} received, {invoice.amount_due} due"


def dunning(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    """The letter of the highest step reached, once per step (keyed by the day the step fell on,
    so a run that missed that day still sends it once, and later runs never again)."""
    today = now.date()
    first = today - timedelta(days=rules.dunning_days[0])
    invoices = session.scalars(select(Invoice).join(Deal, Invoice.deal_id == Deal.id).where(
        Invoice.status.not_in((InvoiceStatus.PAID, InvoiceStatus.CREDITED)), Invoice.due_date <= first)).all()
    for invoice in invoices:
        level = sum(1 for d in rules.dunning_days if today >= invoice.due_date + timedelta(days=d))
        step_day = invoice.due_date + timedelta(days=rules.dunning_days[level - 1])
        rule = f"dunning-{level}"
        if session.scalar(select(func.count()).select_from(ReminderSent).where(
                ReminderSent.rule == rule, ReminderSent.entity_id == invoice.id)):
            continue
        ctx = dunning_context(invoice, level, today)
        yield Reminder(rule, invoice.id, ctx["customer"]["email"], step_day,
                       f"{ctx['title']}: {invoice.title.lower()} {invoice.number}, {invoice.deal.currency} "
                       f"{invoice.amount_due} due",
                       "emails/dunning", ctx, deal_id=invoice.deal_id,
                       document=("dunning", ctx["number"], "documents/dunning.html"),
                       about=f"{invoice.number} level {level}")


PAYMENT = WaitKind(
    name="payment", title="a payment", roles=(Role.FINANCE,),
    at=at, key=lambda facts: f"payment-{facts['seq']}",
    fields=PaymentFields, describe=describe, prefill=prefill, answer=answer,
    reminder=ReminderRule("dunning", dunning))
