"""The gateway's settings: the Prefect server it fronts, that server's credential, the address
people open, and how long a session lasts."""

from __future__ import annotations

from dataclasses import dataclass

SESSION_HOURS = 8


@dataclass(frozen=True)
class GatewayConfig:
    upstream: str  # the Prefect server, e.g. http://127.0.0.1:4200 (its API under /api); the first replica
    credential: str | None  # Prefect's credential (user:password); None: a server without one
    public_url: str | None = None  # https://prefect.example.com behind a TLS proxy: origin and Secure cookies
    session_hours: float = SESSION_HOURS
    replicas: tuple[str, ...] = ()  # every API replica (upstream among them); () : upstream alone

    @property
    def upstreams(self) -> tuple[str, ...]:
        return self.replicas or (self.upstream,)


def parse_upstreams(text: str) -> tuple[str, ...]:
    """``URL1,URL2,…``: the API replicas, each ``http(s)://HOST:PORT`` (their API under /api)."""
    urls = tuple(dict.fromkeys(u.strip().rstrip("/").removesuffix("/api") for u in text.split(",") if u.strip()))
    for url in urls:
        scheme, _, rest = url.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise ValueError(f"{url[:80]!r} is not a Prefect server's address (http://HOST:PORT, its API under /api)")
    if not urls:
        raise ValueError("no Prefect server's address given (http://HOST:PORT[,http://HOST2:PORT…])")
    return urls


def config_from_env(upstream: str | None = None, public_url: str | None = None) -> GatewayConfig:
    """The gateway's settings: the Prefect server it fronts (``--upstream``, else
    DEALFLOW_GATEWAY_UPSTREAM, else PREFECT_API_URL without its /api; several API replicas
    comma-separated, ``http://h1:4200,http://h2:4200``) and its credential
    (PREFECT_API_AUTH_STRING, or the one `dealflow up` keeps for that address)."""
    import os

    from .. import api_credential

    upstream = upstream or os.environ.get("DEALFLOW_GATEWAY_UPSTREAM") or \
        os.environ.get("PREFECT_API_URL", "").rstrip("/").removesuffix("/api")
    if not upstream:
        raise ValueError("the gateway needs the Prefect server's address: --upstream http://127.0.0.1:4200 "
                         "(or PREFECT_API_URL)")
    replicas = parse_upstreams(upstream) if "," in upstream else ()
    upstream = replicas[0] if replicas else upstream
    env = {**os.environ, "PREFECT_API_URL": upstream.rstrip("/") + "/api"}
    api_credential.supply(env)
    return GatewayConfig(upstream=upstream, credential=env.get("PREFECT_API_AUTH_STRING") or None,
                         public_url=public_url or os.environ.get("DEALFLOW_GATEWAY_URL") or None,
                         replicas=replicas if len(replicas) > 1 else ())
