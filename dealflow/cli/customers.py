"""``dealflow customer``: customers' terms (tax ID, payment terms, currency), edits and imports.
Every change is audited with who made it."""

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
    table,
)

CUSTOMER_FILE_COLUMNS = ("name", "email", "contact", "phone", "tax_id", "payment_terms", "currency",
                         "billing_address", "shipping_address")


@click.group(cls=DealflowGroup)
def customer() -> None:
    """Customers: their terms (tax ID, payment terms, currency), edits and imports. A lead whose
    e-mail and company are a known customer's becomes a deal of that customer, in their currency."""


@customer.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the customers as JSON.")
def customer_list(as_json: bool) -> None:
    """Every customer: e-mail, tax ID, payment terms, currency."""
    from sqlalchemy import select

    from models import Customer
    from models.customers import customer_row
    from services.db import session_scope

    currency = company_currency()
    with session_scope() as s:
        rows = [customer_row(c, currency) for c in s.scalars(select(Customer).order_by(Customer.name, Customer.id))]
    emit(rows, as_json, table(rows, ["id", "name", "email", "tax_id", "payment_terms", "currency"]))


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
        row = customer_row(item, company_currency())
        row["deals"] = [{"deal": d.number, "status": d.status, "currency": d.currency}
                        for d in s.scalars(select(Deal).where(Deal.customer_id == item.id).order_by(Deal.id))]
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
    from models import audit
    from models.customers import customer_by_ref, customer_row, edit_customer
    from services.db import session_scope

    given = options_given(**options)
    if not given:
        fail("nothing to change: give at least one option (see `dealflow customer edit --help`)")
    with session_scope() as s:
        item = customer_by_ref(s, ref)
        changed = edit_customer(s, item, given)
        if changed:
            audit.record(s, operator(), "customer.changed", subject=f"customer {item.id}", **changed)
        row = customer_row(item, company_currency())
        s.commit()
    what = ", ".join(f"{k} {v[0]!s} -> {v[1]!s}" for k, v in changed.items()) or "nothing changed"
    emit({**row, "changed": changed}, as_json, f"customer {row['id']} ({row['name']}): {what}")


@customer.command("import")
@click.argument("path", type=FilePath(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
def customer_import(path: Path, as_json: bool) -> None:
    """Add and update customers from a .csv or .xlsx file: all rows or none.

    Columns: name, email (required), contact, phone, tax_id, payment_terms (days), currency,
    billing_address, shipping_address. A row whose e-mail is a known customer's updates that
    customer; a refused file lists every bad row, column and rule, and nothing is written."""
    from models.customers import import_customers

    import_file(path, as_json, "customer", import_customers, CUSTOMER_FILE_COLUMNS, ("name", "email"),
                {"company": "name", "e_mail": "email", "vat_id": "tax_id", "terms": "payment_terms"})
