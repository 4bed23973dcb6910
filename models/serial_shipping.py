"""Which units leave in a shipment: the serial numbers given per line, checked and recorded in the
shipment's own transaction (``SalesOrder.ship``), so a refused one leaves nothing behind and an
accepted one is recorded exactly once with the rest of the shipment.

The rules, for a line of a serialized product: one serial number per unit shipped, none twice;
each is a unit of that product in stock, or a number not known at all (a unit received without
its serial number, typed when it ships: at most as many as there are such units on hand). A unit
that already shipped and has not come back, or is scrapped or in repair, is refused naming it.
A line of a product that is not serialized carries none.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import ValidationError
from .serials import (
    Serial,
    ShipmentSerial,
    add_months,
    in_stock,
    known_serials,
    record_event,
    serial_texts,
    units,
    where_it_is,
)
from .states import SerialStatus
from .stock import StockLevel

if TYPE_CHECKING:
    from .deal import Deal
    from .orders import ShipmentLine
    from .products import Product

Chosen = list[tuple[Serial | None, str]]  # per unit: the known serial (None: new) and its number as given


def serials_given(product: Product, value: object, field: str) -> list[str]:
    """A shipment line's serial numbers as typed (each checked, none twice); refused on a line of a
    product that is not serialized."""
    texts = serial_texts(value, field)
    if texts and not product.serialized:
        raise ValidationError(field, f"{product.sku} is not serialized: leave its serial numbers empty")
    return texts


def units_to_ship(session: Session, product: Product, texts: list[str], quantity: int, field: str) -> Chosen:
    """Which units of ``product`` leave, once its stock was issued for this line (the product's
    stock level is locked then: two shipments of one product queue, so one unit cannot leave twice)."""
    if len(texts) != quantity:
        raise ValidationError(field, f"{product.sku} is serialized: give one serial number per unit, "
                                     f"{units(quantity, 'unit')} and {units(len(texts), 'serial number')} given"
                                     + (_to_choose(session, product) if len(texts) < quantity else ""))
    known = known_serials(session, product, texts, lock=True)
    stocked = session.scalar(select(func.count()).select_from(Serial).where(
        Serial.product_id == product.id, Serial.status == SerialStatus.IN_STOCK)) or 0
    level = session.get(StockLevel, product.id)
    # the units on hand before this line that have no serial number yet: the new numbers are theirs
    unnumbered = max(0, (level.on_hand if level is not None else 0) + quantity - stocked)
    chosen: Chosen = []
    new = 0
    for text in texts:
        serial = known.get(text.upper())
        if serial is not None and serial.status != SerialStatus.IN_STOCK:
            raise ValidationError(field, f"{product.sku} {serial.serial} is {where_it_is(serial)}")
        if serial is None:
            new += 1
            if new > unnumbered:
                raise ValidationError(field, _not_in_stock(session, product, text, unnumbered))
        chosen.append((serial, text))
    return chosen


def _to_choose(session: Session, product: Product) -> str:
    """The units in stock to name (as the shipment form proposes them: oldest first), for a
    door that gave too few (``dealflow answer`` without lines)."""
    shown_stock = [s.serial for s in in_stock(session, product.id, limit=6)]
    return f" (in stock, oldest first: {', '.join(shown_stock[:5])}{', …' if len(shown_stock) > 5 else ''})" \
        if shown_stock else ""


def _not_in_stock(session: Session, product: Product, text: str, unnumbered: int) -> str:
    shown_stock = [s.serial for s in in_stock(session, product.id, limit=6)]
    listed = ", ".join(shown_stock[:5]) + (", …" if len(shown_stock) > 5 else "") or "none"
    if unnumbered:
        return (f"{product.sku}: {text} is not in stock, and only {units(unnumbered, 'unit')} on hand "
                f"{'has' if unnumbered == 1 else 'have'} no serial number yet (in stock: {listed})")
    return f"{product.sku}: {text} is not a serial number in stock (in stock: {listed})"


def ship_units(session: Session, line: ShipmentLine, chosen: Chosen, deal: Deal, by: str, on: date) -> None:
    """The units of ``line`` leave: each with its customer, deal, shipment line, ship date and
    warranty end, in the line's serials and the unit's history. A new number becomes a unit here."""
    product = line.order_line.product
    months = product.warranty_months
    for serial, text in chosen:
        if serial is None:
            serial = Serial(product=product, serial=text, status=SerialStatus.IN_STOCK, received_ref="")
            session.add(serial)
        serial.move(SerialStatus.SHIPPED, "ship")
        serial.customer_id, serial.deal_id, serial.shipment_line = deal.customer_id, deal.id, line
        serial.shipped_on = on
        serial.warranty_end = add_months(on, months) if months else None
        session.add(ShipmentSerial(shipment_line_id=line.id, unit=serial))
        record_event(session, serial, "shipped", line.shipment.number, by, deal)
