"""The clock every model shares, without SQLAlchemy (a CLI command that only parses a date needs it)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC: both SQLite and PostgreSQL store and compare it the same way."""
    return datetime.now(UTC).replace(tzinfo=None)


WORKDAY = (9, 17)  # working hours, UTC: 9:00 to 17:00, Monday to Friday


def working_hours(start: datetime, end: datetime) -> float:
    """The working hours between ``start`` and ``end`` (naive UTC): the time inside 9:00-17:00 on
    Monday to Friday."""
    from datetime import timedelta

    total = 0.0
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        if day.weekday() < 5:
            opens, closes = day.replace(hour=WORKDAY[0]), day.replace(hour=WORKDAY[1])
            total += max(0.0, (min(closes, end) - max(opens, start)).total_seconds())
        day += timedelta(days=1)
    return total / 3600
