"""The machines' door: one address for the executors, the worker, the portal and administrators'
commands in front of several Prefect API replicas (``dealflow gateway --machines-port``).

Why a door of its own, and not the people's one: the machines hold Prefect's credential and are
Prefect's own clients. They need all of the API (creating runs, setting states, work pools), and
websockets (a client sends its events on ``/api/events/in``; a suspended run's observer listens
on ``/api/events/out``), none of which the people's policy lets through. So this door passes each
connection through whole, as bytes, to a ready replica (``Replicas``): it reads nothing, adds
nothing and checks nothing. The credential is checked by the replica, as it would be without the
door, so the door opens nothing that the replicas' own addresses do not; keep it where they are
(on loopback, or a private network for several hosts).

Failover: a new connection goes to the next ready replica; one that refuses is marked down and
the next one tried. A connection to a replica that dies is closed, and Prefect's client sends its
request again on a new connection (it retries on a connection broken off, on any method: what
the client itself decided is safe), which reaches a live replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .replicas import Replicas

log = logging.getLogger("dealflow.gateway")

CONNECT_SECONDS = 5.0


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


class MachineDoor:
    """A TCP pass-through to the ready replicas."""

    def __init__(self, replicas: Replicas):
        self.replicas = replicas
        self.server: asyncio.base_events.Server | None = None
        self.connections = 0  # passed through so far (tests count these)

    async def start(self, host: str, port: int) -> None:
        self.replicas.watch()
        self.server = await asyncio.start_server(self._handle, host, port)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        tried: list[str] = []
        while (url := self.replicas.pick(tried)) is not None:
            tried.append(url)
            host, port = url.split("://", 1)[1].rsplit(":", 1)
            try:
                return await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), CONNECT_SECONDS)
            except (OSError, TimeoutError):
                self.replicas.mark_down(url)
        log.warning("machines' door: no Prefect API replica is ready (tried %s)", ", ".join(tried) or "none")
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            writer.close()  # the client sees the connection closed, and tries again
            return
        self.connections += 1
        up_reader, up_writer = upstream
        to_replica = asyncio.create_task(_pump(reader, up_writer))
        try:  # done when the replica closes (after the client's end reached it, or when it dies)
            await _pump(up_reader, writer)
        finally:
            to_replica.cancel()
            for w in (up_writer, writer):
                w.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await w.wait_closed()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
        await self.replicas.stop()
