"""The Prefect API a dealflow command talks to: the one PREFECT_API_URL names, or a temporary
server started for this process (Prefect's ephemeral mode), announced and waited for here."""

from __future__ import annotations

import sys
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
    print(f"starting a temporary Prefect server for this command (no PREFECT_API_URL set; "
          f"allowing it up to {timeout} s on a busy machine)", file=out, flush=True)
    try:
        server.start()
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise PrefectUnavailable(
            f"prefect: the temporary Prefect server did not start within {timeout} s ({reason}); "
            f"try again when the machine is less busy, allow it longer with "
            f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or run a server (`dealflow up`) "
            f"and set PREFECT_API_URL") from None
    return server.api_url
