"""The gateway's settings: the Prefect server it fronts, that server's credential, the address
people open, and how long a session lasts."""

from __future__ import annotations

from dataclasses import dataclass

SESSION_HOURS = 8


@dataclass(frozen=True)
class GatewayConfig:
    upstream: str  # the Prefect server, e.g. http://127.0.0.1:4200 (its API under /api)
    credential: str | None  # Prefect's credential (user:password); None: a server without one
    public_url: str | None = None  # https://prefect.example.com behind a TLS proxy: origin and Secure cookies
    session_hours: float = SESSION_HOURS


def config_from_env(upstream: str | None = None, public_url: str | None = None) -> GatewayConfig:
    """The gateway's settings: the Prefect server it fronts (``--upstream``, else
    DEALFLOW_GATEWAY_UPSTREAM, else PREFECT_API_URL without its /api) and its credential
    (PREFECT_API_AUTH_STRING, or the one `dealflow up` keeps for that address)."""
    import os

    from .. import api_credential

    upstream = upstream or os.environ.get("DEALFLOW_GATEWAY_UPSTREAM") or \
        os.environ.get("PREFECT_API_URL", "").rstrip("/").removesuffix("/api")
    if not upstream:
        raise ValueError("the gateway needs the Prefect server's address: --upstream http://127.0.0.1:4200 "
                         "(or PREFECT_API_URL)")
    env = {**os.environ, "PREFECT_API_URL": upstream.rstrip("/") + "/api"}
    api_credential.supply(env)
    return GatewayConfig(upstream=upstream, credential=env.get("PREFECT_API_AUTH_STRING") or None,
                         public_url=public_url or os.environ.get("DEALFLOW_GATEWAY_URL") or None)
