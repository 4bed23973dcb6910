"""Serving the gateway with uvicorn (``dealflow gateway``), and with it, when asked, the machines'
door (``door.MachineDoor``) in the same event loop."""

from __future__ import annotations

import asyncio
import logging

from .app import create_app
from .config import GatewayConfig


def serve(config: GatewayConfig, host: str = "127.0.0.1", port: int = 4300, trusted_proxies: str = "",
          machines: tuple[str, int] | None = None) -> None:
    """Serve the gateway (blocking). Only with ``trusted_proxies`` is X-Forwarded-For believed
    (from those addresses): it is what the failed sign-ins are counted by. ``machines``: also the
    machines' door on that (host, port), in front of the same API replicas."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request forwarded
    from ..slow_clients import HeadersInTime

    server = uvicorn.Server(uvicorn.Config(
        create_app(config), host=host, port=port, access_log=False, server_header=False, timeout_keep_alive=30,
        log_level="warning", http=HeadersInTime, proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None))
    if machines is None:
        server.run()
        return

    async def both() -> None:
        from .door import MachineDoor
        from .replicas import Replicas

        door = MachineDoor(Replicas(config.upstreams))
        await door.start(*machines)
        try:
            await server.serve()
        finally:
            await door.stop()

    asyncio.run(both())
