"""The Prefect API a dealflow command talks to: the one PREFECT_API_URL names, or a temporary
server started for this process (Prefect's ephemeral mode, ``prefect.server.api.server.
SubprocessASGIServer``), announced and waited for here."""

from __future__ import annotations

import os
import sys
import threading
from typing import TextIO


class PrefectUnavailable(RuntimeError):
    """No Prefect API could be reached or started; the message says what to do."""


def ensure_api(out: TextIO = sys.stderr) -> str:
    """Start the temporary Prefect server now, if this process needs one, saying so in one line.
    Returns the API's address. Prefect would start it on first use anyway; starting it here
    lets a slow start be announced and a failed one be explained."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    if PREFECT_API_URL.value():
        return PREFECT_API_URL.value()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    if server.running:
        return server.api_url
    timeout = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    tune_temporary_server()
    print(f"starting a temporary Prefect server for this command (no PREFECT_API_URL set; "
          f"allowing it up to {timeout} s on a busy machine)", file=out, flush=True)
    failure: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001 - reported below, in one line
            failure.append(exc)

    # Prefect waits the whole timeout even for a server process that has already died (it
    # only retries on "port in use"): watch the process here and give up as soon as it is gone.
    starter = threading.Thread(target=start, daemon=True, name="prefect-server-start")
    starter.start()
    while starter.is_alive():
        starter.join(0.5)
        process = server.server_process
        code = process.poll() if process is not None else None
        if code is not None and code != 3 and starter.is_alive():  # 3: port taken, Prefect tries another
            raise PrefectUnavailable(f"prefect: the temporary Prefect server stopped at once (exit code {code}); "
                                     f"{_what_to_do(timeout)}")
    if failure:
        exc = failure[0]
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise PrefectUnavailable(f"prefect: the temporary Prefect server did not start within {timeout} s "
                                 f"({reason}); {_what_to_do(timeout)}")
    return server.api_url


def tune_temporary_server() -> None:
    """The environment a temporary server started from this process gets (it inherits ours):
    the same tuning as `dealflow up`'s server (``server.SERVER_TUNING``), and no usage
    reports to Prefect (offline, as a sales office's machine may well be, that is an ERROR line on
    every command). A value the user set is kept."""
    from .server import server_tuning

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.update(server_tuning(dict(os.environ)))


def _what_to_do(timeout: int) -> str:
    return ("try again when the machine is less busy, allow it longer with "
            f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (now {timeout}), or run a server "
            "(`dealflow up`) and set PREFECT_API_URL")


def quiet_prefect() -> None:
    """Prefect says little (the demo's narration stays readable; a value the user set is kept):
    warnings only, no usage reports, and the temporary server on SQLite keeps its "database is
    locked" tracebacks to itself under the demo's light concurrency (its clients retry them)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
