"""Customers as the people who keep them change them: their terms (tax ID, payment terms,
currency), edits and a file's import. A lead whose e-mail is a known customer's converts to that
customer, so a deal for an imported customer carries the customer's currency and terms."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .crm import Contact, Customer
from .deposit_terms import deposit_before, deposit_pct
from .errors import FileRefused, NotFound, ValidationError
from .money import ISO_4217, MINOR_UNITS
from .text import bounded, has_control, one_line, shown

CURRENCY_RULE = re.compile(r"[A-Z]{3}")
MAX_TERMS_DAYS = 365
CUSTOMER_FIELDS = ("name", "email", "contact", "phone", "tax_id", "payment_terms", "currency", "billing_address",
                   "shipping_address", "deposit", "deposit_before", "credit_limit")
KEEP_WHEN_EMPTY = ("currency", "payment_terms", "deposit", "deposit_before", "credit_limit")  # empty: unchanged


def currency_code(value: object, field: str = "currency") -> str:
    code = "" if value is None else str(value).strip().upper()
    if not CURRENCY_RULE.fullmatch(code):
        raise ValidationError(field, f"must be a three-letter ISO 4217 code such as USD, EUR or JPY; got {shown(value)}")
    if code not in ISO_4217:
        raise ValidationError(field, f"{code} is not an ISO 4217 currency code (USD, EUR, JPY, GBP, …)")
    if MINOR_UNITS.get(code, 2) > 2:
        raise ValidationError(field, f"{code} has three decimals; amounts are kept to two, so it is not supported")
    return code


def email_address(value: object, field: str = "email") -> str:
    email = "" if value is None else str(value).strip()
    if "@" not in email or any(c in email for c in " ,;<>\"") or has_control(email) or len(email) > 200:
        raise ValidationError(field, f"must be one e-mail address, got {shown(value)}")
    return email


def terms_days(value: object, field: str = "payment_terms") -> int:
    text = str(value).strip().lower().removesuffix("days").removesuffix("d").strip()
    if not re.fullmatch(r"[0-9]{1,3}", text) or not 0 <= int(text) <= MAX_TERMS_DAYS:
        raise ValidationError(field, f"must be a number of days from 0 to {MAX_TERMS_DAYS}, got {shown(value)}")
    return int(text)


RULES = {
    "name": ("name", lambda v, f: one_line(v, f, 200, required=True)),
    "email": ("email", email_address),
    "phone": ("phone", lambda v, f: one_line(v, f, 60)),
    "tax_id": ("tax_id", lambda v, f: one_line(v, f, 40)),
    "payment_terms": ("payment_terms_days", terms_days),
    "currency": ("currency", currency_code),
    "billing_address": ("billing_address", lambda v, f: bounded(v, f, 1000)),
    "shipping_address": ("shipping_address", lambda v, f: bounded(v, f, 1000)),
    "contact": ("contact", lambda v, f: one_line(v, f, 120)),
    # payment terms: a deposit (% of the order, "none" or "default": the company's) and when it is
    # due (before shipping, or before QA releases the order), and a credit limit ("none": no limit)
    "deposit": ("deposit_pct", lambda v, f: None if _default(v) else deposit_pct(
        "0" if str(v).strip().lower() == "none" else v, f)),
    "deposit_before": ("deposit_before", lambda v, f: None if _default(v) else deposit_before(v, f)),
    "credit_limit": ("credit_limit", lambda v, f: credit_limit(v, f)),
}


def _default(value: object) -> bool:
    return str(value).strip().lower() in ("default", "company")


def credit_limit(value: object, field: str = "credit_limit") -> Decimal | None:
    """A credit limit: an amount of 0 or more (0: nothing on credit), or none/empty (no limit)."""
    typed = "" if value is None else str(value).strip()
    if typed.lower() in ("", "none", "no limit", "unlimited"):
        return None
    if "," in typed and not re.fullmatch(r"[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?", typed):
        # "250.000,00" is 250,000 in much of Europe and 250 to Python: refused, never misread
        raise ValidationError(field, f"must be an amount with a point for decimals (250000.00 or 250,000.00); "
                                     f"got {shown(value)}")
    text = typed.replace(",", "").replace("_", "")  # thousands separators ("250,000"); alone they are no amount
    try:
        amount = Decimal(text)
    except ArithmeticError:
        raise ValidationError(field, f"must be an amount of 0 or more, or none (no limit); got {shown(value)}") \
            from None
    if not amount.is_finite() or amount < 0:
        raise ValidationError(field, f"must be an amount of 0 or more, or none (no limit); got {shown(value)}")
    if amount >= Decimal("1e12") or amount != amount.quantize(Decimal("0.01")):
        raise ValidationError(field, f"must be below 1,000,000,000,000 with at most 2 decimals; got {shown(value)}")
    return amount



def customer_values(raw: dict[str, Any], *, new: bool) -> tuple[dict[str, Any], list[ValidationError]]:
    """The customer's fields as given (options, a file's row), each checked: the values and every
    rule broken. ``new``: name and e-mail are required; an empty currency or payment terms keeps
    the default (the settings' currency; 30 days)."""
    values: dict[str, Any] = {}
    problems: list[ValidationError] = []
    for field, (column, rule) in RULES.items():
        value = raw.get(field)
        if value is None or (str(value).strip() == "" and field in KEEP_WHEN_EMPTY):
            if new and field in ("name", "email"):
                problems.append(ValidationError(field, "must not be empty"))
            continue
        try:
            values[column] = rule(value, field)
        except ValidationError as exc:
            problems.append(exc)
    return values, problems


def find_customer(session: Session, email: str, contacts: bool = True) -> Customer | None:
    """The customer with this e-mail (theirs, or with ``contacts`` one of their contacts'), case aside."""
    email = (email or "").strip().lower()
    if not email:
        return None
    match = func.lower(Customer.email) == email
    query = (select(Customer).outerjoin(Contact).where(or_(match, func.lower(Contact.email) == email)) if contacts
             else select(Customer).where(match))
    return session.scalars(query.order_by(Customer.id)).first()


def same_company(a: str, b: str) -> bool:
    """"Tokyo Precision K.K." and "tokyo precision kk" are one name; "Alpha Tools" and "Beta Forge" are not."""
    def key(name: str) -> str:
        return re.sub(r"[\W_]+", "", (name or "").casefold())
    return bool(key(a)) and key(a) == key(b)


def customer_of_lead(session: Session, email: str, company: str) -> Customer | None:
    """The known customer a lead is from: the same e-mail (theirs or a contact's) *and* the same
    company name; a shared address (purchasing@, a consultant) of another company is not a match."""
    email = (email or "").strip().lower()
    if not email:
        return None
    candidates = session.scalars(select(Customer).outerjoin(Contact).where(or_(
        func.lower(Customer.email) == email, func.lower(Contact.email) == email)).order_by(Customer.id)).unique()
    return next((c for c in candidates if same_company(c.name, company)), None)


def customer_by_ref(session: Session, ref: str) -> Customer:
    """A customer by its number or its e-mail."""
    text = (ref or "").strip()
    number = re.fullmatch(r"[0-9]{1,9}", text)
    customer = session.get(Customer, int(text)) if number else find_customer(session, text)
    if customer is None:
        raise NotFound("customer", shown(text))
    return customer


def _apply(customer: Customer, values: dict[str, Any]) -> dict[str, list[Any]]:
    changed: dict[str, list[Any]] = {}
    contact = values.pop("contact", None)
    for column, value in values.items():
        if getattr(customer, column) != value:
            changed[column] = [getattr(customer, column), value]
            setattr(customer, column, value)
    if contact:
        primary = customer.primary_contact
        if primary is None:
            customer.contacts.append(Contact(name=contact, email=customer.email, phone=customer.phone,
                                             is_primary=True))
            changed["contact"] = [None, contact]
        elif primary.name != contact:
            changed["contact"] = [primary.name, contact]
            primary.name = contact
    return changed


def edit_customer(session: Session, customer: Customer, raw: dict[str, Any]) -> dict[str, list[Any]]:
    values, problems = customer_values(raw, new=False)
    if problems:
        raise problems[0]
    if "email" in values:
        other = find_customer(session, values["email"])
        if other is not None and other.id != customer.id:
            raise ValidationError("email", f"{values['email']} is customer {other.id}'s ({other.name})")
    new_currency = values.get("currency")
    if (new_currency and new_currency != customer.currency and customer.credit_limit is not None
            and "credit_limit" not in values):
        raise ValidationError("credit_limit", f"is {customer.credit_limit} in {customer.currency or 'the company currency'}"
                                              f": give it again in {new_currency} with the new currency (or none)")
    changed = _apply(customer, values)
    session.flush()
    return changed


def import_customers(session: Session, name: str, rows: list[tuple[int, dict[str, Any]]]) -> dict[str, list[str]]:
    """A customer file's rows, all or none: a row whose e-mail is a known customer's updates that
    customer, any other adds one. Every broken rule of every row is gathered first."""
    problems: list[tuple[int, str, str]] = []
    plans: list[tuple[dict[str, Any], str]] = []
    seen: dict[str, int] = {}
    for row_no, raw in rows:
        values, broken = customer_values(raw, new=True)
        problems += [(row_no, exc.field, exc.rule) for exc in broken]
        email = values.get("email", "").lower()
        if email and email in seen:
            problems.append((row_no, "email", f"{values['email']} is also on row {seen[email]}"))
        elif email:
            seen[email] = row_no
            plans.append((values, email))
    if problems:
        raise FileRefused(name, problems, len(rows))
    result: dict[str, list[str]] = {"added": [], "changed": [], "unchanged": []}
    for values, email in plans:
        customer = find_customer(session, email, contacts=False)  # a row is a customer, by their own e-mail
        if customer is None:
            customer = Customer(name=values["name"], email=values["email"])
            session.add(customer)
            _apply(customer, values)
            result["added"].append(values["email"])
        else:
            result["changed" if _apply(customer, values) else "unchanged"].append(values["email"])
    session.flush()
    return result


def customer_row(customer: Customer, default_currency: str) -> dict[str, Any]:
    contact = customer.primary_contact
    return {"id": customer.id, "name": customer.name, "email": customer.email,
            "contact": contact.name if contact else "", "phone": customer.phone, "tax_id": customer.tax_id,
            "payment_terms": customer.payment_terms_days, "currency": customer.currency or default_currency,
            "billing_address": customer.billing_address, "shipping_address": customer.shipping_address,
            "deposit": "" if customer.deposit_pct is None else str(customer.deposit_pct),
            "deposit_before": customer.deposit_before or "",
            "credit_limit": "" if customer.credit_limit is None else str(customer.credit_limit)}
