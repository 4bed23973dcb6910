"""Sales orders, QA inspections, pick release, the sales receipt and shipments.

Order states: awaiting_qa -> released -> partially_shipped -> shipped; cancelled before the first shipment.
A failed QA attempt leaves the order awaiting_qa (rework, then the next attempt).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, utcnow
from .errors import DuplicateLine, InvalidTransition, OverShipment, ValidationError
from .numbering import next_number
from .pricing import PricedLine, Totals
from .products import Product, product_by_sku
from .serial_shipping import serials_given, ship_units, units_to_ship
from .staff import StaffUser
from .states import OrderStatus
from .stock import issue
from .text import shown
from .typed import MAX_QUANTITY, whole_number

if TYPE_CHECKING:
    from .deal import Deal
    from .estimates import EstimateRevision



class SalesOrder(Base):
    __tablename__ = "sales_orders"
    __table_args__ = (
        CheckConstraint(OrderStatus.check(), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), unique=True)
    estimate_revision_id: Mapped[int] = mapped_column(ForeignKey("estimate_revisions.id"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=OrderStatus.AWAITING_QA, index=True)
    created_by: Mapped[str] = mapped_column(String(40))
    customer_po: Mapped[str] = mapped_column(String(60), default="", server_default="")  # the customer's PO number
    # what QA checks on this order, fixed when it is made (None: an order made before: its products' lists)
    qa_checks: Mapped[list[Any] | None] = mapped_column(default=None)
    # the deposit asked, fixed when the order is made (``models.deposits``): % of the order (0: none),
    # paid before "shipping" or before QA "release"
    deposit_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0), server_default="0")
    deposit_before: Mapped[str] = mapped_column(String(10), default="shipping", server_default="shipping")
    cancel_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    deal: Mapped[Deal] = relationship(back_populates="order")
    estimate_revision: Mapped[EstimateRevision] = relationship()
    lines: Mapped[list[SalesOrderLine]] = relationship(order_by="SalesOrderLine.line_no", back_populates="order")
    inspections: Mapped[list[QAInspection]] = relationship(order_by="QAInspection.attempt", back_populates="order")
    pick_release: Mapped[PickRelease | None] = relationship(back_populates="order")
    shipments: Mapped[list[Shipment]] = relationship(order_by="Shipment.seq", back_populates="order")

    @property
    def totals(self) -> Totals:
        return Totals(self.lines, self.deal.currency)

    @property
    def qa_passed(self) -> bool:
        return any(i.passed for i in self.inspections)

    @property
    def is_fully_shipped(self) -> bool:
        return all(line.remaining == 0 for line in self.lines)

    @property
    def qa_checklist(self) -> list[str]:
        """What QA checks on this order: every item of its products' checklists, once, in order, as
        they were when the order was made (a product edited later does not change it)."""
        if self.qa_checks is not None:
            return list(self.qa_checks)
        items: list[str] = []
        for line in self.lines:
            items += [i for i in line.product.checklist if i not in items]
        return items

    @property
    def needs_qa(self) -> bool:
        """Whether QA signs it off before release: not an order of only accessories and spare parts."""
        return bool(self.qa_checklist)

    @property
    def deposit_terms(self):
        from .deposit_terms import DepositTerms

        return DepositTerms(self.deposit_pct, self.deposit_before)

    def waits_for_deposit(self) -> bool:
        """Whether the order stands at the stage its deposit blocks and the deposit is not paid:
        QA and release (``release``) or the first shipment (``shipping``)."""
        deposit = self.deal.deposit_invoice
        if not self.deposit_terms.asked or deposit is None or deposit.is_settled:
            return False
        if self.status == OrderStatus.AWAITING_QA:
            return self.deposit_before == "release"
        # either way it is paid before the first shipment (an order with nothing for QA to check
        # is released when it is made)
        return (self.status == OrderStatus.RELEASED and self.pick_release is not None
                and self.pick_release.receipt is not None)

    def deposit_unpaid(self) -> bool:
        """Whether the deposit asked is not paid yet (nor credited): the rule, whatever stage the
        plan is at. Nothing ships, and with a deposit before release nothing leaves QA, until it is."""
        if not self.deposit_terms.asked:
            return False
        deposit = self.deal.deposit_invoice
        return deposit is None or not deposit.is_settled

    def cancel(self, reason: str) -> None:
        """Cancelled before its first shipment (nothing shipped: the deal's reservation ends)."""
        if self.shipments:
            raise InvalidTransition(f"order {self.number}", f"{self.status} ({len(self.shipments)} shipment(s))",
                                    "cancel")
        self.status = OrderStatus.move(f"order {self.number}", self.status, OrderStatus.CANCELLED, "cancel")
        self.cancel_reason = reason

    def line_for_sku(self, sku: str, field: str) -> SalesOrderLine:
        for line in self.lines:
            if line.sku == sku:
                return line
        raise ValidationError(field, f"{shown(sku)} is not on order {self.number}")

    def record_inspection(self, inspector: StaffUser, passed: bool, notes: str,
                          checklist: dict[str, bool]) -> QAInspection:
        if self.status != OrderStatus.AWAITING_QA:
            raise InvalidTransition(f"order {self.number}", self.status, "record a QA inspection")
        if not passed and not notes.strip():
            raise ValidationError("notes", "a failed inspection must say what failed")
        if passed and checklist and not all(checklist.values()):
            failed = ", ".join(k for k, ok in checklist.items() if not ok)
            raise ValidationError("checklist", f"cannot pass with failed checks: {failed}")
        inspection = QAInspection(attempt=len(self.inspections) + 1, passed=passed,
                                  inspector=inspector, notes=notes, checklist=dict(checklist))
        self.inspections.append(inspection)
        return inspection

    def release_for_picking(self, by: StaffUser) -> PickRelease:
        to = OrderStatus.move(f"order {self.number}", self.status, OrderStatus.RELEASED, "release for picking")
        if self.needs_qa and not self.qa_passed:
            raise InvalidTransition(f"order {self.number}", "not QA-passed", "release for picking")
        if self.deposit_before == "release" and self.deposit_unpaid():
            raise InvalidTransition(f"order {self.number}", "waiting for its deposit", "release for picking")
        self.status = to
        self.pick_release = PickRelease(released_by=by)
        return self.pick_release

    def ship(self, session: Session, lines: list[dict[str, Any]], carrier: str, tracking: str,
             by: StaffUser) -> Shipment:
        """A shipment of ``lines`` ({sku, quantity, serials}; none: all that is left), numbered,
        with the stock issued for it and, for a serialized product, the units that leave
        (``models.serial_shipping``: one serial number per unit). A line at 0 stays for a later
        shipment. Refused, with nothing written, for a SKU not on the order or twice, a quantity
        below 0 or over what is left to ship of its line (``OverShipment``) or over what is on
        hand (``OutOfStock``), serial numbers that do not fit the units shipped, and before
        anything is numbered for an order that may not ship (its state, its deposit unpaid)."""
        self.check_can_ship()
        if len(lines) > len(self.lines):
            raise ValidationError("lines", f"the order has {len(self.lines)} lines; got {len(lines)}")
        if not lines:  # no lines: everything still to ship
            lines = [{"sku": ln.sku, "quantity": ln.remaining} for ln in self.lines if ln.remaining]
        planned: list[tuple[SalesOrderLine, int, str, list[str]]] = []
        for i, raw in enumerate(lines, start=1):
            where = f"Line {i}"
            sku = product_by_sku(session, str(raw.get("sku", "")).strip(), f"{where}, product").sku  # as ordered
            line = self.line_for_sku(sku, f"{where}, product")
            if any(p[0] is line for p in planned):
                raise DuplicateLine(sku, f"{where}, product")
            qty = whole_number(raw.get("quantity"), f"{where}, quantity", limit=MAX_QUANTITY)
            if qty < 0:
                raise ValidationError(f"{where}, quantity", "must not be negative (0: not in this shipment)")
            serials = serials_given(line.product, raw.get("serials"), f"{where}, serials")
            if qty == 0:
                continue  # the line stays for a later shipment
            if qty > line.remaining:
                raise OverShipment(sku, qty, line.remaining, line.quantity, line.shipped_qty, f"{where}, quantity")
            planned.append((line, qty, where, serials))
        if not planned:
            raise ValidationError("lines", "nothing to ship: every line is at 0 (leave the lines out to ship all "
                                           "that is left)")
        number = next_number(session, "shipment")
        chosen = []
        for line, qty, where, serials in planned:
            issue(session, line.product, qty, reason="shipment", reference=number,
                  source_key=f"{number}:{line.sku}", by=by.handle, field=f"{where}, quantity")
            # with the product's stock locked: a unit cannot leave in two shipments at once
            chosen.append(units_to_ship(session, line.product, serials, qty, f"{where}, serials")
                          if line.product.serialized else [])
        shipment = Shipment(order=self, seq=len(self.shipments) + 1, number=number, carrier=carrier,
                            tracking_number=tracking, shipped_by=by,
                            lines=[ShipmentLine(order_line=line, quantity=qty) for line, qty, _, _ in planned])
        session.add(shipment)
        self.record_shipment_lines(shipment)
        session.flush()
        for shipment_line, units in zip(shipment.lines, chosen, strict=True):
            ship_units(session, shipment_line, units, self.deal, by.handle, shipment.at.date())
        session.flush()
        return shipment

    def check_can_ship(self) -> None:
        if self.status not in (OrderStatus.RELEASED, OrderStatus.PARTIALLY_SHIPPED):
            raise InvalidTransition(f"order {self.number}", self.status, "ship")
        if self.deposit_unpaid():
            raise InvalidTransition(f"order {self.number}", "waiting for its deposit", "ship")

    def record_shipment_lines(self, shipment: Shipment) -> None:
        self.check_can_ship()
        for sl in shipment.lines:
            sl.order_line.shipped_qty += sl.quantity
        self.status = OrderStatus.move(f"order {self.number}", self.status, OrderStatus.SHIPPED if self.is_fully_shipped
                                       else OrderStatus.PARTIALLY_SHIPPED, "ship")


class SalesOrderLine(PricedLine, Base):
    __tablename__ = "sales_order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_no"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("shipped_qty >= 0 and shipped_qty <= quantity", name="shipped_within_ordered"),
        CheckConstraint("invoiced_qty >= 0 and invoiced_qty <= quantity", name="invoiced_within_ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_orders.id"), index=True)
    line_no: Mapped[int]
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    shipped_qty: Mapped[int] = mapped_column(default=0)
    invoiced_qty: Mapped[int] = mapped_column(default=0)

    order: Mapped[SalesOrder] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()

    def deal_of_line(self):
        return self.order.deal if self.order is not None else None

    @property
    def remaining(self) -> int:
        return self.quantity - self.shipped_qty


