"""Customers: their terms (tax ID, payment terms, currency), edits and a file of them. Every
change is audited with who made it. A customer without a currency of their own is in the
company's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from models import Customer, Deal, audit, customers
from services.company import details

from .files import Imported, import_file
from .uow import unit_of_work

# a customer file, as `customer import` reads it
FILE_COLUMNS = ("name", "email", "contact", "phone", "tax_id", "payment_terms", "currency",
                "billing_address", "shipping_address", "deposit", "deposit_before", "credit_limit")
FILE_REQUIRED = ("name", "email")
FILE_ALIASES = {"company": "name", "e_mail": "email", "vat_id": "tax_id", "terms": "payment_terms",
                "deposit_pct": "deposit", "deposit_percent": "deposit"}


def list_customers() -> list[dict[str, Any]]:
    """Every customer, by name."""
    currency = details()["currency"]
    with unit_of_work() as s:
        return [customers.customer_row(c, currency)
                for c in s.scalars(select(Customer).order_by(Customer.name, Customer.id))]


def show_customer(ref: str) -> dict[str, Any]:
    """One customer, by number or e-mail, with ``deals`` (each deal's number, status and
    currency) and their money terms: ``deposit_terms`` (the deposit they pay and when, their own
    or the company's), ``credit_limit`` ("": none), ``exposure`` (what they owe and have ordered, in their
    currency, and their overdue invoices), ``credit_holds`` (orders held for credit control, and
    what finance decided) and ``credit_balance`` (kept on their account from credit notes)."""
    from models.credit import exposure_of, holds_of
    from models.credit_notes import credit_balance, credit_balances
    from models.deposits import terms_for

    with unit_of_work() as s:
        item = customers.customer_by_ref(s, ref)
        row = customers.customer_row(item, details()["currency"])
        row["deals"] = [{"deal": d.number, "status": d.status, "currency": d.currency}
                        for d in s.scalars(select(Deal).where(Deal.customer_id == item.id).order_by(Deal.id))]
        terms = terms_for(s, item)
        row["deposit_terms"] = {"pct": str(terms.pct), "before": terms.before, "words": terms.words(),
                                "own": item.deposit_pct is not None}
        exposure = exposure_of(s, item)
        row["exposure"] = {"currency": exposure.currency, "unpaid": str(exposure.unpaid),
                           "uninvoiced": str(exposure.uninvoiced), "total": str(exposure.total),
                           "overdue": [{"invoice": number, "days": days} for number, days in exposure.overdue]}
        row["credit_holds"] = [{"deal": h.deal.number, "status": h.status, "why": h.why,
                                "opened_at": h.opened_at.isoformat(timespec="seconds"),
                                "decided_by": h.decided_by.handle if h.decided_by else None,
                                "reason": h.reason or None} for h in holds_of(s, item)]
        row["credit_balance"] = str(credit_balance(s, item, exposure.currency))  # in the customer's currency
        row["credit_balances"] = {c: str(v) for c, v in credit_balances(s, item).items()}
        return row


def edit_customer(ref: str, fields: dict[str, Any], by: str) -> dict[str, Any]:
    """The customer as they are now, with ``changed``: {field: [before, after]} (audited if any).
    A new currency or payment terms apply to their deals from now on."""
    with unit_of_work() as s:
        item = customers.customer_by_ref(s, ref)
        changed = customers.edit_customer(s, item, fields)
        if changed:
            audit.record(s, by, "customer.changed", subject=f"customer {item.id}", **changed)
        return {**customers.customer_row(item, details()["currency"]), "changed": changed}


def import_customers(path: Path, by: str) -> Imported:
    """Add and update customers from a .csv or .xlsx file (a known e-mail updates that customer):
    all rows or none."""
    return import_file(path, "customer", customers.import_customers, by, FILE_COLUMNS, FILE_REQUIRED, FILE_ALIASES)
