"""The Prefect API a dealflow command talks to: the one PREFECT_API_URL names, or a temporary
server started for this process. Prefect's side of it is ``services.orchestration.api``; these
are the names the commands use."""

from __future__ import annotations

from services.orchestration.api import PrefectUnavailable, ensure_api, tune_temporary_server

__all__ = ["PrefectUnavailable", "ensure_api", "tune_temporary_server"]
