"""Delivery ships a return's repaired units back to their customer: the carrier, the tracking
number and the day they left; each unit is the customer's again, its warranty as it was, and the
customer gets the delivery note. Nothing of it is credited (``return_steps.ship_back``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import Field
from sqlalchemy.orm import Session

from ..markdown import Markdown, table
from ..reminders import STUCK_WAIT
from ..return_steps import ship_back
from ..returns import ReturnOrder
from ..staff import Role, StaffUser
from ..states import ReturnStatus
from ..typed import day_of, notes_of
from .forms import Fields
from .kind import WaitKind
from .of_case import case_key, case_of_key, header


class ReturnShipBackFields(Fields):
    """Ship the repaired units back to the customer: carrier, tracking and the day they left."""
    carrier: str = Field(title="Carrier", description="Carrier name, e.g. DHL Freight.")
    tracking_number: str = Field(title="Tracking number", description="The carrier's tracking number.")
    shipped_on: date | None = Field(title="Date shipped", default=None,
                                    description="The day the units left (empty: today).")
    note: str = Field(title="Note", default="", description="What was repaired, how it was packed (for the team).")


def at(ret: ReturnOrder) -> dict[str, Any] | None:
    return {} if ret.status == ReturnStatus.INSPECTED and ret.to_ship_back else None


def in_repair(ret: ReturnOrder) -> Markdown:
    """The units in repair, each with its serial number and warranty end."""
    rows = []
    for ln, units in ret.in_repair():
        rows += ([[ln.sku, ln.order_line.description, 1, u.serial, str(u.warranty_end or "none")] for u in units]
                 or [[ln.sku, ln.order_line.description, ln.repair_qty - ln.shipped_back_qty, "—", "—"]])
    return table(["Product", "Description", "Units", "Serial number", "Warranty until"], rows,
                 align=["---", "---", "---:", "---", "---"])


def describe(session: Session, ret: ReturnOrder) -> Markdown:
    customer = ret.deal.customer
    address = (customer.shipping_address if customer is not None else ret.deal.lead.address) or "(no address on file)"
    return Markdown("ship the repaired units of {} back to {}: the carrier, the tracking number and the day they "
                    "left. They go back as they are listed (each to its customer again, its warranty as it was), "
                    "and the customer gets the delivery note. Ship to: {}\n\n{}\n\n{}").format(
        ret.number, ret.deal.customer_name, address, header(ret), in_repair(ret))


def answer(session: Session, ret: ReturnOrder, person: StaffUser, answer: dict[str, Any]) -> str:
    ship_back(session, ret, person, answer.get("carrier"), answer.get("tracking_number"),
              day_of(answer, "shipped_on"), notes_of(answer, "note", 2000))
    went = ", ".join(f"{ln.shipped_back_qty} × {ln.sku}" for ln in ret.lines if ln.shipped_back_qty)
    return f"{ret.number} shipped back: {went} ({ret.back_carrier} {ret.back_tracking_number})"


RETURN_SHIP_BACK = WaitKind(
    name="return_ship_back", title="shipping repaired units back", roles=(Role.DELIVERY,),
    at=at, key=case_key("ship-back"), fields=ReturnShipBackFields, describe=describe,
    answer=answer, reminder=STUCK_WAIT, case="return", subject=case_of_key)
