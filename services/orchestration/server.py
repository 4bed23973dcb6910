"""The Prefect server ``dealflow up`` runs: its tuning, its changes for a server on SQLite, and
the work pools' pinned job template.

On SQLite, ``up`` runs ``python -m dealflow.stack`` (``serve_prefect``): ``prefect server start``
with its app in ``RetryBusy``, and Prefect's SQLite transactions patched so that a resume takes
the write lock first. Both rely on Prefect's server internals (``prefect.server.api.server.
create_app``, ``prefect.cli._server_utils._run_in_foreground``, ``AioSqliteConfiguration.
begin_transaction``); ``SERVER_TUNING`` on setting names. See tests/test_prefect_contract.py."""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar

# --- the Prefect server on SQLite, as `up` runs it: a resume takes SQLite's write lock first, and a
# request refused with "database is locked" is sent again, as Prefect's own client does -----------------

RETRIES_ENV = "DEALFLOW_SERVER_RETRIES"  # 0: a plain `prefect server start`, without what follows
RETRIES = 6  # after 0.05, 0.1, 0.2, 0.4, 0.8, 1.6 s: 3.15 s at most
_WRITE_AT_ONCE: ContextVar[bool] = ContextVar("dealflow_sqlite_write_at_once", default=False)


def _resume_path(scope) -> bool:
    path = scope.get("path", "")
    return scope.get("method") == "POST" and "/flow_runs/" in path and path.endswith("/resume")


class RetryBusy:
    """An ASGI wrapper around Prefect's server app, for a server on SQLite.

    SQLite has one writer at a time. A Prefect API transaction that reads, then writes, fails at
    its first write with "database is locked" if another connection of the server committed in
    between: SQLite cannot turn its read into a write, and its busy timeout does not apply. Prefect
    answers 503 (Service Unavailable), marks it as safe to send again and its Python client does so
    (the CLI, workers and executors never notice); the UI does not, and shows "Failed to resume flow
    run" and "Oops. Something went wrong". The resume is such a transaction (it reads the run and
    the form, validates the answer, then writes the new state); Prefect's own set_state takes the
    write lock when it begins (BEGIN IMMEDIATE, waiting for it with the busy timeout) and cannot
    fail that way. So here:

    - a resume (POST .../flow_runs/ID/resume) begins its transaction as set_state does;
    - any request answered 503 is sent to the app again (its body kept), up to ``retries`` times,
      before an answer goes back. Websockets and all other answers pass as they are."""

    def __init__(self, app, retries: int = RETRIES, first_pause: float = 0.05):
        self.app, self.retries, self.first_pause = app, retries, first_pause

    def __getattr__(self, name: str):  # the wrapped app's attributes (uvicorn reads some)
        return getattr(self.app, name)

    async def _try(self, scope, body: bytes, receive, send, hold: bool) -> tuple[bool, int]:
        """Send the request to the app once: whether it answered 503 and ``hold`` kept that back,
        and the answer's status."""
        delivered, held, status = False, False, 0

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # the client's disconnect

        async def answer(message) -> None:
            nonlocal held, status
            if message["type"] == "http.response.start":
                status = message["status"]
            if hold and status == 503 and message["type"] == "http.response.start":
                held = True  # nothing has gone back yet
            elif not held:
                await send(message)

        token = _WRITE_AT_ONCE.set(_resume_path(scope))
        try:
            await self.app(dict(scope), replay, answer)  # a copy: routing writes into the scope
        except Exception:
            if not status:  # Starlette raises again what its handler answered: that is told below
                raise
        finally:
            _WRITE_AT_ONCE.reset(token)
        return held, status

    async def __call__(self, scope, receive, send) -> None:
        import asyncio
        import logging

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:  # the whole body, to send it again (API requests are small JSON)
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        log = logging.getLogger("prefect.server.dealflow")
        for attempt in range(self.retries + 1):
            held, status = await self._try(scope, body, receive, send, hold=attempt < self.retries)
            if not held:
                if status == 503:
                    log.warning("%s %s still answered 503 after %d tries", scope["method"], scope["path"],
                                attempt + 1)
                elif attempt:
                    log.info("%s %s answered after %d tries", scope["method"], scope["path"], attempt + 1)
                return
            await asyncio.sleep(self.first_pause * 2 ** attempt)


