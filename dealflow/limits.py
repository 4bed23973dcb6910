"""Failures counted per address, in memory: the portal's links that do not verify, the gateway's
failed sign-ins. After ``allowed`` within ``window`` seconds an address is refused until the
oldest failure leaves the window."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

FAILURES_ALLOWED = 20  # failures per address within the window
FAILURE_WINDOW = 600.0
MAX_TRACKED = 100_000  # addresses whose failures are counted at once


class FailureLimit:
    """Links that did not verify, counted per address: after ``allowed`` within ``window``
    seconds, that address is refused until the oldest failure leaves the window."""

    def __init__(self, allowed: int = FAILURES_ALLOWED, window: float = FAILURE_WINDOW,
                 clock: Callable[[], float] = time.monotonic, max_tracked: int = MAX_TRACKED):
        self.allowed, self.window, self.clock, self.max_tracked = allowed, window, clock, max_tracked
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, seen: deque[float]) -> deque[float]:
        now = self.clock()
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        return seen

    def blocked_for(self, ip: str) -> float:
        """Seconds until ``ip`` may try again (0: it may now). Looks only: an address that never
        failed is not remembered."""
        with self._lock:
            seen = self._seen.get(ip)
            if not seen:
                return 0.0
            self._trim(seen)
            return seen[0] + self.window - self.clock() if len(seen) >= self.allowed else 0.0

    def tracked(self) -> int:
        return len(self._seen)

    def fail(self, ip: str) -> None:
        with self._lock:
            if ip not in self._seen and len(self._seen) >= self.max_tracked:  # a flood: forget the stale
                for other in [k for k, v in self._seen.items() if not self._trim(v)]:
                    del self._seen[other]
                if len(self._seen) >= self.max_tracked:
                    return  # never unblock a blocked address to make room
            self._trim(self._seen[ip]).append(self.clock())


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
