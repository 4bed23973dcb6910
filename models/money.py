"""Money is Decimal, rounded half up to the currency's minor unit: round each line, then sum."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import ValidationError

MINOR_UNITS = {"JPY": 0, "KWD": 3, "BHD": 3}
DEFAULT_CURRENCY = "USD"
ZERO = Decimal("0")


def quantum(currency: str = DEFAULT_CURRENCY) -> Decimal:
    return Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))


def round_money(amount: Decimal, currency: str = DEFAULT_CURRENCY) -> Decimal:
    return Decimal(amount).quantize(quantum(currency), rounding=ROUND_HALF_UP)


def total(amounts: Iterable[Decimal], currency: str = DEFAULT_CURRENCY) -> Decimal:
    return round_money(sum(amounts, ZERO), currency)


def parse_money(value: object, field: str) -> Decimal:
    """A user-given amount: a number with at most the currency's decimals, never a float's noise."""
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(field, f"must be a number, got {value!r}") from None
    if not amount.is_finite():
        raise ValidationError(field, f"must be a finite number, got {value!r}")
    return amount


def fmt(amount: Decimal, currency: str = DEFAULT_CURRENCY) -> str:
    return f"{currency} {round_money(amount, currency):,}"
