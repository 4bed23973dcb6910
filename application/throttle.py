"""Failed attempts counted per address for the doors (``models.throttle``): how long an address is
refused, a failure recorded, the old ones trimmed. Times are the door's clock in seconds
(``dealflow.limits.FailureLimit`` holds the clock and the rule's numbers)."""

from __future__ import annotations

from datetime import timedelta

from models import throttle
from models.throttle import Scope

from .uow import unit_of_work


def blocked_for(scope: str, key: str, allowed: int, window: float, now: float) -> float:
    """Seconds until ``key`` may try again at ``now`` (0: it may now). Reads only."""
    with unit_of_work() as s:
        until = throttle.blocked_until(s, Scope(scope), key, allowed, timedelta(seconds=window),
                                       throttle.moment(now))
    return max(0.0, throttle.seconds_of(until) - now) if until is not None else 0.0


def record_failure(scope: str, key: str, now: float) -> None:
    """One failure of ``key`` at ``now``: one INSERT, committed."""
    with unit_of_work() as s:
        throttle.record_failure(s, Scope(scope), key, throttle.moment(now))


def trim(scope: str, before: float) -> int:
    """Delete ``scope``'s failures at or before ``before`` (out of the window): how many."""
    with unit_of_work() as s:
        return throttle.trim(s, Scope(scope), throttle.moment(before))


def addresses_failing(scope: str, since: float) -> int:
    """How many addresses of ``scope`` have failed after ``since``."""
    with unit_of_work() as s:
        return throttle.addresses_failing(s, Scope(scope), throttle.moment(since))
