"""Failed attempts counted per address in the business database, so that every replica of a door
counts the same failures (``dealflow.limits.FailureLimit``): the portal's links that do not verify,
the gateway's failed sign-ins. One row per failure; an address with ``allowed`` failures within
the window is refused until the newest ``allowed``-th of them leaves it. Rows older than the window
count for nothing and are deleted (``trim``), so the table holds about one window's failures.

The moments are the door's clock (seconds, as ``time.time`` gives them), not the database's
``now()``: the replicas share a wall clock, and a test moves time by hand.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base

MAX_KEY = 80  # an IPv6 /64 is at most 43 characters; anything longer or odd is stored by its digest


class Scope(StrEnum):
    """Whose failures: each door counts its own."""
    PORTAL = "portal"
    GATEWAY = "gateway"

    @classmethod
    def check(cls) -> str:
        return "scope in (" + ",".join(f"'{m.value}'" for m in cls) + ")"


class FailedAttempt(Base):
    """One failure from one address (``key``, as ``dealflow.limits.limit_key`` names it)."""
    __tablename__ = "failed_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(12))
    key: Mapped[str] = mapped_column(String(MAX_KEY))
    at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint(Scope.check(), name="scope"),
        Index("ix_failed_attempts_scope_key_at", "scope", "key", "at"),  # an address's count
        Index("ix_failed_attempts_scope_at", "scope", "at"),  # the trim
    )


def moment(seconds: float) -> datetime:
    """A clock's reading (seconds since the epoch) as the naive UTC the tables store."""
    return datetime(1970, 1, 1) + timedelta(seconds=seconds)


def seconds_of(at: datetime) -> float:
    return (at.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()


def stored_key(key: str) -> str:
    """The key as stored: an address as it is; a key too long for the column, or holding anything
    but printable ASCII (which no address does), by its SHA-256, so that it fits and PostgreSQL
    takes it (no NUL), and two different keys stay two."""
    if len(key) <= MAX_KEY and key.isascii() and key.isprintable() and not key.startswith("sha256:"):
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def record_failure(s: Session, scope: Scope, key: str, at: datetime) -> None:
    s.add(FailedAttempt(scope=Scope(scope).value, key=stored_key(key), at=at))


def blocked_until(s: Session, scope: Scope, key: str, allowed: int, window: timedelta,
                  now: datetime) -> datetime | None:
    """Until when ``key`` is refused (None: it is not): it has ``allowed`` failures after
    ``now - window``, and is free again when the ``allowed``-th newest of them leaves the window.
    One probe of the (scope, key, at) index, reading at most ``allowed`` entries."""
    at = s.scalars(select(FailedAttempt.at)
                   .where(FailedAttempt.scope == Scope(scope).value, FailedAttempt.key == stored_key(key),
                          FailedAttempt.at > now - window)
                   .order_by(FailedAttempt.at.desc()).offset(allowed - 1).limit(1)).first()
    return None if at is None else at + window


def trim(s: Session, scope: Scope, before: datetime) -> int:
    """Delete the failures at or before ``before`` (out of every window): how many."""
    done = s.execute(delete(FailedAttempt).where(FailedAttempt.scope == Scope(scope).value,
                                                 FailedAttempt.at <= before))
    return done.rowcount or 0


def addresses_failing(s: Session, scope: Scope, since: datetime) -> int:
    """How many addresses have failed after ``since``."""
    return s.scalar(select(func.count(func.distinct(FailedAttempt.key)))
                    .where(FailedAttempt.scope == Scope(scope).value, FailedAttempt.at > since)) or 0
