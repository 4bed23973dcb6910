"""What is there and what is held: on hand less what open deals' orders hold (``reserved``), per
product and for an order's lines (``shortages``), and the stock and the ledger as a person reads
them (``dealflow stock``).

The orders and deals these read are imported where they are read: ``models.orders`` imports
``models.catalog``, which gathers this module too (tests/test_architecture.py, KNOWN).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .deal import Deal
from .orders import SalesOrder, SalesOrderLine
from .products import Product, product_by_sku
from .states import DealStatus
from .stock import StockMove


def reserved(session: Session, product_ids: list[int] | None = None) -> dict[int, int]:
    """What open deals' orders hold, per product: ordered and not yet shipped. An order reserves
    when it is made; a shipment takes its pieces out of the reservation; a deal lost or closed
    frees what it held. Derived from the orders themselves, so it cannot drift from them."""
    from sqlalchemy import func

    query = (select(SalesOrderLine.product_id, func.sum(SalesOrderLine.quantity - SalesOrderLine.shipped_qty))
             .join(SalesOrder, SalesOrder.id == SalesOrderLine.order_id).join(Deal, Deal.id == SalesOrder.deal_id)
             .where(Deal.status == DealStatus.OPEN).group_by(SalesOrderLine.product_id))
    if product_ids is not None:
        query = query.where(SalesOrderLine.product_id.in_(product_ids))
    return {pid: int(qty) for pid, qty in session.execute(query) if qty}


def availability(session: Session, product: Product) -> tuple[int, int, int]:
    """(on hand, reserved, available) for one product; available may be below zero (over-reserved)."""
    on_hand = product.stock.on_hand if product.stock is not None else 0
    held = reserved(session, [product.id]).get(product.id, 0)
    return on_hand, held, on_hand - held


def stock_rows(session: Session, skus: list[str] | None = None) -> list[dict[str, Any]]:
    """Every product's stock: on hand, reserved by open orders, available (on hand - reserved)."""
    query = select(Product).order_by(Product.sku)
    if skus:
        query = query.where(Product.sku.in_(skus))
    products = list(session.scalars(query))
    held = reserved(session)
    rows = []
    for p in products:
        on_hand = p.stock.on_hand if p.stock is not None else 0
        rows.append({"sku": p.sku, "name": p.name, "on_hand": on_hand, "reserved": held.get(p.id, 0),
                     "available": on_hand - held.get(p.id, 0), "unit_price": str(p.unit_price),
                     "offered": p.active})
    return rows


def move_rows(session: Session, sku: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The ledger, newest first: when, who, which product, how many in (+) or out (-), why and
    which document (a shipment's number, a delivery note, a count's reason)."""
    query = select(StockMove).order_by(StockMove.at.desc(), StockMove.id.desc()).limit(limit)
    if sku:
        query = query.where(StockMove.product_id == product_by_sku(session, sku).id)
    return [{"at": m.at.isoformat(timespec="seconds"), "by": m.by, "sku": m.product.sku, "quantity": m.quantity,
             "reason": m.reason, "reference": m.reference} for m in session.scalars(query)]


def shortages(session: Session, lines: list[tuple[Product, int]], exclude_order: int | None = None) -> list[str]:
    """Lines that want more than is available (on hand less what open orders hold; ``exclude_order``:
    not counting that order's own reservation), as a person reads them. An order may still be made;
    a shipment never takes stock below zero."""
    from sqlalchemy import func

    held = reserved(session, [p.id for p, _ in lines])
    if exclude_order is not None:
        own = session.execute(select(SalesOrderLine.product_id,
                                     func.sum(SalesOrderLine.quantity - SalesOrderLine.shipped_qty))
                              .join(SalesOrder, SalesOrder.id == SalesOrderLine.order_id)
                              .join(Deal, Deal.id == SalesOrder.deal_id)
                              .where(SalesOrder.id == exclude_order, Deal.status == DealStatus.OPEN)
                              .group_by(SalesOrderLine.product_id))
        for pid, qty in own:
            held[pid] = held.get(pid, 0) - int(qty or 0)
    notes = []
    for product, wanted in lines:
        on_hand = product.stock.on_hand if product.stock is not None else 0
        available = on_hand - held.get(product.id, 0)
        if wanted > available:
            notes.append(f"{product.sku}: {wanted} wanted, {max(available, 0)} available "
                         f"({on_hand} on hand, {held.get(product.id, 0)} reserved by open orders)")
    return notes
