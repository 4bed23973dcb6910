"""Serial numbers: one machine's record, from the day it came in to its customer and back.

A serialized product (``Product.serialized``) has a ``Serial`` per unit received with its number
(``stock receive --serials``) or shipped under a number first typed in the shipment form. Serial
numbers are unique per product. Which serials left in which shipment line is ``ShipmentSerial``
(a unit can ship, come back, be restocked and ship again to someone else); every change is a
``SerialEvent``, an append-only history that returns and warranty claims add to. The states are
``models.states.SerialStatus``; a shipped unit carries its customer, deal, shipment line, ship
date and warranty end.

Shipping serials (which may ship, which are new) is ``models.serial_shipping``'s.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, utcnow
from .errors import ValidationError
from .states import SerialStatus
from .stock import StockMove, count_stock, locked_level, quantity, receive_goods
from .text import one_line, shown

if TYPE_CHECKING:
    from .crm import Customer
    from .deal import Deal
    from .orders import ShipmentLine
    from .products import Product

SERIAL_RULE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/#+ -]{0,58}[A-Za-z0-9._/#+-])?")
# what happens to a unit, as its history says it
EVENTS = ("received", "shipped", "return_received", "restocked", "scrapped", "in_repair", "shipped_back",
          "claim_opened", "claim_closed")


class Serial(Base):
    __tablename__ = "serials"
    __table_args__ = (UniqueConstraint("product_id", "serial"), CheckConstraint(SerialStatus.check(), name="status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    serial: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(12), default=SerialStatus.IN_STOCK, index=True)
    received_ref: Mapped[str] = mapped_column(String(40), default="")  # the delivery it came in with ("" typed at shipping)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # its customer while it is with them (kept after it comes back: the last one who had it)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    shipment_line_id: Mapped[int | None] = mapped_column(ForeignKey("shipment_lines.id"))
    shipped_on: Mapped[date | None]
    warranty_end: Mapped[date | None] = mapped_column(index=True)  # None: the product has no warranty

    product: Mapped[Product] = relationship()
    customer: Mapped[Customer | None] = relationship()
    deal: Mapped[Deal | None] = relationship()
    shipment_line: Mapped[ShipmentLine | None] = relationship()
    events: Mapped[list[SerialEvent]] = relationship(order_by="SerialEvent.id", back_populates="unit")

    def move(self, to: SerialStatus, verb: str | None = None) -> None:
        """To ``to``, if the states allow it from where it is (else ``InvalidTransition``)."""
        self.status = SerialStatus.move(f"serial number {self.serial} of {self.product.sku}", self.status, to,
                                        verb or f"become {to.value.replace('_', ' ')}")

    def warranty_words(self, today: date) -> str:
        """"until 2029-01-31 (731 days left)", "ended 2026-12-31 (expired)", or "none"."""
        if self.warranty_end is None:
            return "none"
        left = (self.warranty_end - today).days
        if left < 0:
            return f"ended {self.warranty_end} (expired)"
        return f"until {self.warranty_end} ({left} day{'s' if left != 1 else ''} left)"


class ShipmentSerial(Base):
    """A serial that left in a shipment line (its history: it may ship again after a return)."""

    __tablename__ = "shipment_serials"
    __table_args__ = (UniqueConstraint("shipment_line_id", "serial_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_line_id: Mapped[int] = mapped_column(ForeignKey("shipment_lines.id"), index=True)
    serial_id: Mapped[int] = mapped_column(ForeignKey("serials.id"), index=True)

    unit: Mapped[Serial] = relationship()


class SerialEvent(Base):
    """One thing that happened to a unit, append-only: received, shipped, returned, claimed…"""

    __tablename__ = "serial_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    serial_id: Mapped[int] = mapped_column(ForeignKey("serials.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    event: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(40), default="")  # SHP-0001, RMA-0001, WC-0001, a delivery note
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"))
    by: Mapped[str] = mapped_column(String(40), default="system")

    unit: Mapped[Serial] = relationship(back_populates="events")
    deal: Mapped[Deal | None] = relationship()


def record_event(session: Session, serial: Serial, event: str, reference: str, by: str,
                 deal: Deal | None = None) -> SerialEvent:
    """A line of the unit's history (``EVENTS``)."""
    if event not in EVENTS:
        raise ValueError(f"not a serial event: {event!r}")  # a programming error, not a person's
    row = SerialEvent(unit=serial, event=event, reference=reference[:40], by=by[:40],
                      deal_id=deal.id if deal is not None else None)
    session.add(row)
    return row


# --- serial numbers as people type them --------------------------------------------------------------

def serial_text(value: object, field: str) -> str:
    text = one_line(value, field, 60, required=True)
    if not SERIAL_RULE.fullmatch(text):
        raise ValidationError(field, "a serial number is letters, digits and . _ / # + - (spaces inside), starting "
                                     f"with a letter or digit, at most 60 characters; got {shown(text)}")
    return text


