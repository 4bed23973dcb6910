"""Prefect's scaled self-hosting, as its guide "How to scale self-hosted Prefect" lays it out: API
replicas (``prefect server start --no-services``) behind a load balancer, one process for the
background services (``prefect server services start``), PostgreSQL for Prefect's database and
Redis (the ``prefect-redis`` package) for its messaging, event cache, causal ordering, lease
storage and docket. What dealflow needs of it: the settings every Prefect server process shares,
the commands that start each piece, and the one-time database upgrade before the replicas start
(each replica would otherwise migrate at start, several at once).

Prefect's setting names live here only (checked against prefect 3.9's settings models and
prefect_redis.client.RedisMessagingSettings); ``dealflow up --api-replicas N --redis URL`` and the
README's recipe for several hosts use them through ``scaled_server_env``."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

DATABASE_SETTING = "PREFECT_SERVER_DATABASE_CONNECTION_URL"

# module paths inside prefect-redis, as Prefect's guide names them
REDIS_MODULES = {
    "PREFECT_SERVER_EVENTS_MESSAGING_BROKER": "prefect_redis.messaging",
    "PREFECT_SERVER_EVENTS_MESSAGING_CACHE": "prefect_redis.messaging",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
}


class TopologyRefused(ValueError):
    """The scaled topology cannot run as asked; the message is one line naming the setting."""


def require_postgres(env: Mapping[str, str]) -> str:
    """Prefect's database URL, if it is PostgreSQL (several API replicas share one database: SQLite
    cannot be shared so)."""
    url = env.get(DATABASE_SETTING, "")
    if not url.startswith("postgresql+asyncpg://"):
        raise TopologyRefused(f"{DATABASE_SETTING}: several Prefect API replicas need Prefect's database on "
                              f"PostgreSQL (postgresql+asyncpg://USER@HOST:5432/DB), not "
                              f"{'SQLite' if not url or url.startswith('sqlite') else 'this URL'}")
    return url


def redis_shown(url: str) -> str:
    """A Redis URL as it may be printed or logged: its password, if any, replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return url.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        return "(a URL that does not parse)"
    return url


def redis_parts(url: str) -> tuple[str, int, int, str]:
    """Host, port, database and password of a ``redis://[:PASSWORD@]HOST:PORT/DB`` URL."""
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
        db = int(parts.path.strip("/") or 0)
    except ValueError:
        raise TopologyRefused(f"redis: {redis_shown(url)[:80]!r} is not a Redis URL (redis://HOST:PORT/DB)") from None
    if parts.scheme != "redis" or not parts.hostname or db < 0:
        raise TopologyRefused(f"redis: {redis_shown(url)[:80]!r} is not a Redis URL (redis://HOST:PORT/DB)")
    return parts.hostname, port, db, parts.password or ""


def scaled_server_env(env: Mapping[str, str], redis_url: str) -> dict[str, str]:
    """The environment of every Prefect server process of the scaled topology (API replicas and the
    services process): ``env`` (which must name Prefect's PostgreSQL database) with Redis for
    messaging, cache, causal ordering, lease storage and the docket, and no migration at a
    replica's start (``upgrade_command`` runs once before)."""
    require_postgres(env)
    host, port, db, password = redis_parts(redis_url)
    scaled = {**env, **REDIS_MODULES, "PREFECT_SERVER_DOCKET_URL": redis_url,
              "PREFECT_REDIS_MESSAGING_HOST": host, "PREFECT_REDIS_MESSAGING_PORT": str(port),
              "PREFECT_REDIS_MESSAGING_DB": str(db),
              "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false"}
    if password:
        scaled["PREFECT_REDIS_MESSAGING_PASSWORD"] = password
    return scaled


def replica_env(scaled_env: Mapping[str, str], first: bool) -> dict[str, str]:
    """One API replica's environment: each replica registers Prefect's block types at its start,
    and two doing so at once on one database collide (unique violations logged by the dozen). The
    first replica registers them; the others do not (PREFECT_SERVER_REGISTER_BLOCKS_ON_START)."""
    return dict(scaled_env) if first else {**scaled_env, "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false"}


def upgrade_command() -> list[str]:
    """Prefect's database migrations, once, before the replicas start."""
    return [sys.executable, "-m", "prefect", "server", "database", "upgrade", "--yes"]


def api_replica_command(host: str, port: int) -> list[str]:
    """One API replica: the API and the UI, no background services."""
    return [sys.executable, "-m", "prefect", "server", "start", "--no-services", "--host", host, "--port", str(port)]


def services_command() -> list[str]:
    """Prefect's background services (scheduler, event persister, task-run recorder, …), all in one
    process, in the foreground."""
    return [sys.executable, "-m", "prefect", "server", "services", "start"]
