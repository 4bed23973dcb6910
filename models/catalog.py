"""The catalogue: products, their stock and what open orders hold. Its rooms, lowest first:

- ``models.stock``: a product's level and the append-only ledger (``receive``, ``issue``, counts);
- ``models.products``: ``Product`` and its rules, ``product_by_sku``, ``sku_of``, adding, changing
  and retiring products;
- ``models.product_import``: a catalogue file, all or none;
- ``models.availability``: what open orders hold (``reserved``, ``shortages``), the stock and the
  ledger as listed.

This module gathers their names for the importers that have always used them.
"""

from __future__ import annotations

from .availability import availability, move_rows, reserved, shortages, stock_rows
from .product_import import import_products
from .products import (
    CHECK_RULE,
    LABEL_SEPARATOR,
    MAX_CHECKS,
    NO,
    PRODUCT_FIELDS,
    SKU_RULE,
    STANDARD_CHECKLIST,
    YES,
    Product,
    add_product,
    catalogue,
    checklist_items,
    checklist_title,
    edit_product,
    product_by_sku,
    product_row,
    product_values,
    retire_product,
    sku_of,
    valid_sku,
    yes_no,
)
from .stock import (
    MAX_QUANTITY,
    StockLevel,
    StockMove,
    count_stock,
    issue,
    locked_level,
    quantity,
    receive,
    receive_goods,
)

__all__ = [
    "CHECK_RULE", "LABEL_SEPARATOR", "MAX_CHECKS", "MAX_QUANTITY", "NO", "PRODUCT_FIELDS", "SKU_RULE",
    "STANDARD_CHECKLIST", "YES", "Product", "StockLevel", "StockMove", "add_product", "availability", "catalogue",
    "checklist_items", "checklist_title", "count_stock", "edit_product", "import_products", "issue",
    "locked_level", "move_rows", "product_by_sku", "product_row", "product_values", "quantity", "receive",
    "receive_goods", "reserved", "retire_product", "shortages", "sku_of", "stock_rows", "valid_sku", "yes_no",
]
