"""Failures counted per address in the business database, so that every replica of a door counts
the same ones: the portal's links that do not verify, the gateway's failed sign-ins. After
``allowed`` within ``window`` seconds an address is refused until enough of them leave the window
(``models.throttle``, through ``application.throttle``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

FAILURES_ALLOWED = 20  # failures per address within the window
FAILURE_WINDOW = 600.0
MAX_REMEMBERED = 10_000  # blocked addresses this process remembers (only spares the database a query)

log = logging.getLogger("dealflow.limits")


class FailureLimit:
    """Failed attempts of one door (``scope``: "portal" or "gateway") counted per address in the
    business database: after ``allowed`` within ``window`` seconds, that address is refused until
    the ``allowed``-th newest of its failures leaves the window. Every replica of the door reads
    and writes the same rows, so two replicas behind one load balancer give an address the
    allowance once, not twice. ``clock`` (wall-clock seconds: the replicas must agree on it) dates
    the failures and the window; the database's own ``now()`` is not used.

    What it costs. ``fail`` is one INSERT (and, at most every tenth of a window per process, a
    DELETE of the rows that left the window, so the table holds about one window's failures and
    never grows without bound; a blocked address is never forgotten to make room). ``blocked_for``
    is one probe of the (scope, key, at) index reading at most ``allowed`` entries. The doors ask
    it only on their failure path: the gateway before a sign-in is tried (not on the requests of a
    signed-in session), the portal before a link is read (not for its home page or style sheet).
    A request there that never failed pays that one probe too: it must be asked before the
    attempt (a check after a sign-in would let a right guess through), and only the database
    knows whether another replica has seen the address fail, so "this process never saw it fail"
    would hand each replica its own allowance again, which is what this replaces. An address
    found blocked is remembered here until its block ends (blocks only end with time, and other
    replicas can only lengthen them), so a blocked address hammering the door costs no query."""

    def __init__(self, scope: str, allowed: int = FAILURES_ALLOWED, window: float = FAILURE_WINDOW,
                 clock: Callable[[], float] = time.time):
        from models.throttle import Scope

        if allowed < 1 or not window > 0:
            raise ValueError(f"a failure limit needs allowed >= 1 and window > 0, not {allowed} and {window}")
        self.scope = Scope(scope).value
        self.allowed, self.window, self.clock = allowed, window, clock
        self._blocked: dict[str, float] = {}  # key -> until, for keys found blocked
        self._trimmed_at: float | None = None
        self._lock = threading.Lock()

    def blocked_for(self, ip: str) -> float:
        """Seconds until ``ip`` may try again (0: it may now). Looks only: nothing is written.
        Blocking (a database query): the async gateway calls it in a thread."""
        from application import throttle

        now = self.clock()
        with self._lock:
            until = self._blocked.get(ip)
            if until is not None and until > now:
                return until - now
            self._blocked.pop(ip, None)
        wait = throttle.blocked_for(self.scope, ip, self.allowed, self.window, now)
        if wait > 0:
            with self._lock:
                if len(self._blocked) >= MAX_REMEMBERED:
                    self._blocked = {k: u for k, u in self._blocked.items() if u > now}
                if len(self._blocked) < MAX_REMEMBERED:
                    self._blocked[ip] = now + wait
        return wait

    def tracked(self) -> int:
        """How many addresses have failures within the window (all replicas')."""
        from application import throttle

        return throttle.addresses_failing(self.scope, self.clock() - self.window)

    def fail(self, ip: str) -> None:
        """One failure of ``ip``, for every replica to count. Blocking (a database write)."""
        from application import throttle

        now = self.clock()
        throttle.record_failure(self.scope, ip, now)
        with self._lock:
            due = self._trimmed_at is None or now - self._trimmed_at >= self.window / 10 or now < self._trimmed_at
            if due:
                self._trimmed_at = now
        if due:
            try:
                throttle.trim(self.scope, now - self.window)
            except Exception as exc:  # noqa: BLE001 - two replicas' trims may collide; the next one trims
                log.warning("old failures not trimmed this time: %s", type(exc).__name__)


def limit_key(host: str) -> str:
    """Whose failures count together: an address; an IPv6 address by its /64 (one network, which
    one person can hold whole)."""
    if ":" in host:
        import ipaddress

        try:
            return str(ipaddress.ip_network(f"{host}/64", strict=False))
        except ValueError:
            return host
    return host
