"""Products, stock levels and the append-only stock ledger.

A level never goes below zero: the check constraint says so to the database, and ``issue``
takes a row lock first (PostgreSQL) so two shipments of one machine queue instead of racing.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, utcnow
from .errors import NotFound, OutOfStock, ValidationError
from .text import one_line


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("unit_price >= 0", name="price_not_negative"),
        CheckConstraint("tax_rate >= 0 and tax_rate <= 100", name="tax_rate_pct"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    unit_price: Mapped[Decimal]
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))  # percent
    # what QA checks on this product before it is released; None: the standard machine checklist,
    # []: nothing (an accessory, a spare part)
    qa_checklist: Mapped[list[Any] | None] = mapped_column(default=None)
    stock: Mapped[StockLevel | None] = relationship(back_populates="product")

    @property
    def checklist(self) -> tuple[str, ...]:
        return STANDARD_CHECKLIST if self.qa_checklist is None else tuple(self.qa_checklist)

    def label(self, currency: str) -> str:
        """How a person picks it from a list: "CNC-LATHE-2000 — CNC lathe GL-2000 — 48,500.00 USD —
        4 available" (``sku_of`` reads the SKU back)."""
        available = self.stock.on_hand if self.stock is not None else 0
        return LABEL_SEPARATOR.join((self.sku, self.name, f"{self.unit_price:,.2f} {currency}",
                                     f"{available} available"))


STANDARD_CHECKLIST = ("spindle_runout", "safety_guards", "emergency_stop", "hydraulics", "control_software")
LABEL_SEPARATOR = " — "


def sku_of(value: object) -> str:
    """The SKU in a product's label (or the SKU itself): what a catalogue select answers."""
    return str(value).split(LABEL_SEPARATOR, 1)[0].strip() if isinstance(value, str) else value


def checklist_title(item: str) -> str:
    return item.replace("_", " ").capitalize()


def catalogue(session: Session) -> list[Product]:
    """The products offered in new estimates, by SKU."""
    return list(session.scalars(select(Product).order_by(Product.sku)))


class StockLevel(Base):
    __tablename__ = "stock_levels"
    __table_args__ = (CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),)

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(default=0)
    product: Mapped[Product] = relationship(back_populates="stock")


class StockMove(Base):
    """One line of the ledger. ``source_key`` makes a move for one business event unique."""

    __tablename__ = "stock_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    quantity: Mapped[int]  # + in, - out
    reason: Mapped[str] = mapped_column(String(30))
    reference: Mapped[str] = mapped_column(String(40), default="")
    source_key: Mapped[str] = mapped_column(String(80), unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[str] = mapped_column(String(40), default="system")

    product: Mapped[Product] = relationship()


def product_by_sku(session: Session, sku: str, field: str = "sku") -> Product:
    sku = one_line(sku, field, 40, required=True)  # checked before the database sees it
    product = session.scalars(select(Product).where(Product.sku == sku)).one_or_none()
    if product is None:
        raise ValidationError(field, f"unknown SKU {sku!r}")
    return product


def locked_level(session: Session, product: Product) -> StockLevel:
    level = session.scalars(
        select(StockLevel).where(StockLevel.product_id == product.id).with_for_update()
    ).one_or_none()
    if level is None:
        raise NotFound("stock level for", product.sku)
    session.refresh(level)  # the lock may have waited for another writer: read what it wrote
    return level


def receive(session: Session, product: Product, quantity: int, *, reason: str, source_key: str,
            reference: str = "", by: str = "system") -> StockMove:
    if quantity <= 0:
        raise ValidationError("quantity", "must be greater than zero")
    level = session.get(StockLevel, product.id)
    if level is None:
        level = StockLevel(product_id=product.id, on_hand=0)
        session.add(level)
        session.flush()
    level = locked_level(session, product)
    level.on_hand += quantity
    move = StockMove(product_id=product.id, quantity=quantity, reason=reason,
                     reference=reference, source_key=source_key, by=by)
    session.add(move)
    return move


def issue(session: Session, product: Product, quantity: int, *, reason: str, source_key: str,
          reference: str = "", by: str = "system", field: str = "quantity") -> StockMove:
    if quantity <= 0:
        raise ValidationError(field, "must be greater than zero")
    level = locked_level(session, product)
    if level.on_hand < quantity:
        raise OutOfStock(product.sku, quantity, level.on_hand, field=field)
    level.on_hand -= quantity
    move = StockMove(product_id=product.id, quantity=-quantity, reason=reason,
                     reference=reference, source_key=source_key, by=by)
    session.add(move)
    return move
