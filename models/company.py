"""The company that sells: its name, address, contacts, tax ID and bank details on every document
and email, its currency, its mail sender and the payment terms a new customer gets.

One row, made by ``dealflow init`` (asked for, or given as flags or a JSON file) and changed with
``dealflow company edit``. Nothing else says who the seller is: no document or email names
Glocial unless the company is Glocial (the demo's, ``GLOCIAL``, loaded by ``init --demo-data``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Numeric, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import audit
from .base import Base, utcnow
from .customers import MAX_TERMS_DAYS, currency_code, email_address, terms_days
from .deposit_terms import deposit_before, deposit_pct
from .errors import DomainError, ValidationError
from .text import bounded, one_line

THE_COMPANY = 1  # the one row's id


class Company(Base):
    __tablename__ = "company"
    __table_args__ = (CheckConstraint(f"id = {THE_COMPANY}", name="one_company"),
                      CheckConstraint(f"payment_terms_days BETWEEN 0 AND {MAX_TERMS_DAYS}", name="company_terms"))

    id: Mapped[int] = mapped_column(primary_key=True, default=THE_COMPANY)
    name: Mapped[str] = mapped_column(String(150))
    address: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(60), default="")
    email: Mapped[str] = mapped_column(String(200))
    tax_id: Mapped[str] = mapped_column(String(40), default="")
    bank: Mapped[str] = mapped_column(String(300), default="")
    currency: Mapped[str] = mapped_column(String(3))
    mail_from: Mapped[str] = mapped_column(String(200))
    payment_terms_days: Mapped[int] = mapped_column(default=30)
    # the deposit a customer without terms of their own pays (0: none), and when
    deposit_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0), server_default="0")
    deposit_before: Mapped[str] = mapped_column(String(10), default="shipping", server_default="shipping")
    # an order of a customer with an invoice overdue by more than this many days goes on credit hold
    credit_overdue_days: Mapped[int] = mapped_column(default=30, server_default="30")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def as_dict(self) -> dict[str, Any]:
        """Every detail as plain data (a percentage as its text), as documents keep it."""
        return {field: str(v) if isinstance(v := getattr(self, field), Decimal) else v for field in FIELDS}


# field -> (what it is, its rule); the order is the order `init` asks in
FIELDS: dict[str, tuple[str, Any]] = {
    "name": ("the company's name, as documents and emails show it",
             lambda v, f: one_line(v, f, 150, required=True)),
    "address": ("its postal address (line breaks allowed)", lambda v, f: bounded(v, f, 1000)),
    "phone": ("its phone number", lambda v, f: one_line(v, f, 60)),
    "email": ("its e-mail address, printed on documents", email_address),
    "tax_id": ("its tax ID (VAT, GST, …), printed on every document", lambda v, f: one_line(v, f, 40)),
    "bank": ("the bank details customers pay to (e.g. IBAN and bank)", lambda v, f: one_line(v, f, 300)),
    "currency": ("its currency (ISO 4217: USD, EUR, JPY, …): a new customer's, the catalogue's, the reports'",
                 currency_code),
    "mail_from": ("the sender of every email (From)", email_address),
    "payment_terms_days": ("the payment terms a new customer gets, in days", terms_days),
    "deposit_pct": ("the deposit a customer without terms of their own pays, % of the order (0: none)",
                    lambda v, f: deposit_pct(v, f)),
    "deposit_before": ("when that deposit is due: shipping (before the first shipment) or release (before QA "
                       "releases the order)", lambda v, f: deposit_before(v, f)),
    "credit_overdue_days": ("an order of a customer with an invoice overdue by more than this many days goes on "
                            "credit hold", terms_days),
}
REQUIRED = ("name", "email", "currency")

# Glocial Machineries, the demo's company (``init --demo-data``)
GLOCIAL = {"name": "Glocial Machineries", "address": "12 Foundry Road, Riverside Industrial Park",
           "phone": "+1 555 0100", "email": "sales@glocial.example", "tax_id": "",
           "bank": "IBAN XX00 0000 0000 0000 0000 00", "currency": "USD", "mail_from": "sales@glocial.example",
           "payment_terms_days": 30, "deposit_pct": Decimal(0), "deposit_before": "shipping",
           "credit_overdue_days": 30}


def company_values(raw: dict[str, Any], *, new: bool) -> dict[str, Any]:
    """The company's fields as given, each checked by its rule; the first broken one is raised,
    naming the field. ``new``: name, email and currency are required; the sender defaults to the
    email, the terms to 30 days."""
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ValidationError(unknown[0], f"is not a company detail (they are: {', '.join(FIELDS)})")
    values: dict[str, Any] = {}
    for field, (_, rule) in FIELDS.items():
        value = raw.get(field)
        if value is None:
            if new and field in REQUIRED:
                raise ValidationError(field, "is needed: " + FIELDS[field][0])
            continue
        values[field] = rule(value, field)
    if new:
        values.setdefault("mail_from", values["email"])
        values.setdefault("payment_terms_days", 30)
        values.setdefault("deposit_pct", Decimal(0))
        values.setdefault("deposit_before", "shipping")
        values.setdefault("credit_overdue_days", 30)
    return values


def _has_money(session: Session) -> bool:
    from sqlalchemy import select

    from .crm import Customer
    from .deal import Deal
    from .products import Product

    return any(session.scalars(select(model.id).limit(1)).first() is not None for model in (Product, Customer, Deal))


def the_company(session: Session | None) -> Company:
    company = session.get(Company, THE_COMPANY) if session is not None else None
    if company is None:
        raise DomainError("company: not set up yet; `dealflow init` asks for its details "
                          "(or `dealflow init --demo-data` for the Glocial demo)")
    return company


def set_up(session: Session, raw: dict[str, Any], by: str) -> Company:
    """The company as given, the first time (``init``); refused if there is one already."""
    if session.get(Company, THE_COMPANY) is not None:
        raise ValidationError("company", "is set up already; change it with `dealflow company edit`")
    company = Company(id=THE_COMPANY, **company_values(raw, new=True))
    session.add(company)
    session.flush()
    audit.record(session, by, "company.set_up", subject=company.name)
    return company


def edit(session: Session, raw: dict[str, Any], by: str) -> tuple[Company, list[str]]:
    """Change the given details (all checked before any is written); returns the company and the
    fields that changed. A document's PDF already written keeps what it said."""
    company = the_company(session)
    values = company_values(raw, new=False)
    changed = [f for f, v in values.items() if getattr(company, f) != v]
    if "currency" in changed and _has_money(session):
        raise ValidationError("currency", f"stays {company.currency}: the catalogue's prices, customers and deals are "
                                          f"in it already, and changing it would relabel their amounts")
    for field in changed:
        setattr(company, field, values[field])
    if changed:
        session.flush()
        audit.record(session, by, "company.edited", subject=company.name, fields=changed)
    return company, changed
