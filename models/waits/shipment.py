"""Delivery confirms a shipment: the carrier, the tracking number and what left the warehouse
(partial shipments until all is shipped); the stock goes down by what shipped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..catalog import StockLevel
from ..deal import Deal, Wait
from ..documents import shipment_context
from ..markdown import Markdown
from ..orders import PickRelease, SalesOrder
from ..reminders import Reminder, ReminderRule, ReminderRules, not_sent_yet, staff_with
from ..sending import issue_document
from ..serials import in_stock
from ..staff import Role, StaffUser
from ..states import OrderStatus, WaitStatus
from ..typed import line_of
from .forms import Fields, pick
from .kind import WaitKind


class ShipmentLineFields(BaseModel):
    sku: str = Field(title="SKU", description="A SKU of the order that is still to ship.")
    quantity: int = Field(title="Quantity", description="How many in this shipment (0: not in this shipment); at most "
                                                        "what is left to ship and in stock.",
                          json_schema_extra={"minimum": 0})
    serials: list[str] = Field(title="Serial numbers", default_factory=list,
                               description="A serialized product's: one per unit in this shipment (it starts with the "
                                           "oldest in stock; an empty one is typed from the unit's plate). Other "
                                           "products: none.")


class ShipmentFields(Fields):
    """Confirm a shipment: carrier, tracking and what left the warehouse."""
    carrier: str = Field(title="Carrier", description="Carrier name, e.g. DHL Freight.")
    tracking_number: str = Field(title="Tracking number", description="The carrier's tracking number.")
    lines: list[ShipmentLineFields] = Field(title="Lines", default_factory=list,
                                            description="What is in this shipment (it starts with all that is left); "
                                                        "for a partial shipment lower the quantities: a line at 0 is "
                                                        "not in this shipment.")

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        pick(schema, "lines", ShipmentLineFields, cls.choices.get("ship", []))


def at(deal: Deal) -> dict[str, Any] | None:
    order = deal.order
    return None if order.is_fully_shipped else {"seq": len(order.shipments) + 1}


def describe(session: Session, deal: Deal) -> Markdown:
    order = deal.order
    parts, serialized = [], []
    for ln in order.lines:
        if ln.remaining:
            level = session.get(StockLevel, ln.product_id)
            parts.append(Markdown("{}: {} to ship, {} in stock").format(ln.sku, ln.remaining,
                                                                      level.on_hand if level else 0))
            if ln.product.serialized:
                serialized.append(ln.sku)
    text = Markdown("confirm a shipment of {}: the carrier, the tracking number and what is in it (the form "
                    "starts with all that is left to ship; a line at 0 is not in this shipment). ").format(
        order.number) + Markdown("; ").join(parts) + Markdown(".")
    if serialized:
        text += Markdown("\n\n**Serial numbers**, one per unit shipped, for {}: the form starts with the oldest "
                         "units in stock; type any left empty from the unit's plate, and for a lower quantity remove "
                         "as many.").format(Markdown(", ").join(Markdown("{}").format(s) for s in serialized))
    return text


def proposed_serials(session: Session, deal: Deal) -> dict[int, list[str]]:
    """{order line id: the serial numbers its form starts with}: per serialized line still to ship,
    its product's oldest units in stock, as many as are left to ship. Shipments being confirmed
    at the same time do not start with the same units: the deals that waited for theirs first
    (an open shipment wait opened earlier) are given theirs first."""
    mine = deal.open_wait
    earlier = select(Wait).where(Wait.step == "shipment", Wait.status == WaitStatus.OPEN, Wait.deal_id != deal.id)
    if mine is not None:
        earlier = earlier.where(Wait.id < mine.id)
    queue = [w.deal for w in session.scalars(earlier.order_by(Wait.id))] + [deal]
    wanted = [(d, ln) for d in queue if d.order is not None for ln in d.order.lines
              if ln.remaining and ln.product.serialized]
    pools = {pid: [s.serial for s in in_stock(session, pid)] for pid in {ln.product_id for _, ln in wanted}}
    proposed: dict[int, list[str]] = {}
    for d, ln in wanted:
        pool = pools[ln.product_id]
        taken, pools[ln.product_id] = pool[:ln.remaining], pool[ln.remaining:]
        if d is deal:
            proposed[ln.id] = taken
    return proposed


def prefill(session: Session, deal: Deal, typed: dict[str, Any] | None) -> dict[str, Any]:
    """What was typed, else every line still to ship; a serialized line with a serial number per
    unit (``proposed_serials``; empty where no unit in stock has one: typed from its plate)."""
    if typed is not None:
        return typed
    proposed = proposed_serials(session, deal)
    lines = []
    for ln in deal.order.lines:
        if ln.remaining:
            line: dict[str, Any] = {"sku": ln.sku, "quantity": ln.remaining}
            if ln.product.serialized:
                given = proposed.get(ln.id, [])
                line["serials"] = given + [""] * (ln.remaining - len(given))
            lines.append(line)
    return {"lines": lines}


def choices(session: Session, deal: Deal) -> dict[str, Any]:
    """``ship``: the SKUs left to ship."""
    return {"ship": [ln.sku for ln in deal.order.lines if ln.remaining]}


def answer(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    order = deal.order
    carrier = line_of(answer, "carrier", 80, required=True)
    tracking = line_of(answer, "tracking_number", 80, required=True)
    shipment = order.ship(session, answer.get("lines") or [], carrier, tracking, person)
    issue_document(session, deal, "shipment", shipment.number, shipment_context(shipment),
                   f"Shipped: {shipment.number} for order {order.number} ({carrier} {tracking})")
    shipped = ", ".join(f"{sl.quantity} × {sl.order_line.sku}" for sl in shipment.lines)
    return f"{shipment.number}: {shipped}" + (" (complete)" if order.is_fully_shipped else " (partial)")


def unshipped(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    """Delivery, when an order released N days ago is not all shipped."""
    today = now.date()
    orders = session.scalars(select(SalesOrder).join(PickRelease).where(
        SalesOrder.status.in_((OrderStatus.RELEASED, OrderStatus.PARTIALLY_SHIPPED)),
        PickRelease.at <= now - timedelta(days=rules.unshipped_days),
        not_sent_yet("unshipped", SalesOrder.id, today))).all()
    for order in orders:
        days = (now - order.pick_release.at).days
        left = [f"{ln.remaining} × {ln.sku} still to ship" for ln in order.lines if ln.remaining]
        for person in staff_with(session, Role.DELIVERY):
            yield Reminder("unshipped", order.id, person.email, today,
                           f"Released {days} days ago, not shipped: {order.number} ({order.deal.customer_name})",
                           "emails/staff_reminder",
                           {"name": person.name, "title": f"Order {order.number} was released {days} days ago",
                            "lines": left, "number": order.number}, deal_id=order.deal_id, about=order.number)


SHIPMENT = WaitKind(
    name="shipment", title="a shipment", roles=(Role.DELIVERY,),
    at=at, key=lambda facts: f"shipment-{facts['seq']}",
    fields=ShipmentFields, describe=describe, prefill=prefill, choices=choices, answer=answer,
    reminder=ReminderRule("unshipped", unshipped))
