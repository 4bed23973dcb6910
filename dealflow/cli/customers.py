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
    """One customer, by number or e-mail, with their deals, their deposit terms, credit limit and
    exposure (unpaid invoices, and what they confirmed and were not yet invoiced for), their
    orders on credit hold, and the credit on their account."""
    from application import customers

    row = customers.show_customer(ref)
    text = "\n".join([f"{row['id']}  {row['name']} <{row['email']}>",
                      f"  contact    {row['contact'] or '-'}   phone {row['phone'] or '-'}",
                      f"  tax ID     {row['tax_id'] or '-'}",
                      f"  terms      {row['payment_terms']} days; currency {row['currency']}",
                      f"  billing    {' / '.join(row['billing_address'].splitlines()) or '-'}",
                      f"  shipping   {' / '.join(row['shipping_address'].splitlines()) or '-'}",
                      f"  deals      {', '.join(d['deal'] + ' (' + d['status'] + ')' for d in row['deals']) or 'none'}",
                      *_money_terms(row)])
    emit(row, as_json, text)


def _money_terms(row: dict[str, Any]) -> list[str]:
    """The deposit, the credit limit and exposure, the holds and the credit on account, in words."""
    terms, exposure, cur = row["deposit_terms"], row["exposure"], row["exposure"]["currency"]
    limit = f"{row['credit_limit']} {cur}" if row["credit_limit"] else "none"
    lines = [f"  deposit    {terms['words']} ({'their own terms' if terms['own'] else 'the company’s terms'})",
             f"  credit     limit {limit}; exposure {exposure['total']} {cur} (unpaid invoices {exposure['unpaid']}, "
             f"confirmed and not yet invoiced {exposure['uninvoiced']})"]
    if exposure["overdue"]:
        lines.append("  overdue    " + ", ".join(f"{o['invoice']} ({o['days']} days)" for o in exposure["overdue"]))
    for hold in row["credit_holds"]:
        decided = (f"{hold['status']} by {hold['decided_by']}: {hold['reason']}" if hold["decided_by"]
                   else "waiting for credit control")
        lines.append(f"  hold       {hold['deal']}: {hold['why']}; {decided}")
    others = {c: v for c, v in row.get("credit_balances", {}).items() if c != cur}
    lines.append(f"  on account {row['credit_balance']} {cur} of credit (from credit notes"
                 + "".join(f"; also {v} {c}" for c, v in others.items())
                 + "; finance uses it with the payment method 'credit on account')")
    return lines


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
@click.option("--deposit", metavar="PCT|none|default",
              help="The deposit they pay, % of the order (0-100, e.g. 30); none: no deposit; default: the "
                   "company's (`dealflow company show`).")
@click.option("--deposit-before", "deposit_before", metavar="shipping|release|default",
              help="When the deposit is due: before the first shipment (shipping) or before QA releases the "
                   "order (release); default: the company's.")
@click.option("--credit-limit", "credit_limit", metavar="AMOUNT|none",
              help="The most they may owe and have on order, in their currency (0: nothing on credit); none: "
                   "no limit. An order over it waits for credit control.")
@click.option("--json", "as_json", is_flag=True, help="Print the customer as JSON.")
def customer_edit(ref: str, as_json: bool, **options: Any) -> None:
    """Change a customer. A new currency, payment terms, deposit or credit limit apply to their
    deals from now on; a deal already converted keeps its currency, an order already made its
    deposit, an invoice already issued its due date."""
    from application import customers

    given = options_given(**options)
    if not given:
        fail("nothing to change: give at least one option (see `dealflow customer edit --help`)")
    for field in ("deposit", "deposit_before", "credit_limit", "currency", "payment_terms"):
        if field in given and not str(given[field]).strip():  # an empty cell of an import keeps it; an option says
            fail(f"{field}: is empty: give a value (`dealflow customer edit --help`)")
    out = customers.edit_customer(ref, given, operator())
    what = ", ".join(f"{k} {v[0]!s} -> {v[1]!s}" for k, v in out["changed"].items()) or "nothing changed"
    emit(out, as_json, f"customer {out['id']} ({out['name']}): {what}")


@customer.command("import")
@click.argument("path", type=FilePath(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
def customer_import(path: Path, as_json: bool) -> None:
    """Add and update customers from a .csv or .xlsx file: all rows or none.

    Columns: name, email (required), contact, phone, tax_id, payment_terms (days), currency,
    billing_address, shipping_address, deposit (% of the order, none, or default: the
    company's), deposit_before (shipping or release), credit_limit (an amount, or none). An empty
    cell leaves that term as it is. A row whose e-mail is a known customer's updates that
    customer; a refused file lists every bad row, column and rule, and nothing is written."""
    from application import customers

    import_file(path, as_json, customers.import_customers)
