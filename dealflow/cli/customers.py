"""``dealflow customer``: customers' terms (tax ID, payment terms, currency), edits and imports.
Every change is audited with who made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import DealflowGroup, FilePath, emit, fail, import_file, operator, options_given, table


@click.group(cls=DealflowGroup)
def customer() -> None:
    """Customers: their terms (tax ID, payment terms, currency), edits and imports. A lead whose
    e-mail and company are a known customer's becomes a deal of that customer, in their currency."""


@customer.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the customers as JSON.")
def customer_list(as_json: bool) -> None:
    """Every customer: e-mail, tax ID, payment terms, currency."""
    from application import customers

    rows = customers.list_customers()
    emit(rows, as_json, table(rows, ["id", "name", "email", "tax_id", "payment_terms", "currency"]))


@customer.command("show")
@click.argument("ref", metavar="ID|EMAIL")
@click.option("--json", "as_json", is_flag=True, help="Print the customer as JSON.")
def customer_show(ref: str, as_json: bool) -> None:
    """One customer, by number or e-mail, with their deals."""
    from application import customers

    row = customers.show_customer(ref)
    text = "\n".join([f"{row['id']}  {row['name']} <{row['email']}>",
                      f"  contact    {row['contact'] or '-'}   phone {row['phone'] or '-'}",
                      f"  tax ID     {row['tax_id'] or '-'}",
                      f"  terms      {row['payment_terms']} days; currency {row['currency']}",
                      f"  billing    {' / '.join(row['billing_address'].splitlines()) or '-'}",
                      f"  shipping   {' / '.join(row['shipping_address'].splitlines()) or '-'}",
                      f"  deals      {', '.join(d['deal'] + ' (' + d['status'] + ')' for d in row['deals']) or 'none'}"])
    emit(row, as_json, text)


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
    from application import customers

    given = options_given(**options)
    if not given:
        fail("nothing to change: give at least one option (see `dealflow customer edit --help`)")
    out = customers.edit_customer(ref, given, operator())
    what = ", ".join(f"{k} {v[0]!s} -> {v[1]!s}" for k, v in out["changed"].items()) or "nothing changed"
    emit(out, as_json, f"customer {out['id']} ({out['name']}): {what}")


@customer.command("import")
@click.argument("path", type=FilePath(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
def customer_import(path: Path, as_json: bool) -> None:
    """Add and update customers from a .csv or .xlsx file: all rows or none.

    Columns: name, email (required), contact, phone, tax_id, payment_terms (days), currency,
    billing_address, shipping_address. A row whose e-mail is a known customer's updates that
    customer; a refused file lists every bad row, column and rule, and nothing is written."""
    from application import customers

    import_file(path, as_json, customers.import_customers)
