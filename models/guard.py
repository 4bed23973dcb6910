"""The last line against a value the database cannot hold: before any flush, every changed column
value is checked against its column (text length and control characters, integer and decimal
range). The rules on the entities come first and say it in the business's words; this guard
makes sure nothing they missed reaches the database as a PostgreSQL ``DataError`` (or, on SQLite,
is silently stored longer than the column says), whichever door the value came through."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Integer, Numeric, String, event, inspect
from sqlalchemy.orm import Session

from .base import Base
from .errors import ValidationError
from .text import ALLOWED_IN_NOTES, has_control

INT_RANGE = {Integer: (-(2**31), 2**31 - 1), BigInteger: (-(2**63), 2**63 - 1)}


def check_value(field: str, column_type: Any, value: Any) -> None:
    if value is None:
        return
    if isinstance(column_type, String) and isinstance(value, str):
        if has_control(value, ALLOWED_IN_NOTES):
            raise ValidationError(field, "must not contain control characters (only line breaks and tabs)")
        if column_type.length is not None and len(value) > column_type.length:
            raise ValidationError(field, f"must be at most {column_type.length} characters, got {len(value)}")
    elif isinstance(column_type, Numeric) and not isinstance(column_type, Integer) and isinstance(value, Decimal):
        if column_type.precision is not None and value.is_finite():
            limit = Decimal(10) ** (column_type.precision - (column_type.scale or 0))
            if abs(value) >= limit:
                raise ValidationError(field, f"must be less than {limit:,}")
        elif not value.is_finite():
            raise ValidationError(field, "must be a finite number")
    elif isinstance(column_type, Integer) and isinstance(value, int) and not isinstance(value, bool):
        low, high = INT_RANGE[BigInteger if isinstance(column_type, BigInteger) else Integer]
        if not low <= value <= high:
            raise ValidationError(field, f"must be between {low:,} and {high:,}")


@event.listens_for(Session, "before_flush")
def _values_fit_their_columns(session: Session, flush_context, instances) -> None:  # noqa: ARG001
    for obj in (*session.new, *session.dirty):
        if not isinstance(obj, Base):  # only dealflow's own tables
            continue
        state = inspect(obj)
        for attr in state.mapper.column_attrs:
            history = state.attrs[attr.key].history
            for value in history.added or ():
                check_value(attr.key, attr.columns[0].type, value)
