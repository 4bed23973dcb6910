"""What a person typed into an answer, read as the domain's values: a line of text, notes, a
whole number, a day. Every door (a form, the command line, the portal, an import) reads it the
same way, and a value that is not what it should be is refused naming the field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from .errors import ValidationError
from .text import bounded, one_line, shown

MAX_QUANTITY = 100_000
MAX_LINES = 200


def line_of(answer: dict[str, Any], name: str, max_len: int = 80, required: bool = False) -> str:
    return one_line(answer.get(name), name, max_len, required)


def notes_of(answer: dict[str, Any], name: str, max_len: int = 4000) -> str:
    return bounded(answer.get(name), name, max_len)


def whole_number(value: Any, name: str, limit: int = 10**9, positive: bool = False) -> int:
    """A whole number someone typed (12, "12", 12.0), at most ``limit`` in size (and above zero
    if ``positive``), checked before it becomes a Python int (a typed 1e999999999 would
    otherwise take all memory)."""
    if isinstance(value, bool):
        raise ValidationError(name, f"must be a whole number, got {shown(value)}")
    try:
        number = Decimal(str(value).strip())
    except Exception:
        raise ValidationError(name, f"must be a whole number, got {shown(value)}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValidationError(name, f"must be a whole number, got {shown(value)}")
    if positive and number <= 0:
        raise ValidationError(name, "must be greater than zero")
    if abs(number) > limit:
        raise ValidationError(name, f"must be at most {limit:,}")
    return int(number)


def quantity(value: Any, name: str) -> int:
    return whole_number(value, name, limit=MAX_QUANTITY, positive=True)


def day_of(answer: dict[str, Any], name: str) -> date | None:
    value = answer.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationError(name, f"must be a date as YYYY-MM-DD, got {shown(value)}") from None
