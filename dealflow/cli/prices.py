"""Prices in other currencies (``dealflow price``) and exchange rates (``dealflow rate``). Every
change is audited with who made it."""

from __future__ import annotations

from pathlib import Path

import click

from .common import DealflowGroup, FilePath, company_currency, emit, import_file, operator, table


@click.group(cls=DealflowGroup)
def price() -> None:
    """Prices in other currencies than the company's (price lists): a deal in that currency takes
    them; a product without one is priced at the day's exchange rate (`dealflow rate`)."""


@price.command("set")
@click.argument("sku")
@click.argument("currency")
@click.argument("amount")
@click.option("--json", "as_json", is_flag=True, help="Print the price as JSON.")
def price_set(sku: str, currency: str, amount: str, as_json: bool) -> None:
    """Set SKU's price in CURRENCY (e.g. `price set CNC-LATHE-2000 JPY 7280000`). Audited; estimates
    already drafted keep their prices."""
    from models.catalog import product_by_sku
    from models.prices import price_row, set_price
    from services.db import session_scope

    with session_scope() as s:
        row = set_price(s, product_by_sku(s, sku), currency, amount, operator(), company_currency())
        out = price_row(row)
        s.commit()
    emit(out, as_json, f"{out['sku']}: {out['price']} {out['currency']}")


@price.command("list")
@click.option("--currency", help="Only this currency.")
@click.option("--json", "as_json", is_flag=True, help="Print the prices as JSON.")
def price_list(currency: str | None, as_json: bool) -> None:
    """Every price in another currency: SKU, currency, price."""
    from sqlalchemy import select

    from models import Product
    from models.customers import currency_code
    from models.prices import ProductPrice, price_row
    from services.db import session_scope

    with session_scope() as s:
        query = select(ProductPrice).join(Product).order_by(ProductPrice.currency, Product.sku)
        if currency:
            query = query.where(ProductPrice.currency == currency_code(currency))
        rows = [price_row(p) for p in s.scalars(query)]
    emit(rows, as_json, table(rows, ["sku", "currency", "price"]))


@price.command("import")
@click.argument("path", type=FilePath(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
def price_import(path: Path, as_json: bool) -> None:
    """Set prices from a .csv or .xlsx file with columns sku, currency, price: all rows or none (a
    refused file lists every bad row, column and rule). `dealflow price export` writes this format."""
    from models.prices import PRICE_COLUMNS, import_prices

    own = company_currency()
    import_file(path, as_json, "price", lambda s, name, rows: import_prices(s, name, rows, operator(), own),
                PRICE_COLUMNS, PRICE_COLUMNS, {})


@price.command("export")
@click.argument("path", type=FilePath(dir_okay=False, writable=True, path_type=Path))
def price_export(path: Path) -> None:
    """Write every price in another currency to a .csv or .xlsx file (what `price import` reads)."""
    from sqlalchemy import select

    from models import Product
    from models.prices import PRICE_COLUMNS, ProductPrice, price_row
    from services.db import session_scope
    from services.tabular import write_rows

    with session_scope() as s:
        rows = [price_row(p) for p in s.scalars(select(ProductPrice).join(Product)
                                                 .order_by(ProductPrice.currency, Product.sku))]
    write_rows(path, rows, PRICE_COLUMNS, sheet="prices")
    click.echo(f"{len(rows)} prices written to {path}")


@click.group(cls=DealflowGroup)
def rate() -> None:
    """Exchange rates from the company's currency, by date: an estimate in another currency prices a
    product without a price of its own at the rate of the day it is drafted, and keeps that rate;
    reports convert each document back at its own."""


@rate.command("set")
@click.argument("currency")
@click.argument("value", metavar="RATE")
@click.option("--on", "on", metavar="YYYY-MM-DD", help="From which day (default: today, UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print the rate as JSON.")
def rate_set(currency: str, value: str, on: str | None, as_json: bool) -> None:
    """How many CURRENCY one unit of the company's currency buys from a day on (e.g. `rate set JPY
    150.25 --on 2026-12-07`): in force until a later one. Audited."""
    from datetime import date

    from models.clock import utcnow
    from models.errors import ValidationError
    from models.prices import set_rate
    from services.db import session_scope

    try:
        day = date.fromisoformat(on.strip()) if on else utcnow().date()
    except ValueError:
        raise ValidationError("on", f"must be a date as YYYY-MM-DD, got {on!r}") from None
    own = company_currency()
    with session_scope() as s:
        row = set_rate(s, currency, value, day, operator(), own)
        out = {"currency": row.currency, "rate": f"{row.rate.normalize():f}", "from": own,
               "on": row.valid_from.isoformat()}
        s.commit()
    emit(out, as_json, f"1 {own} = {out['rate']} {out['currency']} from {out['on']}")


@rate.command("list")
@click.option("--currency", help="Only this currency.")
@click.option("--json", "as_json", is_flag=True, help="Print the rates as JSON.")
def rate_list(currency: str | None, as_json: bool) -> None:
    """Every rate set: currency, from which day, rate (per one unit of the company's currency)."""
    from sqlalchemy import select

    from models.customers import currency_code
    from models.prices import ExchangeRate
    from services.db import session_scope

    own = company_currency()
    with session_scope() as s:
        query = select(ExchangeRate).order_by(ExchangeRate.currency, ExchangeRate.valid_from.desc())
        if currency:
            query = query.where(ExchangeRate.currency == currency_code(currency))
        rows = [{"currency": r.currency, "on": r.valid_from.isoformat(), "rate": f"{r.rate.normalize():f}",
                 "per": own, "set_by": r.set_by} for r in s.scalars(query)]
    emit(rows, as_json, table(rows, ["currency", "on", "rate", "per", "set_by"]))
