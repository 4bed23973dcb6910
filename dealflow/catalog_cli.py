"""``dealflow product``: the catalogue as the person who keeps it changes it (add, edit, retire,
import and export a file). Every change is audited with who made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .cli import DealflowGroup, FilePath, _emit, _fail, _operator, _table

LIST_COLUMNS = ["sku", "name", "price", "tax_rate", "needs_qa", "on_hand", "offered"]
FILE_COLUMNS = ("sku", "name", "price", "tax_rate", "needs_qa", "checklist", "description", "offered")


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "needs_qa": "yes" if row["needs_qa"] else "no", "offered": "yes" if row["offered"] else "retired"}


def _priced(price: Any, currency: str | None = None) -> str:
    """A catalogue price as people read it: in the company's currency, rounded to it (whole yen)."""
    from models.money import amount_text

    return amount_text(price, currency or _default_currency())


def _product_text(row: dict[str, Any]) -> str:
    checks = row["checklist"] or ("standard machine checklist" if row["needs_qa"] else "none (no QA)")
    return "\n".join([
        f"{row['sku']}  {row['name']}" + ("" if row["offered"] else "  (retired: not offered in new estimates)"),
        f"  price      {_priced(row['price'])} (tax {row['tax_rate']} %)",
        f"  QA         {'yes' if row['needs_qa'] else 'no'}; checks: {checks}",
        f"  on hand    {row['on_hand']}",
        *([f"  about      {row['description']}"] if row["description"] else []),
    ])


def _given(**options: Any) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


@click.group(cls=DealflowGroup)
def product() -> None:
    """The catalogue: products, their prices, tax and QA checks."""


