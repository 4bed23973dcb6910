"""``dealflow product``: the catalogue as the person who keeps it changes it (add, edit, retire,
import and export a file); ``dealflow stock``: what is on hand, reserved and available, goods in,
counts and the ledger. Every change is audited with who made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import (
    DealflowGroup,
    FilePath,
    company_currency,
    emit,
    fail,
    import_file,
    operator,
    options_given,
    reads_and_ends,
    table,
)

LIST_COLUMNS = ["sku", "name", "price", "tax_rate", "needs_qa", "serialized", "warranty", "on_hand", "offered"]


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "needs_qa": "yes" if row["needs_qa"] else "no", "offered": "yes" if row["offered"] else "retired",
            "serialized": "yes" if row["serialized"] else "no", "warranty": _warranty(row["warranty_months"])}


def _warranty(months: int) -> str:
    return f"{months} months" if months else "none"


def _priced(price: Any, currency: str | None = None) -> str:
    """A catalogue price as people read it: in the company's currency, rounded to it (whole yen)."""
    from models.money import amount_text

    return amount_text(price, currency or company_currency())


def _product_text(row: dict[str, Any]) -> str:
    checks = row["checklist"] or ("standard machine checklist" if row["needs_qa"] else "none (no QA)")
    return "\n".join([
        f"{row['sku']}  {row['name']}" + ("" if row["offered"] else "  (retired: not offered in new estimates)"),
        f"  price      {_priced(row['price'])} (tax {row['tax_rate']} %)",
        f"  QA         {'yes' if row['needs_qa'] else 'no'}; checks: {checks}",
        f"  serials    {'yes: one serial number per unit' if row['serialized'] else 'no'}; "
        f"warranty {_warranty(row['warranty_months'])}" + (" from shipping" if row["warranty_months"] else ""),
        f"  on hand    {row['on_hand']}",
        *([f"  about      {row['description']}"] if row["description"] else []),
    ])


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
            click.option("--serialized/--not-serialized", "serialized", default=None,
                         help="Whether each unit has a serial number (a machine), recorded when it is received "
                              "(`stock receive --serials`) or typed when it ships (default for a new product: not)."),
            click.option("--warranty-months", "warranty_months",
                         help="The warranty, in months from shipping (0-120; 0: none)."),
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
    from application import catalog

    row = catalog.add_product(sku, options_given(**options), operator())
    serials = (f", serialized (warranty {_warranty(row['warranty_months'])})" if row["serialized"] else
               f", warranty {_warranty(row['warranty_months'])}" if row["warranty_months"] else "")
    emit(row, as_json, f"added {row['sku']}: {row['name']}, {_priced(row['price'])} (tax {row['tax_rate']} %), "
                       f"QA {'yes' if row['needs_qa'] else 'no'}{serials}; receive stock with "
                       f"`dealflow stock receive {row['sku']} QTY --ref REF"
                       + (" --serials S1,S2,…`" if row["serialized"] else "`"))


@product.command("edit")
@click.argument("sku")
@_product_options(new=False)
def product_edit(sku: str, as_json: bool, **options: Any) -> None:
    """Change a product. A new price applies to estimate revisions drafted from now on; revisions
    already sent, orders and invoices keep the price they were made with."""
    from application import catalog

    given = options_given(**options)
    if not given:
        fail("nothing to change: give at least one of --name, --price, --tax-rate, --needs-qa/--no-qa, "
             "--checklist, --description, --serialized/--not-serialized, --warranty-months")
    out = catalog.edit_product(sku, given, operator())
    what = ", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in out["changed"].items()) or "nothing changed"
    unnumbered = out.get("unnumbered", 0)
    hint = (f"; {unnumbered} unit{'s' if unnumbered != 1 else ''} on hand {'have' if unnumbered != 1 else 'has'} "
            "no serial number yet: typed from the plate when shipped" if unnumbered else "")
    emit(out, as_json, f"{out['sku']}: {what}{hint}")


@product.command("list")
@click.option("--all", "everything", is_flag=True, help="Also the retired products.")
@click.option("--json", "as_json", is_flag=True, help="Print the products as JSON.")
def product_list(everything: bool, as_json: bool) -> None:
    """The products offered in new estimates (--all: also the retired ones)."""
    from application import catalog

    rows = catalog.list_products(everything)
    currency = company_currency()
    emit(rows, as_json, table([{**_shown(r), "price": _priced(r["price"], currency)} for r in rows], LIST_COLUMNS))


@product.command("show")
@click.argument("sku")
@click.option("--json", "as_json", is_flag=True, help="Print the product as JSON.")
def product_show(sku: str, as_json: bool) -> None:
    """One product: price, tax, QA checks, stock."""
    from application import catalog

    row = catalog.show_product(sku)
    emit(row, as_json, _product_text(row))


@product.command("retire")
@click.argument("sku")
@click.option("--undo", is_flag=True, help="Offer it again.")
def product_retire(sku: str, undo: bool) -> None:
    """No longer offer a product in new estimates. Documents already issued, and open orders, keep it."""
    from application import catalog

    out = catalog.retire_product(sku, operator(), undo=undo)
    if out["changed"]:
        click.echo(f"{out['sku']}: " + ("offered again" if undo else "retired; no longer offered in new estimates"))
    else:
        click.echo(f"{out['sku']}: already " + ("offered" if undo else "retired"))


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
    from application import catalog

    import_file(path, as_json, catalog.import_products)


