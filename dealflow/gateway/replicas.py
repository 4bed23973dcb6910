"""Several Prefect API replicas behind the gateway: which are ready, and how a request is spread
over them.

``Replicas`` asks each replica's ``/api/ready`` in the background every ``CHECK_SECONDS`` (Prefect
answers it without the credential, 200 when the replica can reach its database) and picks the
ready ones in turn (round robin). A replica that refuses a connection counts as not ready until
its next good check.

``Spread`` is the httpx transport of the gateway's one client when it fronts several replicas:
every request of the UI, of the command line's API and of the gateway itself goes through it.

- A request that could not reach a replica (its connection refused or not made in time) reached
  no server at all: it is sent to the next ready replica, whatever its method.
- A request that broke off after it was sent (the replica died while answering) is sent again
  only if repeating it changes nothing: GET, HEAD, OPTIONS, and Prefect's reads by POST (filters,
  counts, pages: what ``policy`` calls a read). Anything else (a Resume, a cancel) is answered
  with a 502 that says it may have been done, never sent twice.
- With no replica ready, 502 at once: "no Prefect API replica is ready".
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable

import httpx

from .policy import READ, decide

log = logging.getLogger("dealflow.gateway")

CHECK_SECONDS = 3.0
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)  # the request reached no server
BROKEN_OFF = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout)


class NoReplicaReady(httpx.ConnectError):
    """No API replica is ready (or every ready one refused the connection)."""


class MaybeDone(httpx.RemoteProtocolError):
    """A change broke off after it was sent: it may have been made, and is not sent again."""


def origin(url: str) -> str:
    """``scheme://host:port`` of a replica's address (its API is under /api)."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.scheme}://{parsed.host}:{port}"


class Replicas:
    """The replicas' readiness: unknown counts as ready until the first check says otherwise."""

    def __init__(self, urls: Iterable[str], check_seconds: float = CHECK_SECONDS):
        self.urls = [origin(u) for u in urls]
        if not self.urls:
            raise ValueError("no replica given")
        self.ready = dict.fromkeys(self.urls, True)
        self.check_seconds = check_seconds
        self._turn = itertools.cycle(range(len(self.urls)))
        self._task: asyncio.Task | None = None
        self.checks = 0  # rounds of checks done (tests wait for a round, not for a time)

    def pick(self, tried: Iterable[str] = ()) -> str | None:
        """The next ready replica not yet tried, in turn; None if there is none."""
        tried = set(tried)
        for _ in range(len(self.urls)):
            url = self.urls[next(self._turn)]
            if self.ready[url] and url not in tried:
                return url
        return None

    def mark_down(self, url: str) -> None:
        if self.ready.get(url):
            log.warning("Prefect API replica %s does not answer: no requests to it until it is ready again", url)
        self.ready[url] = False

    async def check_once(self, client: httpx.AsyncClient) -> None:
        async def one(url: str) -> None:
            try:
                ok = (await client.get(f"{url}/api/ready")).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok and not self.ready[url]:
                log.info("Prefect API replica %s is ready again", url)
            elif not ok and self.ready[url]:
                log.warning("Prefect API replica %s is not ready", url)
            self.ready[url] = ok

        await asyncio.gather(*(one(u) for u in self.urls))
        self.checks += 1

    async def _watch(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(2.0)) as client:
            while True:
                await self.check_once(client)
                await asyncio.sleep(self.check_seconds)

    def watch(self) -> None:
        """Check in the background, in the running event loop (again if an earlier loop ended)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._watch(), name="dealflow-replica-checks")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, RuntimeError):
                pass


def safe_to_repeat(request: httpx.Request) -> bool:
    """Sending it again changes nothing: a GET, HEAD or OPTIONS, or one of Prefect's reads by POST."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return True
    return request.method == "POST" and decide("POST", request.url.path).kind == READ


class Spread(httpx.AsyncBaseTransport):
    """Each request to the next ready replica (see the module's docstring for what is sent again)."""

    def __init__(self, replicas: Replicas, inner: httpx.AsyncBaseTransport | None = None):
        self.replicas = replicas
        self.inner = inner or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.replicas.watch()
        tried: list[str] = []
        while (url := self.replicas.pick(tried)) is not None:
            tried.append(url)
            target = httpx.URL(url)
            request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
            try:
                return await self.inner.handle_async_request(request)
            except NOT_SENT:
                self.replicas.mark_down(url)
            except BROKEN_OFF as exc:
                if not safe_to_repeat(request):
                    raise MaybeDone(f"the Prefect API replica {url} broke off after {request.method} "
                                    f"{request.url.path} was sent ({type(exc).__name__}): it may have been "
                                    f"done; look before trying again", request=request) from exc
                # not marked down: a connection closed while idle breaks off too; a dead replica
                # refuses the next connection and is marked down then
            log.info("%s %s: replica %s failed, trying the next", request.method, request.url.path[:120], url)
        raise NoReplicaReady("no Prefect API replica is ready" + (f" (tried {', '.join(tried)})" if tried else ""),
                             request=request)

    async def aclose(self) -> None:
        await self.replicas.stop()
        await self.inner.aclose()
