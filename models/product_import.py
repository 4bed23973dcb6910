"""A catalogue file (``dealflow product import``), all or none: every broken rule of every row is
gathered first, and only a file without any is written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .base import utcnow
from .errors import FileRefused, ValidationError
from .products import PRODUCT_FIELDS, Product, keep_own_checks, product_values, valid_sku
from .stock import StockLevel


def import_products(session: Session, name: str, rows: list[tuple[int, dict[str, Any]]]) -> dict[str, list[str]]:
    """A catalogue file's rows ((row number, {column: text})), all or none: a new SKU is added, a
    known one set to what its row says (an empty ``needs_qa`` is yes; an empty ``offered`` leaves
    it as it is). Every broken rule of every row is gathered first (``FileRefused``); only a file
    without any is written. Returns the SKUs added, changed and unchanged."""
    problems: list[tuple[int, str, str]] = []
    plans: list[tuple[int, str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    named = [str(raw.get("sku") or "").strip() for _, raw in rows]
    existing = set(session.scalars(select(Product.sku).where(Product.sku.in_(named)))) if named else set()
    for row_no, raw in rows:
        try:
            sku = valid_sku(raw.get("sku"))
        except ValidationError as exc:
            problems.append((row_no, "sku", exc.rule))
            sku = None
        if sku is not None and sku in seen:
            problems.append((row_no, "sku", f"{sku} is also on row {seen[sku]}"))
        elif sku is not None:
            seen[sku] = row_no
        given = {k: raw.get(k) for k in PRODUCT_FIELDS if k != "sku" and k in raw}
        if not str(given.get("needs_qa") or "").strip():
            if sku in existing:  # a known product: QA as it is, unless the row lists checks
                given.pop("needs_qa", None)
                if not str(given.get("checklist") or "").strip():
                    given.pop("checklist", None)
            else:
                given["needs_qa"] = "yes"
        values, broken = product_values(given, new=True)
        problems += [(row_no, exc.field, exc.rule) for exc in broken]
        if sku is not None:
            plans.append((row_no, sku, values))
    if problems:
        raise FileRefused(name, problems, len(rows))
    known = {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(list(seen))))}
    result: dict[str, list[str]] = {"added": [], "changed": [], "unchanged": []}
    for _row_no, sku, values in plans:
        product = known.get(sku)
        if product is None:
            product = Product(sku=sku, **values)
            product.retired_at = None if product.active is not False else utcnow()
            product.stock = StockLevel(on_hand=0)
            session.add(product)
            result["added"].append(sku)
            continue
        changed = False
        keep_own_checks(product, values)
        for column, value in values.items():
            if getattr(product, column) != value:
                setattr(product, column, value)
                changed = True
        if "active" in values and changed:
            product.retired_at = None if product.active else (product.retired_at or utcnow())
        result["changed" if changed else "unchanged"].append(sku)
    session.flush()
    return result
