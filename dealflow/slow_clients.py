"""A client that sends its request's headers slowly is cut off.

Uvicorn's HTTP/1.1 protocol waits for a request's headers as long as the client keeps the
connection open (its keep-alive timeout starts only after a response, and any byte received
stops it), so a few hundred connections that each send a header line now and then would hold
the portal or the gateway. ``HeadersInTime`` closes a connection whose request headers are not
all in within ``HEADER_SECONDS`` of the connection opening (or of the previous response).
The portal and the gateway both serve with it."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0


class HeadersInTime(H11Protocol):
    header_seconds = HEADER_SECONDS

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._headers_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._headers_timer = self.loop.call_later(self.header_seconds, self._too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_headers_timer", None) is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _too_slow(self) -> None:
        self._headers_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()  # no request in hand: nothing to answer

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers are all in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection has as long

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
