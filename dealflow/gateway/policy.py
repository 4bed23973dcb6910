"""What a signed-in person may ask of the Prefect API through dealflow's gateway: one table.

Prefect's open-source server has one credential and no rights per person: whoever holds it may
create runs with a command of their choosing, rewrite stored answers, read Secret blocks. The
gateway (``dealflow/gateway/``) keeps that credential and lets people through only to what this
table allows; everything else is refused (403) and audited. Pure data and one function, no
Prefect and no database: the gateway, its tests and the README's table read the same rows.

Kinds:
- ``read``: what the UI needs to show runs, a run's page, its task runs, artifacts, logs, tags,
  filters, deployments and work pools. Prefect's API reads by POST as well (``/filter``,
  ``/count``): those are listed one by one, and nothing that writes is among them.
- ``resume``: a run's Resume; the gateway then checks that the run is paused at a wait the
  person's role may answer, names the person and seals the answer.
- ``cancel``: a run's cancel (its ``set_state`` to Cancelling, nothing else): managers only.

A path is matched only in its plain form: any ``%``, ``\\``, ``//``, ``.`` or ``..`` segment, or a
character outside the few a Prefect path uses, is refused before the table is read, so that what
was checked is exactly what Prefect routes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

READ, RESUME, CANCEL, DENY = "read", "resume", "cancel", "deny"

# (method, path under /api, kind). "{id}" is one path segment.
API_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/health", READ),
    ("GET", "/ready", READ),
    ("GET", "/version", READ),
    ("GET", "/hello", READ),
    ("GET", "/admin/version", READ),
    ("GET", "/flows/{id}", READ),
    ("GET", "/flows/name/{id}", READ),
    ("POST", "/flows/filter", READ),
    ("POST", "/flows/count", READ),
    ("POST", "/flows/paginate", READ),
    ("GET", "/flow_runs/{id}", READ),
    ("GET", "/flow_runs/{id}/graph", READ),
    ("GET", "/flow_runs/{id}/graph-v2", READ),
    ("GET", "/flow_runs/{id}/input/{id}", READ),
    ("GET", "/flow_runs/{id}/logs/download", READ),
    ("POST", "/flow_runs/filter", READ),
    ("POST", "/flow_runs/count", READ),
    ("POST", "/flow_runs/history", READ),
    ("POST", "/flow_runs/lateness", READ),
    ("POST", "/flow_runs/paginate", READ),
    ("POST", "/flow_runs/{id}/input/filter", READ),
    ("POST", "/flow_runs/{id}/resume", RESUME),
    ("POST", "/flow_runs/{id}/set_state", CANCEL),
    ("GET", "/flow_run_states/", READ),
    ("GET", "/flow_run_states/{id}", READ),
    ("GET", "/task_runs/{id}", READ),
    ("GET", "/task_run_states/", READ),
    ("GET", "/task_run_states/{id}", READ),
    ("POST", "/task_runs/filter", READ),
    ("POST", "/task_runs/count", READ),
    ("POST", "/task_runs/history", READ),
    ("POST", "/task_runs/paginate", READ),
    ("GET", "/artifacts/{id}", READ),
    ("GET", "/artifacts/{id}/latest", READ),
    ("POST", "/artifacts/filter", READ),
    ("POST", "/artifacts/count", READ),
    ("POST", "/artifacts/latest/filter", READ),
    ("POST", "/artifacts/latest/count", READ),
    ("POST", "/logs/filter", READ),
    ("GET", "/deployments/{id}", READ),
    ("GET", "/deployments/name/{id}/{id}", READ),
    ("GET", "/deployments/{id}/schedules", READ),
    ("POST", "/deployments/filter", READ),
    ("POST", "/deployments/count", READ),
    ("POST", "/deployments/paginate", READ),
    ("GET", "/work_pools/{id}", READ),
    ("POST", "/work_pools/filter", READ),
    ("POST", "/work_pools/count", READ),
    ("POST", "/work_pools/{id}/queues/filter", READ),
    ("POST", "/work_pools/{id}/workers/filter", READ),
    ("GET", "/work_pools/{id}/queues/{id}", READ),
    ("GET", "/work_queues/{id}", READ),
    ("GET", "/work_queues/{id}/status", READ),
    ("POST", "/work_queues/filter", READ),
    ("POST", "/events/filter", READ),
    ("GET", "/events/filter/next", READ),
    ("POST", "/events/count-by/{id}", READ),
    ("POST", "/saved_searches/filter", READ),
    ("POST", "/task_workers/filter", READ),
    ("POST", "/ui/flow_runs/history", READ),
    ("POST", "/ui/flow_runs/count-task-runs", READ),
    ("POST", "/ui/flows/count-deployments", READ),
    ("POST", "/ui/flows/next-runs", READ),
    ("POST", "/ui/schemas/validate", READ),
    ("POST", "/ui/task_runs/count", READ),
    ("POST", "/ui/task_runs/dashboard/counts", READ),
    ("GET", "/ui/task_runs/{id}", READ),
)

# Segments a Prefect id, name or key is made of here (UUIDs, slugs, artifact keys, wait keys).
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9_./:-]*")
_UI_ASSET = re.compile(r"/(?:v2/)?(?:[A-Za-z0-9_-]+/)*[A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Decision:
    kind: str  # READ, RESUME, CANCEL or DENY
    run_id: str | None = None  # the flow run a resume or a cancel is for
    reason: str = ""


def _table() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    by_method: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for method, path, kind in API_ROUTES:
        by_method.setdefault(method, []).append((tuple(path.lstrip("/").split("/")), kind))
    return by_method


_BY_METHOD = _table()


def plain_path(path: str) -> bool:
    """Whether ``path`` is in the one form the table is matched against: no escapes, no empty,
    ``.`` or ``..`` segments, only the characters Prefect's paths use."""
    if not _PLAIN_PATH.fullmatch(path) or "//" in path:
        return False
    return all(part not in (".", "..") for part in path.split("/"))


def decide(method: str, path: str) -> Decision:
    """What the gateway does with ``method`` ``path`` (the raw path, before any decoding) from a
    signed-in person. Paths outside ``/api`` are the UI's own pages and files: read."""
    if not plain_path(path):
        return Decision(DENY, reason="not a plain path")
    if path != "/api" and not path.startswith("/api/"):
        if method in ("GET", "HEAD") and _UI_ASSET.fullmatch(path):
            return Decision(READ)
        return Decision(DENY, reason="the UI's pages are read only")
    parts = tuple(path[len("/api/"):].split("/")) if path != "/api" else ()
    for pattern, kind in _BY_METHOD.get("GET" if method == "HEAD" else method, ()):
        if len(pattern) != len(parts):
            continue
        ids: list[str] = []
        for want, got in zip(pattern, parts, strict=True):
            if want == "{id}":
                if not _SEGMENT.fullmatch(got):
                    break
                ids.append(got)
            elif want != got:
                break
        else:
            return Decision(kind, run_id=ids[0] if kind in (RESUME, CANCEL) and ids else None)
    return Decision(DENY, reason="not in the gateway's table")


def readme_rows() -> list[str]:
    """The table's read rows as the README prints them (a test keeps the two the same)."""
    def paths(method: str) -> str:
        return ", ".join(f"`{p}`" for m, p, kind in API_ROUTES if m == method and kind == READ)

    return [f"| everyone signed in | read | `GET` under `/api`: {paths('GET')}; the UI's own pages and files "
            f"(outside `/api`) |",
            f"| everyone signed in | read (Prefect reads by POST) | `POST` under `/api`: {paths('POST')} |"]
