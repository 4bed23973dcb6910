"""Returns (RMA): goods of a deal coming back from its customer, numbered RMA-0001.

A return is asked for (``start_return``: what comes back, from what shipped, and why), a manager
authorizes it (with a restocking fee, if any) or refuses it with a reason to the customer; the
customer gets the RMA with its number; delivery receives the goods (serial numbers checked
against what shipped to this customer); QA inspects each unit and restocks, scraps or sends it
to repair; finance credits what came back and stays (restocked or scrapped: a credit note less
the restocking fee, refunded or kept as credit); delivery ships the units repaired back to the
customer (carrier, tracking, date; a repaired unit is the customer's again, never credited). A
warranty return (``with_credit`` False) is a claim's: authorized by the engineer's diagnosis,
never credited.

Return states: requested -> authorized | refused; authorized -> received -> inspected -> closed
(once credited, if it is, and once what was repaired has shipped back: ``to_ship_back``).

What may come back is what shipped on the order line less what other returns (not refused) of it
already hold (a unit repaired and shipped back is the customer's again); the order's row is locked while a return is asked for, so two returns asked for at
the same moment are counted one after the other. Stock comes back once (the move's source key
names the return and its line), the credit note is made once (one per return).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    case,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from . import audit
from .base import Base, utcnow
from .credit_notes import CreditNote
from .errors import DomainError, NotFound, ValidationError
from .money import ZERO
from .numbering import next_number
from .orders import SalesOrder, SalesOrderLine
from .products import product_by_sku
from .states import ReturnStatus
from .text import one_line, printable, shown

if TYPE_CHECKING:
    from .crm import Customer
    from .deal import Deal
    from .serials import Serial
    from .warranty import WarrantyClaim

RETURN_NUMBER = re.compile(r"RMA-[0-9]{4,9}")
OUTCOMES = ("restock", "scrap", "repair")
REASON_MAX = 500  # a return's reason: one line of at most this many characters
OUTCOME_WORDS = {"put back into stock": "restock", "scrap it": "scrap", "send to repair": "repair"}


class ReturnOrder(Base):
    __tablename__ = "returns"
    __table_args__ = (CheckConstraint(ReturnStatus.check(), name="status"),
                      CheckConstraint("restocking_fee_pct >= 0 and restocking_fee_pct <= 100", name="fee_pct"))

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default=ReturnStatus.REQUESTED, index=True)
    reason: Mapped[str] = mapped_column(Text)
    with_credit: Mapped[bool] = mapped_column(default=True)  # False: a warranty return, never credited
    restocking_fee_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=ZERO)
    decision_note: Mapped[str] = mapped_column(Text, default="")  # the manager's words (a refusal's reason)
    flow_run_id: Mapped[str | None] = mapped_column(String(40))
    requested_by: Mapped[str] = mapped_column(String(40))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime | None]
    inspected_at: Mapped[datetime | None]
    # the units repaired, shipped back to the customer (``return_steps.ship_back``)
    back_carrier: Mapped[str] = mapped_column(String(80), default="")
    back_tracking_number: Mapped[str] = mapped_column(String(80), default="")
    shipped_back_on: Mapped[date | None]
    shipped_back_by: Mapped[str | None] = mapped_column(String(40))
    closed_at: Mapped[datetime | None]

    deal: Mapped[Deal] = relationship()
    customer: Mapped[Customer | None] = relationship()
    lines: Mapped[list[ReturnLine]] = relationship(order_by="ReturnLine.line_no", back_populates="ret")
    # the warranty claim whose diagnosis sent it back, if one (``models.warranty``)
    claim: Mapped[WarrantyClaim | None] = relationship(
        primaryjoin="ReturnOrder.id == foreign(WarrantyClaim.return_id)", viewonly=True, uselist=False)
    credit_note: Mapped[CreditNote | None] = relationship(
        primaryjoin="ReturnOrder.id == foreign(CreditNote.return_id)", viewonly=True, uselist=False)

    @property
    def is_done(self) -> bool:
        return self.status in (ReturnStatus.REFUSED, ReturnStatus.CLOSED)

    @property
    def key_prefix(self) -> str:
        """Its waits' keys start with this: ``rma-0001``."""
        return self.number.lower()

    def move(self, to: ReturnStatus, verb: str) -> None:
        self.status = ReturnStatus.move(f"return {self.number}", self.status, to, verb)

    @property
    def received_value(self) -> Decimal:
        """What came back is worth, tax included, as it was sold."""
        return sum((ln.order_line.net_for(ln.received_qty) + ln.order_line.tax_for(ln.received_qty)
                    for ln in self.lines), ZERO)

    @property
    def credited_value(self) -> Decimal:
        """What is credited, before the fee: the units that came back and stay (restocked or
        scrapped), tax included, as they were sold. A unit repaired goes back to its customer."""
        return sum((ln.order_line.net_for(ln.kept_qty) + ln.order_line.tax_for(ln.kept_qty)
                    for ln in self.lines), ZERO)

    @property
    def restocking_fee(self) -> Decimal:
        """Tax included: per tax rate, the fee's net (a share of the goods' net) and its tax."""
        from .credit_notes import restocking_fee_lines

        goods = [(ln.order_line.net_for(ln.kept_qty), ln.order_line.tax_rate) for ln in self.lines if ln.kept_qty]
        return sum((f.total for f in restocking_fee_lines(goods, self.restocking_fee_pct, self.deal.currency)), ZERO)

    @property
    def awaits_credit(self) -> bool:
        """Inspected, credited on this return, not yet, and something stays with us to credit."""
        return (self.status == ReturnStatus.INSPECTED and self.with_credit and self.credit_note is None
                and any(ln.kept_qty for ln in self.lines))

    @property
    def to_ship_back(self) -> int:
        """How many units QA sent to repair have not shipped back to the customer yet."""
        return sum(ln.repair_qty - ln.shipped_back_qty for ln in self.lines)

    def in_repair(self) -> list[tuple[ReturnLine, list[Serial]]]:
        """The lines with units sent to repair, each with their serial numbers (if any)."""
        return [(ln, [rs.serial for rs in ln.serials if rs.received and rs.outcome == "repair"])
                for ln in self.lines if ln.repair_qty]


