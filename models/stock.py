"""Stock: a product's level and the append-only ledger of its moves (goods in, counts, shipments).

A level never goes below zero: the check constraint says so to the database, and ``issue``
takes a row lock first (PostgreSQL) so two shipments of one machine queue instead of racing.
What open orders hold, and the listings of stock and ledger, are ``models.availability``'s.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, utcnow
from .errors import NotFound, OutOfStock, ValidationError
from .text import one_line, shown

if TYPE_CHECKING:
    from .products import Product

MAX_QUANTITY = 1_000_000


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


def locked_level(session: Session, product: Product, create: bool = False) -> StockLevel:
    """The product's stock level, row-locked (PostgreSQL) and read fresh; ``create``: made at 0 first
    if the product has none yet."""
    if create and session.get(StockLevel, product.id) is None:
        session.add(StockLevel(product_id=product.id, on_hand=0))
        session.flush()
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
    level = locked_level(session, product, create=True)
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


def quantity(value: object, field: str, *, zero: bool = False) -> int:
    """A count of pieces a person typed: a whole number (at least 1; ``zero``: at least 0)."""
    text = str(value).strip() if not isinstance(value, bool) else "?"
    if not re.fullmatch(r"-?[0-9]{1,9}", text):
        raise ValidationError(field, f"must be a whole number, got {shown(value)}")
    number = int(text)
    low = 0 if zero else 1
    if not low <= number <= MAX_QUANTITY:
        raise ValidationError(field, f"must be between {low} and {MAX_QUANTITY:,}, got {number}")
    return number


def receive_goods(session: Session, product: Product, qty: object, ref: object, by: str) -> StockMove:
    """Goods in against a delivery reference (the supplier's delivery note): once per reference
    and product, so a receipt typed twice does not count the goods twice."""
    count = quantity(qty, "quantity")
    reference = one_line(ref, "ref", 40, required=True)
    key = f"goods-in:{product.sku}:{reference}"
    earlier = session.scalars(select(StockMove).where(StockMove.source_key == key)).one_or_none()
    if earlier is not None:
        raise ValidationError("ref", f"{reference} was already received for {product.sku} ({earlier.quantity} on "
                                     f"{earlier.at:%Y-%m-%d %H:%M} by {earlier.by}); a new delivery has its own "
                                     f"reference")
    return receive(session, product, count, reason="goods_in", source_key=key, reference=reference, by=by)


def count_stock(session: Session, product: Product, to: object, reason: object, by: str) -> StockMove | None:
    """A count: the level becomes what was counted, the difference written to the ledger with the
    reason. None when the count agrees (nothing to move)."""
    import uuid

    counted = quantity(to, "to", zero=True)
    why = one_line(reason, "reason", 40, required=True)
    level = locked_level(session, product, create=True)
    difference = counted - level.on_hand
    if difference == 0:
        return None
    numbered = product.numbered_in_stock()
    if counted < len(numbered):
        # a unit in stock with a serial number is there by name: the ones gone are named, and
        # ``models.serials.count_units`` takes them out of stock before the count
        names = ", ".join(numbered[:5]) + (", …" if len(numbered) > 5 else "")
        gone = len(numbered) - counted
        raise ValidationError("to", f"{counted} counted, but {_units(len(numbered))} of {product.sku} in stock "
                                    f"{'has a serial number' if len(numbered) == 1 else 'have serial numbers'} "
                                    f"({names}): on hand is never below the numbered units in stock; name the "
                                    f"{gone} that {'is' if gone == 1 else 'are'} gone with --serials")
    level.on_hand = counted
    move = StockMove(product_id=product.id, quantity=difference, reason="count", reference=why,
                     source_key=f"count:{product.sku}:{uuid.uuid4().hex}", by=by)
    session.add(move)
    return move


def _units(count: int) -> str:
    return f"{count} unit{'' if count == 1 else 's'}"
