"""Delivery receives a return's goods: what arrived, with one serial number per unit of a
serialized product (those the RMA names; where it names none, any that shipped to this customer
on this deal)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ..markdown import Markdown
from ..reminders import STUCK_WAIT
from ..return_steps import receive
from ..returns import ReturnOrder
from ..staff import Role, StaffUser
from ..states import ReturnStatus
from ..typed import notes_of
from .forms import Fields
from .kind import WaitKind
from .of_case import case_key, case_of_key, goods, header


class ReceivedLineFields(BaseModel):
    sku: str = Field(title="SKU", description="A SKU of the return.")
    quantity: int = Field(title="Quantity received", description="How many arrived (0: none of it).",
                          json_schema_extra={"minimum": 0})
    serials: list[str] = Field(title="Serial numbers", default_factory=list,
                               description="One per unit received, for a product with serial numbers.")


class ReturnReceiveFields(Fields):
    """Take the returned goods in: what arrived, with serial numbers."""
    lines: list[ReceivedLineFields] = Field(title="Lines", default_factory=list,
                                            description="What arrived (it starts with what was authorized).")
    note: str = Field(title="Note", default="", description="The state of the packaging, what was missing.")


def at(ret: ReturnOrder) -> dict[str, Any] | None:
    return {} if ret.status == ReturnStatus.AUTHORIZED else None


def describe(session: Session, ret: ReturnOrder) -> Markdown:
    return Markdown("receive the goods of {} (RMA sent to {}): say what arrived; a product with serial numbers "
                    "needs one per unit: those the RMA names, or where it names none, any shipped to this customer.\n\n{}"
                    "\n\n{}").format(
        ret.number, ret.deal.customer_name, header(ret), goods(ret))


def prefill(session: Session, ret: ReturnOrder, typed: dict[str, Any] | None) -> dict[str, Any]:
    if typed is not None:
        return typed
    return {"lines": [{"sku": ln.sku, "quantity": ln.quantity, "serials": ln.serial_numbers} for ln in ret.lines]}


def answer(session: Session, ret: ReturnOrder, person: StaffUser, answer: dict[str, Any]) -> str:
    receive(session, ret, person, list(answer.get("lines") or []), notes_of(answer, "note", 2000))
    got = ", ".join(f"{ln.received_qty} × {ln.sku}" for ln in ret.lines if ln.received_qty)
    return f"{ret.number} received: {got}"


RETURN_RECEIVE = WaitKind(
    name="return_receive", title="receiving a return", roles=(Role.DELIVERY,),
    at=at, key=case_key("receive"), fields=ReturnReceiveFields, describe=describe, prefill=prefill,
    answer=answer, reminder=STUCK_WAIT, case="return", subject=case_of_key)
