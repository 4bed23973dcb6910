"""A manager authorizes a return (with a restocking fee, if any): the customer gets the RMA with its
number and instructions; or refuses it, with a reason the customer reads."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from ..markdown import Markdown
from ..prompts import money
from ..reminders import STUCK_WAIT
from ..return_steps import authorize, refuse
from ..returns import ReturnOrder, returned_before
from ..staff import Role, StaffUser
from ..states import ReturnStatus
from ..typed import line_of, notes_of
from .forms import Amount, Fields
from .kind import WaitKind
from .of_case import case_key, case_of_key, goods, header

DECISION_WORDS = {"authorize the return": "authorize", "refuse it": "refuse"}


class ReturnAuthorizeFields(Fields):
    """Authorize the return (the customer gets the RMA) or refuse it with a reason."""
    decision: Literal[(*DECISION_WORDS, *DECISION_WORDS.values())] = Field(  # type: ignore[valid-type]
        title="Your decision", description="authorize: the customer gets the RMA and sends the goods; refuse: the "
                                           "customer gets your reason.")
    restocking_fee_pct: Amount = Field(title="Restocking fee %", default=0,
                                       description="Kept from the credit for what comes back (0: none).",
                                       json_schema_extra={"minimum": 0, "maximum": 100})
    note: str = Field(title="Note to the customer", default="",
                      description="When you refuse: why (the customer reads it). Otherwise instructions or a note.")
    words: ClassVar[dict[str, dict[str, str]]] = {"decision": DECISION_WORDS}


def at(ret: ReturnOrder) -> dict[str, Any] | None:
    return {} if ret.status == ReturnStatus.REQUESTED else None


def describe(session: Session, ret: ReturnOrder) -> Markdown:
    shipped = Markdown("; ").join(
        Markdown("{}: {} shipped, {} on other returns").format(ln.sku, ln.order_line.shipped_qty,
                                                               returned_before(session, ln.order_line, ret))
        for ln in ret.lines)
    invoice = ret.deal.invoice
    cur = ret.deal.currency
    paid = (Markdown(" Invoice {}: {} paid of {}.").format(invoice.number, money(invoice.paid, cur),
                                                           money(invoice.totals.total, cur))
            if invoice is not None else Markdown(""))
    credit = Markdown("It is credited once received and inspected, less the restocking fee you set."
                      if ret.with_credit else "A warranty return: nothing is credited.")
    return Markdown("authorize or refuse the return {}.\n\n{}\n\n{}\n\n{}.{} {}").format(
        ret.number, header(ret), goods(ret), shipped, paid, credit)


def prefill(session: Session, ret: ReturnOrder, typed: dict[str, Any] | None) -> dict[str, Any]:
    return typed if typed is not None else {"decision": "authorize the return", "restocking_fee_pct": 0}


def answer(session: Session, ret: ReturnOrder, person: StaffUser, answer: dict[str, Any]) -> str:
    from ..return_steps import refusal_mail, send_rma

    decision = line_of(answer, "decision", 20, required=True)
    note = notes_of(answer, "note", 2000).strip()
    if decision == "authorize":
        authorize(session, ret, person, answer.get("restocking_fee_pct"), note)
        send_rma(session, ret)
        fee = f", restocking fee {format(ret.restocking_fee_pct.normalize(), 'f')} %" if ret.restocking_fee_pct else ""
        return f"{ret.number} authorized{fee}; RMA sent to the customer"
    if decision == "refuse":
        refuse(session, ret, person, note)
        refusal_mail(session, ret)
        return f"{ret.number} refused"
    from ..errors import ValidationError

    raise ValidationError("decision", "must be authorize or refuse")


RETURN_AUTHORIZE = WaitKind(
    name="return_authorize", title="a return's authorization", roles=(Role.MANAGER,),
    at=at, key=case_key("authorize"), fields=ReturnAuthorizeFields, describe=describe, prefill=prefill,
    answer=answer, reminder=STUCK_WAIT, case="return", subject=case_of_key)
