"""Serving the portal with uvicorn: as its own process (``dealflow portal``) or from a thread of
this one (the demo, the tests)."""

from __future__ import annotations

import threading
import time

from services.config import PORTAL_PORT, Settings

from .app import create_app


def serve(host: str = "127.0.0.1", port: int = PORTAL_PORT, settings: Settings | None = None,
          trusted_proxies: str = "") -> None:
    """Serve the portal (blocking) with uvicorn; its own access log (no links in it). Only with
    ``trusted_proxies`` is X-Forwarded-For believed (from those addresses)."""
    import uvicorn

    from ..slow_clients import HeadersInTime

    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, server_header=False,
                proxy_headers=bool(trusted_proxies), forwarded_allow_ips=trusted_proxies or None,
                log_level="warning", http=HeadersInTime)


class PortalThread:
    """The portal served from a thread of this process (the demo, the tests): ``url`` once started."""

    def __init__(self, settings: Settings | None = None, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        from ..slow_clients import HeadersInTime

        self.config = uvicorn.Config(create_app(settings), host=host, port=port, access_log=False,
                                     log_level="warning", server_header=False, proxy_headers=False,
                                     http=HeadersInTime)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="dealflow-portal", daemon=True)
        self.url = ""

    def __enter__(self) -> PortalThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the portal did not start")
            time.sleep(0.05)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