def serial_texts(value: object, field: str) -> list[str]:
    """Serial numbers as typed: a list, or text with one per line or separated by commas. Blank
    entries are left out; each is checked, and none may be given twice (case aside)."""
    if value is None:
        return []
    raw = value if isinstance(value, list | tuple) else re.split(r"[,\r\n]", str(value))
    found: list[str] = []
    seen: set[str] = set()
    for entry in raw:
        if entry is None or not str(entry).strip():
            continue
        text = serial_text(entry, field)
        if text.upper() in seen:
            raise ValidationError(field, f"{text} is given twice")
        seen.add(text.upper())
        found.append(text)
    return found


def units(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def known_serials(session: Session, product: Product, texts: list[str], *, lock: bool = False) -> dict[str, Serial]:
    """The serials of ``product`` among ``texts`` (case aside), by their text in upper case, read
    fresh (``lock``: row-locked on PostgreSQL)."""
    found: dict[str, Serial] = {}
    wanted = sorted({t.upper() for t in texts})
    for start in range(0, len(wanted), 500):
        query = select(Serial).where(Serial.product_id == product.id,
                                     func.upper(Serial.serial).in_(wanted[start:start + 500]))
        if lock:
            query = query.with_for_update()
        for serial in session.scalars(query.execution_options(populate_existing=True)):
            found[serial.serial.upper()] = serial
    return found


def in_stock(session: Session, product_id: int, limit: int | None = None) -> list[Serial]:
    """A product's units in stock with their serial numbers, oldest first (first in, first out)."""
    query = select(Serial).where(Serial.product_id == product_id, Serial.status == SerialStatus.IN_STOCK) \
        .order_by(Serial.received_at, Serial.id)
    return list(session.scalars(query.limit(limit) if limit is not None else query))


def where_it_is(serial: Serial) -> str:
    """Why a unit cannot ship or be received again, in words: where it is now."""
    if serial.status == SerialStatus.SHIPPED:
        to = serial.customer.name if serial.customer is not None else (serial.deal.customer_name if serial.deal else "")
        shipment = serial.shipment_line.shipment.number if serial.shipment_line is not None else ""
        return (f"already shipped{f' to {to}' if to else ''} on {serial.shipped_on}"
                + (f" ({shipment})" if shipment else "") + " and not returned")
    if serial.status == SerialStatus.IN_STOCK:
        return f"already in stock (received {serial.received_at:%Y-%m-%d}{f', {serial.received_ref}' if serial.received_ref else ''})"
    return {SerialStatus.RETURNED: "returned and not back in stock yet", SerialStatus.SCRAPPED: "scrapped",
            SerialStatus.IN_REPAIR: "in repair"}.get(SerialStatus(serial.status), serial.status)


def _serialized(product: Product, texts: list[str]) -> None:
    if texts and not product.serialized:
        raise ValidationError("serials", f"{product.sku} is not serialized: receive it without serial numbers (or "
                                         f"mark it with `dealflow product edit {product.sku} --serialized`)")


def receive_serials(session: Session, product: Product, texts: list[str], reference: str, by: str) -> list[Serial]:
    """Units of ``product`` received with these serial numbers (checked: ``serial_texts``), after
    their stock came in (the level is locked, so two receipts of one number queue): each new to
    the product, else refused naming it. The units go into stock, oldest first by their order here."""
    _serialized(product, texts)
    known = known_serials(session, product, texts, lock=True)
    for text in texts:
        if text.upper() in known:
            raise ValidationError("serials", f"{product.sku} {known[text.upper()].serial} is {where_it_is(known[text.upper()])}")
    now = utcnow()
    made = []
    for i, text in enumerate(texts):
        # one receipt's units keep their order (first in, first out) even within one clock tick
        serial = Serial(product=product, serial=text, status=SerialStatus.IN_STOCK, received_ref=reference,
                        received_at=now + timedelta(microseconds=i))
        session.add(serial)
        record_event(session, serial, "received", reference, by)
        made.append(serial)
    session.flush()
    return made


def receive_units(session: Session, product: Product, qty: object, ref: object, by: str,
                  serials: object = None) -> tuple[StockMove, list[Serial]]:
    """Goods in (``stock.receive_goods``: once per delivery reference), with the units' serial
    numbers if given: one per unit, each new to the product. A serialized product may come in
    without them (they are typed when it ships); nothing is written if any is refused."""
    texts = serial_texts(serials, "serials")
    count = quantity(qty, "quantity")
    _serialized(product, texts)
    if texts and len(texts) != count:
        raise ValidationError("serials", f"{units(count, 'unit')} received and {units(len(texts), 'serial number')} "
                                         "given: give one per unit")
    move = receive_goods(session, product, count, ref, by)
    return move, receive_serials(session, product, texts, move.reference, by)


def count_units(session: Session, product: Product, to: object, reason: object, by: str,
                serials: object = None) -> tuple[StockMove | None, list[Serial]]:
    """A count (``stock.count_stock``) naming, with ``serials``, the numbered units that are gone:
    each in stock, at most as many as the count takes out; they leave the stock scrapped, their
    history giving the count's reason. A count below the numbered units in stock must name the
    difference (the count refuses it otherwise); nothing is written if anything is refused."""
    texts = serial_texts(serials, "serials")
    counted = quantity(to, "to", zero=True)
    why = one_line(reason, "reason", 40, required=True)
    _serialized(product, texts)
    if not texts:
        return count_stock(session, product, counted, why, by), []
    level = locked_level(session, product, create=True)
    out = level.on_hand - counted
    if len(texts) > out:
        raise ValidationError("serials", f"{units(len(texts), 'serial number')} named, but the count takes "
                                         f"{units(max(out, 0), 'unit')} out ({level.on_hand} on hand, {counted} "
                                         "counted): name only the units that are gone")
    known = known_serials(session, product, texts, lock=True)
    for text in texts:
        serial = known.get(text.upper())
        if serial is None:
            raise ValidationError("serials", f"{product.sku} has no unit numbered {shown(text)} (a unit without a "
                                             "serial number is counted out without naming it)")
        if serial.status != SerialStatus.IN_STOCK:
            raise ValidationError("serials", f"{product.sku} {serial.serial} is {where_it_is(serial)}: "
                                             "only a unit in stock is counted out")
    gone = [known[text.upper()] for text in texts]
    left = [n for n in product.numbered_in_stock() if n.upper() not in known]
    if counted < len(left):
        names = ", ".join(left[:5]) + (", …" if len(left) > 5 else "")
        raise ValidationError("serials", f"{counted} counted and {units(len(left), 'numbered unit')} of "
                                         f"{product.sku} not named ({names}): name {len(left) - counted} more "
                                         "that are gone")
    for serial in gone:
        serial.move(SerialStatus.SCRAPPED, "be counted out")
        record_event(session, serial, "scrapped", why, by)
    session.flush()
    return count_stock(session, product, counted, why, by), gone


# --- finding units ---------------------------------------------------------------------------------

def serial_by_number(session: Session, text: object, field: str = "serial") -> Serial:
    """The unit with this serial number, case aside. Serial numbers are unique per product: one
    that two products share is picked as "SKU:SERIAL"."""
    from .products import Product

    typed = one_line(text, field, 101, required=True)
    sku, _, number = typed.rpartition(":") if ":" in typed else ("", "", typed)
    number, sku = number.strip(), sku.strip()
    if not number:
        raise ValidationError(field, f"give a serial number (or SKU:SERIAL), got {shown(typed)}")
    query = select(Serial).join(Product).where(func.upper(Serial.serial) == number.upper()).order_by(Product.sku)
    if sku:
        query = query.where(func.upper(Product.sku) == sku.upper())
    found = list(session.scalars(query.limit(20)))
    if not found:
        raise ValidationError(field, f"no serial number {shown(number)}" + (f" of {sku}" if sku else ""))
    if len(found) > 1:
        skus = ", ".join(s.product.sku for s in found)
        raise ValidationError(field, f"{found[0].serial} is a serial number of {skus}: say which, as "
                                     f"{found[0].product.sku}:{found[0].serial}")
    return found[0]


def serials_shipped_to(session: Session, deal: Deal) -> list[Serial]:
    """The units with the customer on ``deal`` now (shipped on it, not returned)."""
    from .products import Product

    return list(session.scalars(select(Serial).join(Product).where(
        Serial.deal_id == deal.id, Serial.status == SerialStatus.SHIPPED).order_by(Product.sku, Serial.serial)))


def serials_of_lines(session: Session, shipment_line_ids: list[int]) -> dict[int, list[str]]:
    """{shipment line id: the serial numbers that left in it} (as they shipped then)."""
    found: dict[int, list[str]] = {}
    if not shipment_line_ids:
        return found
    rows = session.execute(select(ShipmentSerial.shipment_line_id, Serial.serial).join(Serial).where(
        ShipmentSerial.shipment_line_id.in_(shipment_line_ids)).order_by(ShipmentSerial.id))
    for line_id, serial in rows:
        found.setdefault(line_id, []).append(serial)
    return found


# --- warranty -------------------------------------------------------------------------------------

def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day if it has no such day: Jan 31 + 1 = Feb 28)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


PERIOD = re.compile(r"([0-9]{1,4})\s*([dwmy])")
PERIOD_WORDS = {"d": "days", "w": "weeks", "m": "months", "y": "years"}


def period_end(value: object, today: date, field: str) -> date:
    """The last day of a period from ``today`` typed as 30d, 12w, 6m or 1y (days, weeks, months, years)."""
    text = str(value or "").strip().lower()
    match = PERIOD.fullmatch(text)
    if match is None or int(match[1]) > 3650:
        raise ValidationError(field, "must be a number of days, weeks, months or years, like 30d, 12w, 6m or 1y "
                                     f"(at most 3650), got {shown(value)}")
    count, unit = int(match[1]), match[2]
    if unit in ("d", "w"):
        return today + timedelta(days=count * (7 if unit == "w" else 1))
    return add_months(today, count * (12 if unit == "y" else 1))
