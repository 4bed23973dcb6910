"""Money in the customer's currency, never relabelled: a product's price in another currency comes
from its price list (``ProductPrice``: an explicit price, e.g. 7,280,000 JPY) or from the catalogue
price (in the company's currency) at the exchange rate of the day (``ExchangeRate``: how many units
of the currency one unit of the company's buys, e.g. 150.25 JPY per USD, as of a date).

An estimate revision takes its prices when it is drafted and keeps them, with the rate of its day
(``EstimateRevision.fx_rate``/``fx_on``): the order and the invoice copy its lines, so nothing moves
when a rate changes later; reports convert each document back to the company's currency at that
rate. A product with no price in the currency and no rate is refused, naming both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from . import audit
from .base import Base, utcnow
from .catalog import Product
from .customers import currency_code
from .errors import ValidationError
from .money import parse_money, round_money
from .text import shown

RATE_PLACES = 6
MAX_RATE = Decimal("1000000")


class ProductPrice(Base):
    """A product's price in a currency other than the company's (a price list's line)."""
    __tablename__ = "product_prices"
    __table_args__ = (UniqueConstraint("product_id", "currency"),
                      CheckConstraint("unit_price >= 0", name="list_price_not_negative"))

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    product: Mapped[Product] = relationship()


class ExchangeRate(Base):
    """Units of ``currency`` that one unit of the company's currency buys, from ``valid_from`` until the next."""
    __tablename__ = "exchange_rates"
    __table_args__ = (UniqueConstraint("currency", "valid_from"), CheckConstraint("rate > 0", name="rate_positive"))

    id: Mapped[int] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), index=True)
    valid_from: Mapped[date]
    rate: Mapped[Decimal] = mapped_column(Numeric(18, RATE_PLACES))
    set_by: Mapped[str] = mapped_column(String(40))
    set_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class NoPrice(ValidationError):
    """A product has no price in a currency, and there is no rate to convert its own."""

    def __init__(self, field: str, sku: str, currency: str, company_currency: str):
        super().__init__(field, f"{sku} has no price in {currency} and there is no {company_currency}→{currency} "
                                f"exchange rate: `dealflow price set {sku} {currency} AMOUNT` or "
                                f"`dealflow rate set {currency} RATE`")


@dataclass(frozen=True)
class Quote:
    """A product's unit price in a currency, and where it came from."""
    unit_price: Decimal
    source: str  # "catalogue", "price list" or "rate"
    rate: Decimal | None = None
    rate_on: date | None = None


def check_rate(value: object, field: str = "rate") -> Decimal:
    text = str(value).strip()
    try:
        rate = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValidationError(field, f"must be a number such as 150.25, got {shown(value)}") from None
    if not rate.is_finite() or rate <= 0 or rate >= MAX_RATE:
        raise ValidationError(field, f"must be more than 0 and less than {MAX_RATE:,}, got {shown(value)}")
    if -rate.as_tuple().exponent > RATE_PLACES:
        raise ValidationError(field, f"has at most {RATE_PLACES} decimals, got {shown(value)}")
    return rate


def rate_on(session: Session, currency: str, day: date) -> ExchangeRate | None:
    """The rate in force on ``day``: the latest set for a date on or before it."""
    return session.scalars(select(ExchangeRate).where(ExchangeRate.currency == currency, ExchangeRate.valid_from <= day)
                           .order_by(ExchangeRate.valid_from.desc()).limit(1)).first()


def set_rate(session: Session, currency: object, rate: object, on: date, by: str, company_currency: str) -> ExchangeRate:
    code = currency_code(currency)
    if code == company_currency:
        raise ValidationError("currency", f"{code} is the company's own currency: its rate is 1")
    value = check_rate(rate)
    row = session.scalars(select(ExchangeRate).where(ExchangeRate.currency == code, ExchangeRate.valid_from == on)).first()
    if row is None:
        row = ExchangeRate(currency=code, valid_from=on, rate=value, set_by=by)
        session.add(row)
    else:  # a correction of that day's rate: documents drafted with the old one keep it
        row.rate, row.set_by = value, by
    session.flush()
    audit.record(session, by, "rate.set", subject=f"{company_currency}→{code}", on=on.isoformat(), rate=str(value))
    return row