class ReturnLine(Base):
    __tablename__ = "return_lines"
    __table_args__ = (UniqueConstraint("return_id", "line_no"),
                      CheckConstraint("quantity > 0", name="quantity_positive"),
                      CheckConstraint("received_qty >= 0 and received_qty <= quantity", name="received_in_range"),
                      CheckConstraint("restock_qty >= 0 and scrap_qty >= 0 and repair_qty >= 0",
                                      name="outcomes_not_negative"),
                      CheckConstraint("shipped_back_qty >= 0 and shipped_back_qty <= repair_qty",
                                      name="shipped_back_in_range"))

    id: Mapped[int] = mapped_column(primary_key=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("returns.id"), index=True)
    line_no: Mapped[int]
    order_line_id: Mapped[int] = mapped_column(ForeignKey("sales_order_lines.id"), index=True)
    quantity: Mapped[int]  # asked for and authorized
    received_qty: Mapped[int] = mapped_column(default=0)
    restock_qty: Mapped[int] = mapped_column(default=0)
    scrap_qty: Mapped[int] = mapped_column(default=0)
    repair_qty: Mapped[int] = mapped_column(default=0)
    shipped_back_qty: Mapped[int] = mapped_column(default=0)  # of the repaired, back with the customer
    inspection_note: Mapped[str] = mapped_column(Text, default="")

    ret: Mapped[ReturnOrder] = relationship(back_populates="lines")
    order_line: Mapped[SalesOrderLine] = relationship()
    serials: Mapped[list[ReturnLineSerial]] = relationship(order_by="ReturnLineSerial.id", back_populates="line")

    @property
    def sku(self) -> str:
        return self.order_line.sku

    @property
    def serial_numbers(self) -> list[str]:
        return [rs.serial.serial for rs in self.serials]

    @property
    def kept_qty(self) -> int:
        """The units received that stay with us (restocked or scrapped): what is credited."""
        return self.received_qty - self.repair_qty


