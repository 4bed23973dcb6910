"""Serial numbers as the service desk looks them up: one unit's record (product, where it is, its
customer, deal, order and shipment, its warranty and its history), the units of a customer or
whose warranty ends soon, and what a shipment form starts with (for the scripted scenario)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select

from models import Customer, Product, utcnow
from models.customers import customer_by_ref, same_company
from models.deal import deal_by_number
from models.errors import NotFound, ValidationError
from models.serials import Serial, period_end, serial_by_number
from models.states import SerialStatus
from models.text import one_line, shown
from models.waits import shipment

from .uow import unit_of_work


def _row(serial: Serial, today: date) -> dict[str, Any]:
    line = serial.shipment_line
    left = (serial.warranty_end - today).days if serial.warranty_end is not None else None
    return {
        "serial": serial.serial, "sku": serial.product.sku, "product": serial.product.name,
        "status": serial.status.replace("_", " "),
        "customer": serial.customer.name if serial.customer is not None else
        (serial.deal.customer_name if serial.deal is not None else None),
        "deal": serial.deal.number if serial.deal is not None else None,
        "order": line.order_line.order.number if line is not None else None,
        "shipment": line.shipment.number if line is not None else None,
        "shipped_on": serial.shipped_on.isoformat() if serial.shipped_on else None,
        "warranty_months": serial.product.warranty_months,
        "warranty_end": serial.warranty_end.isoformat() if serial.warranty_end else None,
        "days_left": max(left, 0) if left is not None else None,
        "expired": left < 0 if left is not None else None,
        "warranty": (serial.warranty_words(today) if serial.shipped_on is not None else
                     f"{serial.product.warranty_months} months from shipping" if serial.product.warranty_months
                     else "none"),
    }


def show_serial(text: str) -> dict[str, Any]:
    """One unit: its product, where it is, its customer, deal, order and shipment, the warranty
    (its end, expired or the days left), where it came in, and its history (oldest first)."""
    with unit_of_work() as s:
        serial = serial_by_number(s, text)
        today = utcnow().date()
        return {**_row(serial, today), "received_ref": serial.received_ref,
                "received_at": serial.received_at.isoformat(timespec="seconds"),
                "history": [{"at": e.at.isoformat(timespec="seconds"), "event": e.event.replace("_", " "),
                             "reference": e.reference, "deal": e.deal.number if e.deal is not None else None,
                             "by": e.by} for e in serial.events]}


def _customer(session, text: str) -> Customer:
    """A customer by number, e-mail or name (case and punctuation aside; a unique part of it will do)."""
    typed = one_line(text, "--customer", 200, required=True)
    try:
        return customer_by_ref(session, typed)
    except NotFound:
        pass
    named = [c for c in session.scalars(select(Customer).order_by(Customer.id)) if same_company(c.name, typed)]
    if not named:
        named = list(session.scalars(select(Customer).where(func.lower(Customer.name).contains(typed.lower(),
                                                                                               autoescape=True))
                                     .order_by(Customer.name).limit(6)))
    if len(named) == 1:
        return named[0]
    if not named:
        raise ValidationError("--customer", f"no customer {shown(typed)} (give their name, number or e-mail)")
    raise ValidationError("--customer", f"{shown(typed)} names more than one customer: "
                                        f"{', '.join(c.name for c in named[:5])}; give more of the name, or the number")


def list_serials(customer: str | None = None, expiring_within: str | None = None) -> list[dict[str, Any]]:
    """Units by their warranty end (soonest first; none last): a customer's (every unit shipped to
    them, also those since returned), and with ``expiring_within`` (30d, 12w, 6m) only units with
    their customer whose warranty ends from today to then."""
    with unit_of_work() as s:
        today = utcnow().date()
        until = period_end(expiring_within, today, "--expiring-within") if expiring_within is not None else None
        query = select(Serial).join(Product)
        if customer is not None:
            query = query.where(Serial.customer_id == _customer(s, customer).id)
        if until is not None:
            query = query.where(Serial.status == SerialStatus.SHIPPED, Serial.warranty_end >= today,
                                Serial.warranty_end <= until)
        query = query.order_by(Serial.warranty_end.is_(None), Serial.warranty_end, Product.sku, Serial.serial)
        return [_row(serial, today) for serial in s.scalars(query)]


def shipment_form(deal_number: str) -> list[dict[str, Any]]:
    """The lines the deal's shipment form starts with now: every line still to ship, a serialized
    one with the serial numbers it proposes (an empty one where no unit in stock has one)."""
    with unit_of_work() as s:
        return shipment.prefill(s, deal_by_number(s, deal_number), None)["lines"]
