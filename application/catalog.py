"""The catalogue (products: add, edit, retire, a file in and out) and stock (what is on hand and
reserved, goods in, counts, the ledger). Every change is audited with who made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from models import Product, audit, catalog
from models.serials import count_units, receive_units
from services.tabular import write_rows

from .files import Imported, import_file
from .uow import unit_of_work

# a catalogue file, as `product import` reads it and `product export` writes it
FILE_COLUMNS = ("sku", "name", "price", "tax_rate", "needs_qa", "checklist", "description", "offered", "serialized",
                "warranty_months")
FILE_REQUIRED = ("sku", "name", "price", "tax_rate")
FILE_ALIASES = {"unit_price": "price"}


def add_product(sku: str, fields: dict[str, Any], by: str) -> dict[str, Any]:
    """A new product (name, price, tax_rate, needs_qa, checklist, description, serialized,
    warranty_months), with no stock yet."""
    with unit_of_work() as s:
        item = catalog.add_product(s, {"sku": sku, **fields})
        audit.record(s, by, "product.added", subject=item.sku, price=item.unit_price,
                     tax_rate=item.tax_rate, checklist=item.qa_checklist, serialized=item.serialized,
                     warranty_months=item.warranty_months)
        return catalog.product_row(item)


def edit_product(sku: str, fields: dict[str, Any], by: str) -> dict[str, Any]:
    """The product as it is now, with ``changed``: {column: [before, after]} (audited if any); a
    product made serialized says how many of its units on hand have no serial number yet
    (``unnumbered``: theirs are typed when they ship)."""
    with unit_of_work() as s:
        item = catalog.product_by_sku(s, sku)
        changed = catalog.edit_product(s, item, fields)
        if changed:
            audit.record(s, by, "product.changed", subject=item.sku, **changed)
        row = {**catalog.product_row(item), "changed": changed}
        if "serialized" in changed and item.serialized:
            row["unnumbered"] = row["on_hand"] - len(item.numbered_in_stock())
        return row


def retire_product(sku: str, by: str, undo: bool = False) -> dict[str, Any]:
    """No longer offered in new estimates (``undo``: offered again); ``changed`` is False when it
    already was so (then nothing is recorded)."""
    with unit_of_work() as s:
        item = catalog.product_by_sku(s, sku)
        changed = catalog.retire_product(item, undo=undo)
        if changed:
            audit.record(s, by, "product.offered" if undo else "product.retired", subject=item.sku)
        return {"sku": item.sku, "changed": changed}


def list_products(everything: bool = False) -> list[dict[str, Any]]:
    """The products offered in new estimates, by SKU (``everything``: also the retired ones)."""
    with unit_of_work() as s:
        query = select(Product).order_by(Product.sku)
        return [catalog.product_row(p) for p in s.scalars(query if everything else query.where(Product.active))]


def show_product(sku: str) -> dict[str, Any]:
    with unit_of_work() as s:
        return catalog.product_row(catalog.product_by_sku(s, sku))


def import_products(path: Path, by: str) -> Imported:
    """Add and update products from a .csv or .xlsx file: all rows or none."""
    return import_file(path, "product", catalog.import_products, by, FILE_COLUMNS, FILE_REQUIRED, FILE_ALIASES)


def export_products(path: Path, everything: bool = False) -> int:
    """The catalogue written to a .csv or .xlsx file that ``import_products`` reads; how many products."""
    rows = list_products(everything)
    write_rows(path, rows, FILE_COLUMNS, sheet="products")
    return len(rows)


def list_stock(skus: list[str] | None = None) -> list[dict[str, Any]]:
    """Per product: on hand, reserved by open orders, available; an unknown SKU is refused."""
    with unit_of_work() as s:
        for sku in skus or ():  # an unknown SKU is one clear line, not an empty table
            catalog.product_by_sku(s, sku)
        return catalog.stock_rows(s, list(skus or ()) or None)


def receive_stock(sku: str, quantity: str, ref: str, by: str, serials: str | list[str] | None = None) -> dict[str, Any]:
    """Goods in against a delivery reference (once per reference and product); ``serials``: the
    units' serial numbers (a serialized product's; one per unit), as a list or comma-separated."""
    with unit_of_work() as s:
        item = catalog.product_by_sku(s, sku)
        move, units = receive_units(s, item, quantity, ref, by, serials)
        numbers = [u.serial for u in units]
        audit.record(s, move.by, "stock.received", subject=item.sku, quantity=move.quantity, ref=move.reference,
                     **({"serials": numbers} if numbers else {}))
        on_hand, held, available = catalog.availability(s, item)
        return {"sku": item.sku, "received": move.quantity, "ref": move.reference, "on_hand": on_hand,
                "reserved": held, "available": available, "serialized": item.serialized, "serials": numbers}


def count_stock(sku: str, to: str, reason: str, by: str, serials: str | list[str] | None = None) -> dict[str, Any]:
    """A count: on hand becomes what was counted, the difference goes to the ledger (0: it agrees).
    ``serials``: the numbered units that are gone (a serialized product's), scrapped by the count;
    a count below the numbered units in stock must name them."""
    with unit_of_work() as s:
        item = catalog.product_by_sku(s, sku)
        move, gone = count_units(s, item, to, reason, by, serials)
        numbers = [u.serial for u in gone]
        if move is None:
            s.rollback()  # the count agrees: nothing is written, not even a level at 0 for a product without one
        else:
            audit.record(s, move.by, "stock.counted", subject=item.sku, difference=move.quantity, reason=reason,
                         **({"serials": numbers} if numbers else {}))
        on_hand, held, available = catalog.availability(s, item)
        return {"sku": item.sku, "difference": move.quantity if move else 0, "on_hand": on_hand, "reserved": held,
                "available": available, "serials_gone": numbers}


def list_stock_moves(sku: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The stock ledger, newest first."""
    with unit_of_work() as s:
        return catalog.move_rows(s, sku, limit)
