"""Prices in other currencies (``dealflow price``) and exchange rates (``dealflow rate``). Every
change is audited with who made it."""

from __future__ import annotations

from pathlib import Path

import click

from .common import DealflowGroup, FilePath, emit, import_file, operator, table


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
    from application import prices

    out = prices.set_price(sku, currency, amount, operator())
    emit(out, as_json, f"{out['sku']}: {out['price']} {out['currency']}")


@price.command("list")
@click.option("--currency", help="Only this currency.")
@click.option("--json", "as_json", is_flag=True, help="Print the prices as JSON.")
def price_list(currency: str | None, as_json: bool) -> None:
    """Every price in another currency: SKU, currency, price."""
    from application import prices

    rows = prices.list_prices(currency)
    emit(rows, as_json, table(rows, ["sku", "currency", "price"]))


@price.command("import")
@click.argument("path", type=FilePath(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
def price_import(path: Path, as_json: bool) -> None:
    """Set prices from a .csv or .xlsx file with columns sku, currency, price: all rows or none (a
    refused file lists every bad row, column and rule). `dealflow price export` writes this format."""
    from application import prices

    import_file(path, as_json, prices.import_prices)


@price.command("export")
@click.argument("path", type=FilePath(dir_okay=False, writable=True, path_type=Path))
def price_export(path: Path) -> None:
    """Write every price in another currency to a .csv or .xlsx file (what `price import` reads)."""
    from application import prices

    written = prices.export_prices(path)
    click.echo(f"{written} prices written to {path}")


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

    from application import prices
    from models.clock import utcnow
    from models.errors import ValidationError

    try:
        day = date.fromisoformat(on.strip()) if on else utcnow().date()
    except ValueError:
        raise ValidationError("on", f"must be a date as YYYY-MM-DD, got {on!r}") from None
    out = prices.set_rate(currency, value, day, operator())
    emit(out, as_json, f"1 {out['from']} = {out['rate']} {out['currency']} from {out['on']}")


@rate.command("list")
@click.option("--currency", help="Only this currency.")
@click.option("--json", "as_json", is_flag=True, help="Print the rates as JSON.")
def rate_list(currency: str | None, as_json: bool) -> None:
    """Every rate set: currency, from which day, rate (per one unit of the company's currency)."""
    from application import prices

    rows = prices.list_rates(currency)
    emit(rows, as_json, table(rows, ["currency", "on", "rate", "per", "set_by"]))
