"""Price lists (a product's price in another currency than the company's) and exchange rates
(from the company's currency, by day). Every change is audited with who made it (the domain
records ``price.set`` and ``rate.set``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models import Product, catalog, prices
from models.customers import currency_code
from services.company import details
from services.tabular import write_rows

from .files import Imported, import_file
from .uow import unit_of_work


def set_price(sku: str, currency: str, amount: str, by: str) -> dict[str, str]:
    """SKU's price in CURRENCY (never the company's own: that is the catalogue's price)."""
    with unit_of_work() as s:
        item = catalog.product_by_sku(s, sku)
        return prices.price_row(prices.set_price(s, item, currency, amount, by, details()["currency"]))


def list_prices(currency: str | None = None) -> list[dict[str, str]]:
    """Every price in another currency, by currency and SKU (``currency``: only that one)."""
    with unit_of_work() as s:
        query = select(prices.ProductPrice).join(Product).order_by(prices.ProductPrice.currency, Product.sku)
        if currency:
            query = query.where(prices.ProductPrice.currency == currency_code(currency))
        return [prices.price_row(p) for p in s.scalars(query)]


def import_prices(path: Path, by: str) -> Imported:
    """Set prices from a .csv or .xlsx file with columns sku, currency, price: all rows or none."""
    own = details()["currency"]
    return import_file(path, "price", lambda s, name, rows: prices.import_prices(s, name, rows, by, own), by,
                       prices.PRICE_COLUMNS, prices.PRICE_COLUMNS, {})


def export_prices(path: Path) -> int:
    """Every price in another currency written to a .csv or .xlsx file that ``import_prices``
    reads; how many prices."""
    rows = list_prices()
    write_rows(path, rows, prices.PRICE_COLUMNS, sheet="prices")
    return len(rows)


def set_rate(currency: str, rate: str, on: date, by: str) -> dict[str, str]:
    """How many CURRENCY one unit of the company's currency buys from ``on``, in force until a
    later one (the same day again corrects it)."""
    own = details()["currency"]
    with unit_of_work() as s:
        row = prices.set_rate(s, currency, rate, on, by, own)
        return {"currency": row.currency, "rate": f"{row.rate.normalize():f}", "from": own,
                "on": row.valid_from.isoformat()}


def list_rates(currency: str | None = None) -> list[dict[str, Any]]:
    """Every rate set, by currency, newest day first (``currency``: only that one)."""
    own = details()["currency"]
    with unit_of_work() as s:
        query = select(prices.ExchangeRate).order_by(prices.ExchangeRate.currency,
                                                     prices.ExchangeRate.valid_from.desc())
        if currency:
            query = query.where(prices.ExchangeRate.currency == currency_code(currency))
        return [{"currency": r.currency, "on": r.valid_from.isoformat(), "rate": f"{r.rate.normalize():f}",
                 "per": own, "set_by": r.set_by} for r in s.scalars(query)]