def _begin_immediate_when_asked() -> bool:
    """Prefect's SQLite transactions begin IMMEDIATE when ``with_for_update`` (set_state's); make
    them do so also while ``_WRITE_AT_ONCE`` is set (a resume). False if this Prefect has no such
    switch (then only the retries apply)."""
    import inspect

    from prefect.server.database.configurations import AioSqliteConfiguration

    begin = AioSqliteConfiguration.begin_transaction
    if "with_for_update" not in inspect.signature(begin).parameters:
        return False

    def begin_transaction(self, session, with_for_update: bool = False):
        return begin(self, session, with_for_update=with_for_update or _WRITE_AT_ONCE.get())

    AioSqliteConfiguration.begin_transaction = begin_transaction
    return True


def server_retries(env) -> int:
    """How many times ``up``'s server on SQLite tries a request again (DEALFLOW_SERVER_RETRIES,
    at most 10); 0: a plain ``prefect server start``."""
    try:
        return max(0, min(int(env.get(RETRIES_ENV, RETRIES)), 10))
    except ValueError:
        return RETRIES


def serve_prefect(args: list[str]) -> None:
    """``prefect server start ARGS`` with its app in ``RetryBusy`` (what ``up`` runs for a server
    on SQLite). Everything else is Prefect's own command: settings, banner, services."""
    import inspect

    import prefect.server.api.server as server
    from prefect.cli import app
    from prefect.cli._server_utils import _run_in_foreground

    create_app = server.create_app
    retries = server_retries(os.environ)
    if "import create_app" not in inspect.getsource(_run_in_foreground) or not _begin_immediate_when_asked():
        print("dealflow: this Prefect's server is built otherwise; the server runs without dealflow's "
              "changes for SQLite (services/orchestration/server.py, serve_prefect)", file=sys.stderr, flush=True)

    def wrapped(*a, **kw):
        return RetryBusy(create_app(*a, **kw), retries=retries)

    server.create_app = wrapped  # looked up when `server start` builds its app
    sys.argv = ["prefect", "server", "start", *args]
    app()  # the `prefect` command's entry point: it reads sys.argv


# The Prefect server's own services, tuned for dealflow's load (a value the user set is kept).
# Every task run reaches the server as events; by default the task-run recorder reads and writes
# them one at a time: batched here (written at most a second late), and the event persister's
# reads too. The triggers service (Prefect automations) reads every event to match automations,
# and dealflow defines none: it is off (PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED=true turns it
# back on for automations of your own). What each measured: benchmarks/README.md, "The server
# deal at an ERP's cost".
# Prefect's own database does not grow without bound: its vacuum service (in the services process)
# deletes finished flow runs (with their task runs, logs and artifacts) 90 days after they ended,
# and events after 7 days (Prefect's own default, PREFECT_SERVER_EVENTS_RETENTION_PERIOD). A deal's whole history stays in the business database, for ever
# (`deal show`); a paused or running run has not ended and is never deleted.
RETENTION = {
    "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
    "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(90 * 86400),
}
SERVER_TUNING = {
    **RETENTION,
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
}


def server_tuning(env: dict[str, str]) -> dict[str, str]:
    """The server's environment: ``env`` with SERVER_TUNING where the user set nothing
    (DEALFLOW_SERVER_TUNING=off: Prefect's defaults)."""
    if env.get("DEALFLOW_SERVER_TUNING", "on").lower() in ("off", "0", "false", "no"):
        return dict(env)
    return {**SERVER_TUNING, **env}


# The process pools' job template, with what a run executes pinned: the command (None: the worker's
# own `python -m prefect.engine`), its environment (the worker's, nothing added) and its working
# directory (the deployment's). A run created with job variables `command`, `env` or
# `working_dir` (anyone holding Prefect's credential may create one) gets none of them: the
# template has no such variables to fill in. Only a run's name, labels and output stay variable.
PINNED_JOB_TEMPLATE = {
    "job_configuration": {"command": None, "env": {}, "working_dir": None, "labels": "{{ labels }}",
                          "name": "{{ name }}", "stream_output": "{{ stream_output }}"},
    "variables": {"type": "object", "properties": {
        "name": {"type": "string", "title": "Name", "description": "Name given to infrastructure created by a worker."},
        "labels": {"type": "object", "title": "Labels", "additionalProperties": {"type": "string"},
                   "description": "Labels applied to infrastructure created by a worker."},
        "stream_output": {"type": "boolean", "title": "Stream Output", "default": True,
                          "description": "If enabled, workers will stream output from flow run processes to local "
                                         "standard output."}}},
}


def plain_server_command() -> list[str]:
    """``prefect server start`` of this Python, without dealflow's changes."""
    return [sys.executable, "-m", "prefect", "server", "start"]