def _product_options(new: bool):
    def wrap(fn):
        options = [
            click.option("--name", required=new, help="What documents and the estimate form call it."),
            click.option("--price", required=new, help="Unit price, at most 2 decimals (e.g. 48500 or 33.33)."),
            click.option("--tax-rate", "tax_rate", required=new, help="Tax rate in percent (0-100), e.g. 18."),
            click.option("--needs-qa/--no-qa", "needs_qa", default=None,
                         help="Whether QA checks it before release (default for a new product: yes). "
                              "Accessories and spare parts: --no-qa; an order of only such goes out without QA."),
            click.option("--checklist", help="QA's checks, comma-separated (\"spindle runout, safety guards\"); "
                                             "with QA and none given: the standard machine checklist."),
            click.option("--description", help="A longer description (optional)."),
            click.option("--json", "as_json", is_flag=True, help="Print the product as JSON."),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn
    return wrap


@product.command("add")
@click.argument("sku")
@_product_options(new=True)
def product_add(sku: str, as_json: bool, **options: Any) -> None:
    """Add a product (it has no stock until `dealflow stock receive`)."""
    from models import audit
    from models.catalog import add_product, product_row
    from services.db import session_scope

    with session_scope() as s:
        item = add_product(s, {"sku": sku, **_given(**options)})
        row = product_row(item)
        audit.record(s, _operator(), "product.added", subject=item.sku, price=item.unit_price,
                     tax_rate=item.tax_rate, checklist=item.qa_checklist)
        s.commit()
    _emit(row, as_json, f"added {row['sku']}: {row['name']}, {_priced(row['price'])} (tax {row['tax_rate']} %), "
                        f"QA {'yes' if row['needs_qa'] else 'no'}; receive stock with "
                        f"`dealflow stock receive {row['sku']} QTY --ref REF`")


@product.command("edit")
@click.argument("sku")
@_product_options(new=False)
def product_edit(sku: str, as_json: bool, **options: Any) -> None:
    """Change a product. A new price applies to estimate revisions drafted from now on; revisions
    already sent, orders and invoices keep the price they were made with."""
    from models import audit
    from models.catalog import edit_product, product_by_sku, product_row
    from services.db import session_scope

    given = _given(**options)
    if not given:
        _fail("nothing to change: give at least one of --name, --price, --tax-rate, --needs-qa/--no-qa, "
              "--checklist, --description")
    with session_scope() as s:
        item = product_by_sku(s, sku)
        changed = edit_product(s, item, given)
        if changed:
            audit.record(s, _operator(), "product.changed", subject=item.sku, **changed)
        row = product_row(item)
        s.commit()
    what = ", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in changed.items()) or "nothing changed"
    _emit({**row, "changed": changed}, as_json, f"{row['sku']}: {what}")


@product.command("list")
@click.option("--all", "everything", is_flag=True, help="Also the retired products.")
@click.option("--json", "as_json", is_flag=True, help="Print the products as JSON.")
def product_list(everything: bool, as_json: bool) -> None:
    """The products offered in new estimates (--all: also the retired ones)."""
    from sqlalchemy import select

    from models import Product
    from models.catalog import product_row
    from services.db import session_scope

    with session_scope() as s:
        query = select(Product).order_by(Product.sku)
        rows = [product_row(p) for p in s.scalars(query if everything else query.where(Product.active))]
    currency = _default_currency()
    _emit(rows, as_json, _table([{**_shown(r), "price": _priced(r["price"], currency)} for r in rows], LIST_COLUMNS))


@product.command("show")
@click.argument("sku")
@click.option("--json", "as_json", is_flag=True, help="Print the product as JSON.")
def product_show(sku: str, as_json: bool) -> None:
    """One product: price, tax, QA checks, stock."""
    from models.catalog import product_by_sku, product_row
    from services.db import session_scope

    with session_scope() as s:
        row = product_row(product_by_sku(s, sku))
    _emit(row, as_json, _product_text(row))


@product.command("retire")
@click.argument("sku")
@click.option("--undo", is_flag=True, help="Offer it again.")
def product_retire(sku: str, undo: bool) -> None:
    """No longer offer a product in new estimates. Documents already issued, and open orders, keep it."""
    from models import audit
    from models.catalog import product_by_sku, retire_product
    from services.db import session_scope

    with session_scope() as s:
        item = product_by_sku(s, sku)
        if retire_product(item, undo=undo):
            audit.record(s, _operator(), "product.offered" if undo else "product.retired", subject=item.sku)
            s.commit()
            click.echo(f"{item.sku}: " + ("offered again" if undo else "retired; no longer offered in new estimates"))
        else:
            click.echo(f"{item.sku}: already " + ("offered" if undo else "retired"))


@product.command("import")
@click.argument("path", type=FilePath(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
def product_import(path: Path, as_json: bool) -> None:
    """Add and update products from a .csv or .xlsx file: all rows or none.

    Columns: sku, name, price, tax_rate (required), needs_qa (yes/no; empty: yes for a new product,
    as it is for a known one), checklist (comma-separated checks; empty with QA: the standard machine
    checklist, or a known product's own), description, offered (yes/no; empty: as it is). A known
    SKU gets its row's name, price, tax rate and description; a refused file lists every bad row,
    column and rule, and nothing is written. `dealflow product export` writes this format."""
    from models.catalog import import_products

    _import_file(path, as_json, "product", import_products, FILE_COLUMNS, ("sku", "name", "price", "tax_rate"),
                 {"unit_price": "price"})


def _import_file(path: Path, as_json: bool, kind: str, load, columns: tuple[str, ...], required: tuple[str, ...],
                 aliases: dict[str, str]) -> None:
    """Read the file, hand its rows to ``load`` (all or none), audit, commit; a refused file: every
    problem on its own line, then the summary, exit 2."""
    from models import FileRefused, audit
    from services.db import session_scope
    from services.tabular import read_rows

    try:
        rows = read_rows(path, columns, required, aliases=aliases)
        with session_scope() as s:
            result = load(s, path.name, rows)
            audit.record(s, _operator(), f"{kind}.imported", subject=path.name, rows=len(rows),
                         added=len(result["added"]), changed=result["changed"][:200])
            s.commit()
    except FileRefused as refused:
        for line in refused.lines:
            click.echo(f"error: {line}", err=True)
        _fail(str(refused))
    counts = {k: len(v) for k, v in result.items()}
    _emit(result, as_json, f"{path.name}: {len(rows)} rows; {counts['added']} added, {counts['changed']} changed, "
                           f"{counts['unchanged']} unchanged")


@product.command("export")
@click.argument("path", type=FilePath(dir_okay=False, writable=True, path_type=Path))
@click.option("--all", "everything", is_flag=True, help="Also the retired products.")
def product_export(path: Path, everything: bool) -> None:
    """Write the catalogue to a .csv or .xlsx file, in the format `dealflow product import` reads."""
    from sqlalchemy import select

    from models import Product
    from models.catalog import product_row
    from services.db import session_scope
    from services.tabular import write_rows

    with session_scope() as s:
        query = select(Product).order_by(Product.sku)
        rows = [product_row(p) for p in s.scalars(query if everything else query.where(Product.active))]
    write_rows(path, rows, FILE_COLUMNS, sheet="products")
    click.echo(f"{len(rows)} products written to {path}")


STOCK_COLUMNS = ["sku", "name", "on_hand", "reserved", "available", "note"]


def _stock_note(row: dict[str, Any]) -> str:
    if row["available"] < 0:
        return f"over-reserved by {-row['available']}"
    return "" if row["offered"] else "retired"


@click.group(cls=DealflowGroup, invoke_without_command=True)
@click.option("--sku", "skus", multiple=True, help="Only this product (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print stock as JSON.")
@click.pass_context
def stock(ctx: click.Context, skus: tuple[str, ...], as_json: bool) -> None:
    """Stock per product: on hand, reserved by open orders, available (on hand - reserved).

    An order reserves its quantities when it is made; a shipment takes its pieces out of stock and
    out of the reservation; a lost deal frees what it held. Orders may reserve more than is on hand
    (shown as over-reserved): a shipment never takes stock below zero."""
    if ctx.invoked_subcommand is not None:
        return
    from models.catalog import product_by_sku, stock_rows
    from services.db import session_scope

    with session_scope() as s:
        for sku in skus:  # an unknown SKU is one clear line, not an empty table
            product_by_sku(s, sku)
        rows = stock_rows(s, list(skus) or None)
    _emit(rows, as_json, _table([{**r, "note": _stock_note(r)} for r in rows], STOCK_COLUMNS))


@stock.command("receive")
@click.argument("sku")
@click.argument("quantity")
@click.option("--ref", required=True, help="The delivery's reference (the supplier's delivery note); once per "
                                           "reference and product, so a receipt typed twice counts once.")
@click.option("--json", "as_json", is_flag=True, help="Print the stock move as JSON.")
def stock_receive(sku: str, quantity: str, ref: str, as_json: bool) -> None:
    """Goods in: QUANTITY pieces of SKU arrived."""
    from models import audit
    from models.catalog import availability, product_by_sku, receive_goods
    from services.db import session_scope

    with session_scope() as s:
        item = product_by_sku(s, sku)
        move = receive_goods(s, item, quantity, ref, _operator())
        audit.record(s, move.by, "stock.received", subject=item.sku, quantity=move.quantity, ref=move.reference)
        s.commit()
        on_hand, held, available = availability(s, item)
        out = {"sku": item.sku, "received": move.quantity, "ref": move.reference, "on_hand": on_hand,
               "reserved": held, "available": available}
    _emit(out, as_json, f"{out['sku']}: {out['received']} received ({out['ref']}); on hand {on_hand}, "
                        f"reserved {held}, available {available}")


@stock.command("adjust")
@click.argument("sku")
@click.option("--to", "to", required=True, help="What was counted: the new quantity on hand.")
@click.option("--reason", required=True, help="Why it changes (e.g. \"annual count\", \"damaged in storage\").")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def stock_adjust(sku: str, to: str, reason: str, as_json: bool) -> None:
    """A count: set SKU's quantity on hand to what was counted; the difference goes to the ledger."""
    from models import audit
    from models.catalog import availability, count_stock, product_by_sku
    from services.db import session_scope

    with session_scope() as s:
        item = product_by_sku(s, sku)
        move = count_stock(s, item, to, reason, _operator())
        if move is not None:
            audit.record(s, move.by, "stock.counted", subject=item.sku, difference=move.quantity, reason=reason)
            s.commit()
        on_hand, held, available = availability(s, item)
        out = {"sku": item.sku, "difference": move.quantity if move else 0, "on_hand": on_hand, "reserved": held,
               "available": available}
    change = f"{out['difference']:+d}" if out["difference"] else "no change (the count agrees)"
    _emit(out, as_json, f"{out['sku']}: {change}; on hand {on_hand}, reserved {held}, available {available}")


@stock.command("moves")
@click.argument("sku", required=False)
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print the moves as JSON.")
def stock_moves(sku: str | None, limit: int, as_json: bool) -> None:
    """The stock ledger, newest first: when, who, how many in or out, why, which document."""
    from models.catalog import move_rows
    from services.db import session_scope

    with session_scope() as s:
        rows = move_rows(s, sku, limit)
    _emit(rows, as_json, _table(rows, ["at", "by", "sku", "quantity", "reason", "reference"]))


# --- customers ------------------------------------------------------------------------------------

CUSTOMER_FILE_COLUMNS = ("name", "email", "contact", "phone", "tax_id", "payment_terms", "currency",
                         "billing_address", "shipping_address")


@click.group(cls=DealflowGroup)
def customer() -> None:
    """Customers: their terms (tax ID, payment terms, currency), edits and imports. A lead whose
    e-mail and company are a known customer's becomes a deal of that customer, in their currency."""


def _default_currency() -> str:
    """The company's currency: the catalogue's prices are in it, and a customer without one of
    their own is in it."""
    from services.company import details

    return details()["currency"]


@customer.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the customers as JSON.")
def customer_list(as_json: bool) -> None:
    """Every customer: e-mail, tax ID, payment terms, currency."""
    from sqlalchemy import select

    from models import Customer
    from models.customers import customer_row
    from services.db import session_scope

    currency = _default_currency()
    with session_scope() as s:
        rows = [customer_row(c, currency) for c in s.scalars(select(Customer).order_by(Customer.name, Customer.id))]
    _emit(rows, as_json, _table(rows, ["id", "name", "email", "tax_id", "payment_terms", "currency"]))


@customer.command("show")
@click.argument("ref", metavar="ID|EMAIL")
@click.option("--json", "as_json", is_flag=True, help="Print the customer as JSON.")
def customer_show(ref: str, as_json: bool) -> None:
    """One customer, by number or e-mail, with their deals."""
    from sqlalchemy import select

    from models import Deal
    from models.customers import customer_by_ref, customer_row
    from services.db import session_scope

    with session_scope() as s:
        item = customer_by_ref(s, ref)
        row = customer_row(item, _default_currency())
        row["deals"] = [{"deal": d.number, "status": d.status, "currency": d.currency}
                        for d in s.scalars(select(Deal).where(Deal.customer_id == item.id).order_by(Deal.id))]
    text = "\n".join([f"{row['id']}  {row['name']} <{row['email']}>",
                      f"  contact    {row['contact'] or '-'}   phone {row['phone'] or '-'}",
                      f"  tax ID     {row['tax_id'] or '-'}",
                      f"  terms      {row['payment_terms']} days; currency {row['currency']}",
                      f"  billing    {' / '.join(row['billing_address'].splitlines()) or '-'}",
                      f"  shipping   {' / '.join(row['shipping_address'].splitlines()) or '-'}",
                      f"  deals      {', '.join(d['deal'] + ' (' + d['status'] + ')' for d in row['deals']) or 'none'}"])
    _emit(row, as_json, text)


@customer.command("edit")
@click.argument("ref", metavar="ID|EMAIL")
@click.option("--name", help="The company's name, as documents show it.")
@click.option("--email", help="Where estimates, invoices and links go.")
@click.option("--contact", help="The main contact's name.")
@click.option("--phone")
@click.option("--tax-id", "tax_id", help="Their tax (VAT/GST) ID: on every document.")
@click.option("--payment-terms", "payment_terms", help="Days from invoice to due date (0-365), e.g. 45.")
@click.option("--currency", help="Three-letter code (USD, EUR, JPY): their deals from now on are in it.")
@click.option("--billing-address", "billing_address")
@click.option("--shipping-address", "shipping_address")
@click.option("--json", "as_json", is_flag=True, help="Print the customer as JSON.")
def customer_edit(ref: str, as_json: bool, **options: Any) -> None:
    """Change a customer. A new currency or payment terms apply to their deals from now on; a deal
    already converted keeps its currency, an invoice already issued its due date."""
    from models import audit
    from models.customers import customer_by_ref, customer_row, edit_customer
    from services.db import session_scope

    given = _given(**options)
    if not given:
        _fail("nothing to change: give at least one option (see `dealflow customer edit --help`)")
    with session_scope() as s:
        item = customer_by_ref(s, ref)
        changed = edit_customer(s, item, given)
        if changed:
            audit.record(s, _operator(), "customer.changed", subject=f"customer {item.id}", **changed)
        row = customer_row(item, _default_currency())
        s.commit()
    what = ", ".join(f"{k} {v[0]!s} -> {v[1]!s}" for k, v in changed.items()) or "nothing changed"
    _emit({**row, "changed": changed}, as_json, f"customer {row['id']} ({row['name']}): {what}")


@customer.command("import")
@click.argument("path", type=FilePath(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
def customer_import(path: Path, as_json: bool) -> None:
    """Add and update customers from a .csv or .xlsx file: all rows or none.

    Columns: name, email (required), contact, phone, tax_id, payment_terms (days), currency,
    billing_address, shipping_address. A row whose e-mail is a known customer's updates that
    customer; a refused file lists every bad row, column and rule, and nothing is written."""
    from models.customers import import_customers

    _import_file(path, as_json, "customer", import_customers, CUSTOMER_FILE_COLUMNS, ("name", "email"),
                 {"company": "name", "e_mail": "email", "vat_id": "tax_id", "terms": "payment_terms"})


# --- prices in other currencies, and exchange rates ---------------------------------------------

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
        row = set_price(s, product_by_sku(s, sku), currency, amount, _operator(), _default_currency())
        out = price_row(row)
        s.commit()
    _emit(out, as_json, f"{out['sku']}: {out['price']} {out['currency']}")


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
    _emit(rows, as_json, _table(rows, ["sku", "currency", "price"]))


@price.command("import")
@click.argument("path", type=FilePath(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
def price_import(path: Path, as_json: bool) -> None:
    """Set prices from a .csv or .xlsx file with columns sku, currency, price: all rows or none (a
    refused file lists every bad row, column and rule). `dealflow price export` writes this format."""
    from models.prices import PRICE_COLUMNS, import_prices

    own = _default_currency()
    _import_file(path, as_json, "price", lambda s, name, rows: import_prices(s, name, rows, _operator(), own),
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
    own = _default_currency()
    with session_scope() as s:
        row = set_rate(s, currency, value, day, _operator(), own)
        out = {"currency": row.currency, "rate": f"{row.rate.normalize():f}", "from": own,
               "on": row.valid_from.isoformat()}
        s.commit()
    _emit(out, as_json, f"1 {own} = {out['rate']} {out['currency']} from {out['on']}")


@rate.command("list")
@click.option("--currency", help="Only this currency.")
@click.option("--json", "as_json", is_flag=True, help="Print the rates as JSON.")
def rate_list(currency: str | None, as_json: bool) -> None:
    """Every rate set: currency, from which day, rate (per one unit of the company's currency)."""
    from sqlalchemy import select

    from models.customers import currency_code
    from models.prices import ExchangeRate
    from services.db import session_scope

    own = _default_currency()
    with session_scope() as s:
        query = select(ExchangeRate).order_by(ExchangeRate.currency, ExchangeRate.valid_from.desc())
        if currency:
            query = query.where(ExchangeRate.currency == currency_code(currency))
        rows = [{"currency": r.currency, "on": r.valid_from.isoformat(), "rate": f"{r.rate.normalize():f}",
                 "per": own, "set_by": r.set_by} for r in s.scalars(query)]
    _emit(rows, as_json, _table(rows, ["currency", "on", "rate", "per", "set_by"]))