class QAInspection(Base):
    __tablename__ = "qa_inspections"
    __table_args__ = (UniqueConstraint("order_id", "attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_orders.id"), index=True)
    attempt: Mapped[int]
    passed: Mapped[bool]
    inspector_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    notes: Mapped[str] = mapped_column(Text, default="")
    checklist: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    order: Mapped[SalesOrder] = relationship(back_populates="inspections")
    inspector: Mapped[StaffUser] = relationship()


class PickRelease(Base):
    __tablename__ = "pick_releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_orders.id"), unique=True)
    released_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    order: Mapped[SalesOrder] = relationship(back_populates="pick_release")
    released_by: Mapped[StaffUser] = relationship()
    receipt: Mapped[SalesReceipt | None] = relationship(back_populates="pick_release")


class SalesReceipt(Base):
    """Created automatically when an order is released for picking: one per pick release."""

    __tablename__ = "sales_receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    pick_release_id: Mapped[int] = mapped_column(ForeignKey("pick_releases.id"), unique=True)
    amount: Mapped[Decimal]
    at: Mapped[datetime] = mapped_column(default=utcnow)

    pick_release: Mapped[PickRelease] = relationship(back_populates="receipt")


class Shipment(Base):
    __tablename__ = "shipments"
    __table_args__ = (UniqueConstraint("order_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_orders.id"), index=True)
    seq: Mapped[int]
    carrier: Mapped[str] = mapped_column(String(80))
    tracking_number: Mapped[str] = mapped_column(String(80))
    shipped_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    order: Mapped[SalesOrder] = relationship(back_populates="shipments")
    shipped_by: Mapped[StaffUser] = relationship()
    lines: Mapped[list[ShipmentLine]] = relationship(back_populates="shipment", order_by="ShipmentLine.id")


class ShipmentLine(Base):
    __tablename__ = "shipment_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("sales_order_lines.id"))
    quantity: Mapped[int]

    shipment: Mapped[Shipment] = relationship(back_populates="lines")
    order_line: Mapped[SalesOrderLine] = relationship()