def set_price(session: Session, product: Product, currency: object, price: object, by: str,
              company_currency: str) -> ProductPrice:
    code = currency_code(currency)
    if code == company_currency:
        raise ValidationError("currency", f"{code} is the company's own currency: the catalogue price "
                                          f"(`dealflow product edit {product.sku} --price …`)")
    amount = parse_money(price, "price")
    if amount < 0 or amount != round_money(amount, code):
        raise ValidationError("price", _not_an_amount(code, price))
    row = session.scalars(select(ProductPrice).where(ProductPrice.product_id == product.id,
                                                     ProductPrice.currency == code)).first()
    if row is None:
        row = ProductPrice(product_id=product.id, currency=code, unit_price=amount)
        session.add(row)
    else:
        row.unit_price = amount
    session.flush()
    audit.record(session, by, "price.set", subject=product.sku, currency=code, price=str(amount))
    return row


def _not_an_amount(currency: str, given: object) -> str:
    unit = "whole " + currency if round_money(Decimal("0.5"), currency) != Decimal("0.5") else currency
    return f"must be an amount in {unit}, 0 or more; got {shown(given)}"


def quote(session: Session, product: Product, currency: str, day: date, company_currency: str,
          field: str = "sku") -> Quote:
    """``product``'s unit price in ``currency`` on ``day``: the catalogue's in the company's own
    currency; else its price list's; else the catalogue's at the day's rate, rounded to the
    currency; else ``NoPrice``."""
    if currency == company_currency:
        return Quote(product.unit_price, "catalogue")
    listed = session.scalars(select(ProductPrice).where(ProductPrice.product_id == product.id,
                                                        ProductPrice.currency == currency)).first()
    rate = rate_on(session, currency, day)
    if listed is not None:
        return Quote(listed.unit_price, "price list", rate.rate if rate else None, rate.valid_from if rate else None)
    if rate is None:
        raise NoPrice(field, product.sku, currency, company_currency)
    return Quote(round_money(product.unit_price * rate.rate, currency), "rate", rate.rate, rate.valid_from)


def to_company(amount: Decimal, rate: Decimal | None, currency: str, company_currency: str) -> Decimal | None:
    """An amount of a document in ``currency`` in the company's currency at the document's own
    ``rate``; None where it has none."""
    if currency == company_currency:
        return amount
    if rate is None:
        return None
    return round_money(Decimal(amount) / rate, company_currency)


PRICE_COLUMNS = ("sku", "currency", "price")


def price_row(row: ProductPrice) -> dict[str, str]:
    return {"sku": row.product.sku, "currency": row.currency, "price": str(row.unit_price)}


def import_prices(session: Session, name: str, rows: list[tuple[int, dict[str, str]]], by: str,
                  company_currency: str) -> dict[str, list[str]]:
    """A price list file's rows (sku, currency, price), all or none: every broken rule of every row
    first (``FileRefused``), then each price set. Returns "SKU CUR" added, changed and unchanged."""
    from .catalog import product_by_sku
    from .errors import FileRefused

    problems: list[tuple[int, str, str]] = []
    plans: list[tuple[Product, str, Decimal]] = []
    seen: dict[tuple[str, str], int] = {}
    for row_no, raw in rows:
        checked: dict[str, object] = {}
        for column, check in (("sku", lambda v: product_by_sku(session, v, "sku")), ("currency", currency_code),
                              ("price", lambda v: parse_money(v, "price"))):
            try:
                checked[column] = check(raw.get(column) or "")
            except ValidationError as exc:
                problems.append((row_no, column, exc.rule))
        if len(checked) < 3:
            continue
        product, code, amount = checked["sku"], checked["currency"], checked["price"]
        if code == company_currency:
            problems.append((row_no, "currency", f"{code} is the company's own currency: the catalogue's price "
                                                 f"(`dealflow product import`)"))
        elif amount < 0 or amount != round_money(amount, code):
            problems.append((row_no, "price", _not_an_amount(code, raw.get("price"))))
        elif (product.sku, code) in seen:
            problems.append((row_no, "sku", f"{product.sku} in {code} is also on row {seen[product.sku, code]}"))
        else:
            seen[product.sku, code] = row_no
            plans.append((product, code, amount))
    if problems:
        raise FileRefused(name, problems, len(rows))
    result: dict[str, list[str]] = {"added": [], "changed": [], "unchanged": []}
    for product, code, amount in plans:
        row = session.scalars(select(ProductPrice).where(ProductPrice.product_id == product.id,
                                                         ProductPrice.currency == code)).first()
        key = f"{product.sku} {code}"
        if row is None:
            session.add(ProductPrice(product_id=product.id, currency=code, unit_price=amount))
            result["added"].append(key)
        elif row.unit_price != amount:
            row.unit_price = amount
            result["changed"].append(key)
        else:
            result["unchanged"].append(key)
    session.flush()
    return result
