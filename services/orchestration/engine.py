"""What a flow or a task uses of Prefect while it runs, besides ``@flow`` and ``@task``: its
logger, the current run, result states, no caching; and how deal flows run in a process.

Imported by flows/ and tasks/ only (they import Prefect anyway): it imports Prefect at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import Task, get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as current_run
from prefect.states import Cancelled, Completed, Failed, State

__all__ = ["NO_CACHE", "Completed", "Failed", "State", "Task", "cancelled", "current_run",
           "engine_settings", "get_run_logger", "outcome"]


def cancelled(message: str) -> State:
    """The state a flow returns to end Cancelled, with ``message`` (the UI shows it): a deal
    cancelled while its run waited or ran ends its run so, also a run that resumes after it."""
    return Cancelled(message=message)


def outcome(state: State) -> Any:
    """What a flow run called with ``return_state=True`` returned: its result, or, for a run that
    ended Cancelled (which Prefect raises as ``CancelledRun`` on reading the result), None."""
    if state.is_cancelled():
        return None
    return state.result()


@contextmanager
def engine_settings() -> Iterator[None]:
    """How deal flows run in this process: without Prefect's flow-run heartbeats, unless they
    are set (PREFECT_FLOWS_HEARTBEAT_FREQUENCY, a profile, prefect.toml). A heartbeat is an event
    for an automation that would notice a crashed run; dealflow defines none (its executor
    recovers crashed runs itself), and Prefect's heartbeat thread sleeps in whole seconds, so
    every run that ended or suspended waited for it, half a second on average."""
    from prefect.context import SettingsContext, get_settings_context

    current = get_settings_context()
    if "heartbeat_frequency" in current.settings.flows.model_fields_set:  # set by the user, anywhere
        yield
        return
    # Prefect's temporary_settings builds and validates a whole Settings object (28 ms of CPU),
    # and an executor enters this for every re-entry of every run: once per base settings
    with _derived_lock:
        base, derived = _derived.get(id(current.settings), (None, None))
        if base is not current.settings:
            base, derived = current.settings, current.settings.copy_with_update(
                updates={"flows.heartbeat_frequency": None})
            _derived[id(base)] = (base, derived)
    with SettingsContext(profile=current.profile, settings=derived):
        yield


_derived: dict[int, tuple[Any, Any]] = {}  # id of a Settings -> (it, it without heartbeats)
_derived_lock = threading.Lock()
