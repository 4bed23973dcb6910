"""Finance credits what came back on a return: a credit note (its own gap-free series, CN) for the
goods received, less the restocking fee, emailed with its portal link; the money refunded (a
refund payment, RFD) or kept as credit on the customer's account."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from ..billing import METHOD_WORDS
from ..markdown import Markdown
from ..prompts import money
from ..reminders import STUCK_WAIT
from ..return_steps import credit_return, outcome_words
from ..returns import ReturnOrder
from ..staff import Role, StaffUser
from ..typed import line_of
from .forms import Fields
from .kind import WaitKind
from .of_case import case_key, case_of_key, goods, header

SETTLE_WORDS = {"refund it": "refund", "keep as credit on the account": "credit"}
REFUND_WORDS = {w: c for w, c in METHOD_WORDS.items() if c != "account_credit"}


class ReturnCreditFields(Fields):
    """Issue the credit note for what came back: refund the money or keep it as credit."""
    settle: Literal[(*SETTLE_WORDS, *SETTLE_WORDS.values())] = Field(  # type: ignore[valid-type]
        title="The money", description="refund it (only what was paid on the invoice), or keep it as credit on "
                                        "the customer's account (spent later with the method 'credit on account').")
    method: Literal[(*REFUND_WORDS, *REFUND_WORDS.values())] = Field(  # type: ignore[valid-type]
        title="Refund method", default="bank transfer", description="How a refund is paid back.")
    words: ClassVar[dict[str, dict[str, str]]] = {"settle": SETTLE_WORDS, "method": REFUND_WORDS}


def at(ret: ReturnOrder) -> dict[str, Any] | None:
    return {} if ret.awaits_credit else None


def describe(session: Session, ret: ReturnOrder) -> Markdown:
    cur = ret.deal.currency
    invoice = ret.deal.invoice
    fee = ret.restocking_fee
    return Markdown("issue the credit note for {}: goods kept (restocked or scrapped) {}, restocking fee {} ({} %), "
                    "**credit {}**. "
                    "Invoice {}: {} paid of {}. {}.\n\n{}\n\n{}").format(
        ret.number, money(ret.credited_value, cur), money(fee, cur),
        Markdown(format(ret.restocking_fee_pct.normalize(), "f")), money(ret.credited_value - fee, cur),
        invoice.number, money(invoice.paid, cur), money(invoice.totals.total, cur), outcome_words(ret),
        header(ret), goods(ret, received=True))


def prefill(session: Session, ret: ReturnOrder, typed: dict[str, Any] | None) -> dict[str, Any]:
    if typed is not None:
        return typed
    paid_in_full = ret.deal.invoice is not None and ret.deal.invoice.amount_due <= 0
    return {"settle": "refund it" if paid_in_full else "keep as credit on the account", "method": "bank transfer"}


def answer(session: Session, ret: ReturnOrder, person: StaffUser, answer: dict[str, Any]) -> str:
    note = credit_return(session, ret, line_of(answer, "settle", 20, required=True),
                         line_of(answer, "method", 20) or "bank_transfer", person)
    settled = (f"refunded as {note.refund_number}" if note.refund_number else
               "kept as credit on the customer's account" if note.kept_as_credit else "nothing to pay back")
    return f"{note.number} for {ret.number}: {note.amount} {ret.deal.currency}, {settled}"


RETURN_CREDIT = WaitKind(
    name="return_credit", title="a return's credit note", roles=(Role.FINANCE,),
    at=at, key=case_key("credit"), fields=ReturnCreditFields, describe=describe, prefill=prefill,
    answer=answer, reminder=STUCK_WAIT, case="return", subject=case_of_key)