class ReturnLineSerial(Base):
    """A serial number on a return line: named when the return was asked for, or when received."""
    __tablename__ = "return_line_serials"
    __table_args__ = (UniqueConstraint("return_line_id", "serial_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    return_line_id: Mapped[int] = mapped_column(ForeignKey("return_lines.id"), index=True)
    serial_id: Mapped[int] = mapped_column(ForeignKey("serials.id"), index=True)
    received: Mapped[bool] = mapped_column(default=False)
    outcome: Mapped[str] = mapped_column(String(10), default="")

    line: Mapped[ReturnLine] = relationship(back_populates="serials")
    serial: Mapped[Serial] = relationship()


# --- looking up ------------------------------------------------------------------------------

def return_by_number(session: Session, number: object, field: str = "return") -> ReturnOrder:
    wanted = str(number).strip().upper()
    if not RETURN_NUMBER.fullmatch(wanted):
        raise NotFound("return", printable(number, 40))
    ret = session.scalars(select(ReturnOrder).where(ReturnOrder.number == wanted)).one_or_none()
    if ret is None:
        raise NotFound("return", wanted)
    return ret


def returned_before(session: Session, order_line: SalesOrderLine, but: ReturnOrder | None = None) -> int:
    """How many of the order line other returns (not refused) hold: asked for, or received once
    received (a return that came back short frees the rest), less the units repaired and
    shipped back (the customer has them again: they may come back again)."""
    held = func.coalesce(func.sum(
        case((ReturnOrder.status.in_((ReturnStatus.REQUESTED, ReturnStatus.AUTHORIZED)), ReturnLine.quantity),
                  else_=ReturnLine.received_qty - ReturnLine.shipped_back_qty)), 0)
    query = (select(held).select_from(ReturnLine).join(ReturnOrder, ReturnLine.return_id == ReturnOrder.id)
             .where(ReturnLine.order_line_id == order_line.id, ReturnOrder.status != ReturnStatus.REFUSED))
    if but is not None:
        query = query.where(ReturnOrder.id != but.id)
    return int(session.scalar(query) or 0)


def returnable(session: Session, order_line: SalesOrderLine) -> int:
    return order_line.shipped_qty - returned_before(session, order_line)


def returns_of(session: Session, deal: Deal) -> list[ReturnOrder]:
    return list(session.scalars(select(ReturnOrder).where(ReturnOrder.deal_id == deal.id).order_by(ReturnOrder.id)))


# --- asking for a return ---------------------------------------------------------------------

def parse_lines(text: object, field: str = "lines") -> list[dict[str, Any]]:
    """``SKU:QTY[:SN1/SN2…]`` separated by commas (or several --lines): what the CLI types."""
    items = text if isinstance(text, list | tuple) else [text]
    lines: list[dict[str, Any]] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            bits = part.split(":")
            if len(bits) not in (2, 3) or not bits[0].strip():
                raise ValidationError(field, f"each line is SKU:QTY or SKU:QTY:SERIAL/SERIAL…, got {shown(part)}")
            serials = [s.strip() for s in bits[2].replace(";", "/").split("/") if s.strip()] if len(bits) == 3 else []
            lines.append({"sku": bits[0].strip(), "quantity": bits[1].strip(), "serials": serials})
    if not lines:
        raise ValidationError(field, "say what comes back: SKU:QTY[:SERIALS], e.g. CNC-5X:1:GLM-CNC-0001")
    return lines


def _shipped_serial(session: Session, deal: Deal, order_line: SalesOrderLine, text: str, field: str,
                    customer_id: int | None) -> Serial:
    """A serial of the line's product that is out with this customer (shipped on this deal)."""
    from .serials import Serial, serial_by_number

    serial = serial_by_number(session, text if ":" in text else f"{order_line.sku}:{text}", field)
    if serial.product_id != order_line.product_id:
        raise ValidationError(field, f"{text} is a serial of {serial.product.sku}, not of {order_line.sku}")
    if serial.status != "shipped" and (back := _came_back_under(session, serial)) is not None:
        raise ValidationError(field, f"{text} already came back under {back} (it is {_state_words(serial.status)})")
    if serial.status != "shipped" or serial.deal_id != deal.id or (customer_id and serial.customer_id != customer_id):
        where = (f"it is {serial.status.replace('_', ' ')}" if serial.status != "shipped" else
                 "it was shipped to another customer" if serial.customer_id != customer_id else
                 "it was shipped on another deal")
        raise ValidationError(field, f"{text} did not ship to {deal.customer_name} on {deal.number} ({where})")
    assert isinstance(serial, Serial)
    return serial


def _came_back_under(session: Session, serial: Serial) -> str | None:
    """The latest return that took the unit in (received), if one did."""
    return session.scalars(
        select(ReturnOrder.number).join(ReturnLine, ReturnLine.return_id == ReturnOrder.id)
        .join(ReturnLineSerial, ReturnLineSerial.return_line_id == ReturnLine.id)
        .where(ReturnLineSerial.serial_id == serial.id, ReturnOrder.received_at.is_not(None))
        .order_by(ReturnOrder.id.desc())).first()


def _state_words(status: str) -> str:
    return {"in_stock": "in stock", "returned": "not inspected yet", "in_repair": "in repair"}.get(
        status, status.replace("_", " "))


def _serials_of(session: Session, deal: Deal, order_line: SalesOrderLine, texts: list[str], field: str,
                customer_id: int | None, taken: set[int]) -> list[Serial]:
    found = []
    for text in texts:
        serial = _shipped_serial(session, deal, order_line, one_line(text, field, 60, required=True), field,
                                 customer_id)
        if serial.id in taken:
            raise ValidationError(field, f"{text} is named twice")
        taken.add(serial.id)
        found.append(serial)
    return found


def _on_open_return(session: Session, serial: Serial, but: ReturnOrder | None) -> str | None:
    query = (select(ReturnOrder.number).join(ReturnLine, ReturnLine.return_id == ReturnOrder.id)
             .join(ReturnLineSerial, ReturnLineSerial.return_line_id == ReturnLine.id)
             .where(ReturnLineSerial.serial_id == serial.id,
                    ReturnOrder.status.in_((ReturnStatus.REQUESTED, ReturnStatus.AUTHORIZED))))
    if but is not None:
        query = query.where(ReturnOrder.id != but.id)
    return session.scalars(query).first()


def _none_twice(texts: list[str], field: str) -> None:
    """A serial number typed twice on one line (case aside) is said so, before any count."""
    seen: set[str] = set()
    for text in texts:
        key = str(text).strip().upper()
        if key in seen:
            raise ValidationError(field, f"{str(text).strip()} is given twice")
        seen.add(key)


def start_return(session: Session, deal: Deal, lines: object, reason: object, by: str, *,
                 with_credit: bool = True) -> ReturnOrder:
    """Ask for a return of ``lines`` ({sku, quantity, serials}) of the deal; refused, with nothing
    written, for goods that did not ship on it, more than shipped less what other returns hold,
    serials that did not ship to this customer, or without a reason. The order's row is locked
    first: two returns asked for at once are counted one after the other."""
    why = one_line(reason, "reason", REASON_MAX, required=True)
    order = deal.order
    if order is None or not order.shipments:
        raise DomainError(f"{deal.number}: nothing has shipped on it, so nothing can come back")
    if with_credit and deal.invoice is None:
        raise DomainError(f"{deal.number}: its invoice is not issued yet (it is made once all has shipped); a "
                          f"return is credited against it")
    session.scalars(select(SalesOrder).where(SalesOrder.id == order.id).with_for_update()
                    .execution_options(populate_existing=True)).one()
    raw = lines if isinstance(lines, list) and all(isinstance(x, dict) for x in lines) else parse_lines(lines)
    if len(raw) > len(order.lines):
        raise ValidationError("lines", f"the order has {len(order.lines)} lines; got {len(raw)}")
    planned: list[tuple[SalesOrderLine, int, list[Serial]]] = []
    taken: set[int] = set()
    for i, item in enumerate(raw, start=1):
        where = f"lines[{i}]"
        sku = product_by_sku(session, str(item.get("sku", "")).strip(), f"{where}.sku").sku
        line = order.line_for_sku(sku, f"{where}.sku")
        if any(p[0] is line for p in planned):
            raise ValidationError(f"{where}.sku", f"{sku} is named twice; put its quantity on one line")
        from .typed import whole_number

        qty = whole_number(item.get("quantity"), f"{where}.quantity", limit=1_000_000)
        if qty < 1:
            raise ValidationError(f"{where}.quantity", "must be at least 1")
        before = returned_before(session, line)
        left = line.shipped_qty - before
        if qty > left:
            raise ValidationError(f"{where}.quantity", f"at most {left} of {sku} can come back on {deal.number}: "
                                                       f"{line.shipped_qty} shipped, {before} on earlier returns")
        texts = [s for s in (item.get("serials") or []) if str(s).strip()]
        if texts and not line.product.serialized:
            raise ValidationError(f"{where}.serials", f"{sku} has no serial numbers")
        _none_twice(texts, f"{where}.serials")
        if texts and len(texts) != qty:
            from .serials import units

            raise ValidationError(f"{where}.serials", f"{units(qty, 'unit')} and {units(len(texts), 'serial number')} "
                                                      f"given: name one per unit, or none (delivery names them when "
                                                      f"the goods arrive)")
        serials = _serials_of(session, deal, line, texts, f"{where}.serials", deal.customer_id, taken)
        for serial in serials:
            if (other := _on_open_return(session, serial, None)) is not None:
                raise ValidationError(f"{where}.serials", f"{serial.serial} is already on return {other}")
        planned.append((line, qty, serials))
    ret = ReturnOrder(number=next_number(session, "return"), deal=deal, customer_id=deal.customer_id, reason=why,
                      with_credit=with_credit, requested_by=by,
                      lines=[ReturnLine(line_no=n, order_line=line, quantity=qty,
                                        serials=[ReturnLineSerial(serial=s) for s in serials])
                             for n, (line, qty, serials) in enumerate(planned, start=1)])
    session.add(ret)
    session.flush()
    audit.record(session, by, "return.requested", deal_id=deal.id, subject=ret.number, reason=why,
                 lines=[{"sku": ln.sku, "quantity": ln.quantity, "serials": ln.serial_numbers} for ln in ret.lines])
    return ret