@product.command("export")
@click.argument("path", type=FilePath(dir_okay=False, writable=True, path_type=Path))
@click.option("--all", "everything", is_flag=True, help="Also the retired products.")
def product_export(path: Path, everything: bool) -> None:
    """Write the catalogue to a .csv or .xlsx file, in the format `dealflow product import` reads."""
    from application import catalog

    written = catalog.export_products(path, everything)
    click.echo(f"{written} products written to {path}")


STOCK_COLUMNS = ["sku", "name", "on_hand", "reserved", "available", "note"]


def _stock_note(row: dict[str, Any]) -> str:
    if row["available"] < 0:
        return f"over-reserved by {-row['available']}"
    return "" if row["offered"] else "retired"


@click.group(cls=DealflowGroup, invoke_without_command=True)
@click.option("--sku", "skus", multiple=True, help="Only this product (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print stock as JSON.")
@click.pass_context
@reads_and_ends
def stock(ctx: click.Context, skus: tuple[str, ...], as_json: bool) -> None:
    """Stock per product: on hand, reserved by open orders, available (on hand - reserved).

    An order reserves its quantities when it is made; a shipment takes its pieces out of stock and
    out of the reservation; a lost deal frees what it held. Orders may reserve more than is on hand
    (shown as over-reserved): a shipment never takes stock below zero."""
    if ctx.invoked_subcommand is not None:
        return
    from application import catalog

    rows = catalog.list_stock(list(skus))
    emit(rows, as_json, table([{**r, "note": _stock_note(r)} for r in rows], STOCK_COLUMNS))


@stock.command("receive")
@click.argument("sku")
@click.argument("quantity")
@click.option("--ref", required=True, help="The delivery's reference (the supplier's delivery note); once per "
                                           "reference and product, so a receipt typed twice counts once.")
@click.option("--serials", help="A serialized product's serial numbers, one per unit, comma-separated (S1,S2,…).")
@click.option("--serials-file", "serials_file", type=FilePath(dir_okay=False, path_type=Path),
              help="A text file with the serial numbers, one per line (instead of --serials).")
@click.option("--json", "as_json", is_flag=True, help="Print the stock move as JSON.")
def stock_receive(sku: str, quantity: str, ref: str, serials: str | None, serials_file: Path | None,
                  as_json: bool) -> None:
    """Goods in: QUANTITY pieces of SKU arrived. A serialized product's units come in with their
    serial numbers (--serials or --serials-file: one per unit, each new to the product); without
    them, they are typed in the shipment form when the units ship."""
    from application import catalog

    if serials is not None and serials_file is not None:
        fail("give the serial numbers with --serials or with --serials-file, not both")
    if serials_file is not None:
        serials = _serials_file(serials_file)
    out = catalog.receive_stock(sku, quantity, ref, operator(), serials)
    numbers = out["serials"]
    said = ("" if not numbers else f" with serial number{'s' if len(numbers) != 1 else ''} {', '.join(numbers)}" if len(numbers) <= 5
            else f" with {len(numbers)} serial numbers ({numbers[0]} … {numbers[-1]})")
    hint = "" if numbers or not out["serialized"] else (
        f"; {out['sku']} is serialized: its serial numbers are typed when the units ship")
    emit(out, as_json, f"{out['sku']}: {out['received']} received ({out['ref']}){said}; on hand {out['on_hand']}, "
                       f"reserved {out['reserved']}, available {out['available']}{hint}")


def _serials_file(path: Path) -> str:
    """The serial numbers in a text file, one per line (blank lines left out), as --serials takes them."""
    try:
        if path.stat().st_size > 20_000_000:
            fail(f"--serials-file: {path.name} is over 20 MB; that is not a list of serial numbers")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        fail(f"--serials-file: {path} does not exist")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--serials-file: cannot read {path} as UTF-8 text ({type(exc).__name__})")
    if "," in text:  # a comma would split one line into two serial numbers
        fail(f"--serials-file: {path.name} has a comma; give one serial number per line")
    return text


@stock.command("adjust")
@click.argument("sku")
@click.option("--to", "to", required=True, help="What was counted: the new quantity on hand.")
@click.option("--reason", required=True, help="Why it changes (e.g. \"annual count\", \"damaged in storage\").")
@click.option("--serials", help="A serialized product's numbered units that are gone, comma-separated (S1,S2,…): "
                                "they leave the stock as scrapped. A count below the numbered units in stock "
                                "names them.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def stock_adjust(sku: str, to: str, reason: str, serials: str | None, as_json: bool) -> None:
    """A count: set SKU's quantity on hand to what was counted; the difference goes to the ledger.
    Units with serial numbers are in stock by name: the ones gone are named with --serials."""
    from application import catalog

    out = catalog.count_stock(sku, to, reason, operator(), serials)
    change = f"{out['difference']:+d}" if out["difference"] else "no change (the count agrees)"
    gone = f" ({', '.join(out['serials_gone'])} scrapped)" if out["serials_gone"] else ""
    emit(out, as_json, f"{out['sku']}: {change}{gone}; on hand {out['on_hand']}, reserved {out['reserved']}, "
                       f"available {out['available']}")


@stock.command("moves")
@click.argument("sku", required=False)
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print the moves as JSON.")
def stock_moves(sku: str | None, limit: int, as_json: bool) -> None:
    """The stock ledger, newest first: when, who, how many in or out, why, which document."""
    from application import catalog

    rows = catalog.list_stock_moves(sku, limit)
    emit(rows, as_json, table(rows, ["at", "by", "sku", "quantity", "reason", "reference"]))
