"""Flow runs seen from outside the run: its state, whether it is live, its tags, cancelling it,
the runs waiting for a person, and resuming one with an answer.

``RunNotFound`` is Prefect's ``ObjectNotFound`` (a run this API does not know: one on another,
or a reset, server). Prefect is imported when a function is called, not with this module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID


def __getattr__(name: str) -> Any:
    if name == "RunNotFound":  # imported lazily: Prefect's exceptions import Prefect
        from prefect.exceptions import ObjectNotFound

        return ObjectNotFound
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextmanager
def client() -> Iterator[Any]:
    """Prefect's (synchronous) client: one connection for several calls."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as c:
        yield c


def state_of(c, run_id: UUID):
    """The run's state (None if it has none yet); ``RunNotFound`` if this API does not know it."""
    return c.read_flow_run(run_id).state


def state_name(run_id: str) -> str:
    """The name of the run's state (e.g. Running, Suspended, Crashed), as a person reads it."""
    from prefect.exceptions import ObjectNotFound

    with client() as c:
        try:
            state = c.read_flow_run(UUID(run_id)).state
        except ObjectNotFound:
            return "not on this server"
    return state.name if state else "unknown"


def live_state(run_id: str) -> str | None:
    """The name of the run's state while it is live (scheduled, pending, running, paused,
    suspended: anything not final), else None. A run this API does not know is not live (it ran
    on another, or a reset, Prefect server: a deal may start afresh)."""
    from prefect.exceptions import ObjectNotFound

    with client() as c:
        try:
            state = c.read_flow_run(UUID(run_id)).state
        except ObjectNotFound:
            return None
    return state.name if state is not None and not state.is_final() else None


def tag(run_id: str, tags: list[str]) -> None:
    """Replace the run's tags (what the UI's filters read)."""
    with client() as c:
        c.update_flow_run(UUID(run_id), tags=tags)


def cancel(run_id: str, message: str) -> str:
    """Cancel the run with ``message`` (the UI shows it with the state) wherever it stands,
    Suspended, Paused, Scheduled, Pending or Running (forced: a run waiting for a person is not
    one the server would cancel by itself); a run already over (Completed, Failed, Cancelled,
    Crashed) is left as it is. What happened, in words: ``"Cancelled (was Suspended)"``,
    ``"already Cancelled"``, ``"not on this server"``."""
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled

    with client() as c:
        try:
            state = c.read_flow_run(UUID(run_id)).state
        except ObjectNotFound:
            return "not on this server"
        if state is not None and state.is_final():
            return f"already {state.name}"
        result = c.set_flow_run_state(UUID(run_id), Cancelled(message=message), force=True)
    now = result.state.name if result.state is not None else "unknown"
    return f"{now} (was {state.name if state is not None else 'without a state'})"


def states_of(run_ids: list[str]) -> dict[str, str]:
    """Flow run id -> its state's name, for these runs (ids the server does not hold are left
    out): a few requests of 200, however many runs the server holds, and one for none."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ids = sorted({i for i in run_ids if i})
    states: dict[str, str] = {}
    with client() as c:
        # with no runs to ask about, one empty request all the same: the server checks the
        # credential, so a wrong one is said now, not first at the next wait
        for start in range(0, max(len(ids), 1), 200):
            chunk = [UUID(i) for i in ids[start:start + 200]]
            runs = c.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=max(len(chunk), 1))
            states.update({str(r.id): r.state.name if r.state else "" for r in runs})
    return states


def resume(c, run_id: UUID, run_input: dict[str, Any]) -> tuple[str, Any]:
    """Resume the paused run with ``run_input`` (the server checks it against the stored form):
    ``("accepted", None)``; ``("aborted", None)`` when the run is not paused (any more); else
    ``("refused", the server's reason)``."""
    from prefect.client.schemas.responses import SetStateStatus

    result = c.resume_flow_run(run_id, run_input=run_input)
    if result.status == SetStateStatus.ACCEPT:
        return "accepted", None
    if result.status == SetStateStatus.ABORT:
        return "aborted", None
    return "refused", (result.details.reason if result.details and getattr(result.details, "reason", None)
                       else result.status)
