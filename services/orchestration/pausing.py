"""How a run waits for a person, in Prefect's terms (what to wait for, and when, is
``flows.waits``'s).

- From a deployment the run **suspends** (``suspend``): Prefect's ``suspend_flow_run``, which ends
  the run's process by raising ``Pause`` through the flow; resumed, the run starts again from its
  top and the suspension at the same key returns the stored answer at once.
- In-process it **pauses** (``pause``): what Prefect's ``pause_flow_run`` does, mirrored with
  its internals (``propose_state_sync``, ``keyset_from_paused_state``), so that a resume from this
  same process is noticed at once instead of after a whole ``poll_interval``; a run cancelled
  while it is paused stops waiting (``RunEnded``) instead of waiting out its timeout.

Imported by flows/ only (they import Prefect anyway): it imports Prefect at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, Pause
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput, keyset_from_paused_state
from prefect.states import Paused
from prefect.utilities.engine import propose_state_sync


class RunEnded(Exception):
    """The run was ended from outside (cancelled by ``dealflow deal cancel`` or in the UI) while it
    was paused for a person: no answer will come."""

    def __init__(self, state: str, message: str):
        super().__init__(f"the run is {state} while it waited" + (f": {message}" if message else ""))
        self.state = state
        self.message = message


def runs_from_deployment() -> bool:
    """Whether the current flow run was created from a deployment (then it can suspend)."""
    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.deployment_id)


def current_run_id() -> str:
    return str(FlowRunContext.get().flow_run.id)


def suspend(form: type[RunInput], key: str, stored: Callable[[], None]) -> RunInput:
    """Suspend the current run at ``key`` for ``form``. The first time, Prefect marks the run
    Suspended, stores the form and ends the run by raising ``Pause``: ``stored`` is called then
    (only now are both done), and ``Pause`` goes on. A run resumed at ``key`` gets the answer."""
    try:
        return suspend_flow_run(wait_for_input=form, key=key, timeout=None)
    except Pause:
        stored()
        raise


def pause(form: type[RunInput], key: str, *, timeout: float, poll_interval: float,
          stored: Callable[[dict | None], None], resumed_here: Callable[[float], dict[str, Any] | None]) -> RunInput:
    """Pause the current run at ``key`` for ``form`` and block until it is resumed; the answer.
    What Prefect's ``pause_flow_run`` does (Paused with the key and the form's keyset; a run
    resumed at this key before returns its stored answer at once), with a wait that notices a
    resume from this process at once. ``stored(schema)`` is called once the form is stored;
    ``resumed_here(seconds)`` waits up to that long for a resume from this process and returns
    its answer (None if there was none)."""
    context = FlowRunContext.get()
    proposed = Paused(timeout_seconds=timeout, reschedule=False, pause_key=key)
    keyset = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = keyset
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        state = propose_state_sync(client=client, state=proposed, flow_run_id=context.flow_run.id)
        if state.is_running():  # resumed at this key before: its stored answer
            return form.load(keyset)
        if not state.is_paused():
            raise RuntimeError(f"Flow run cannot be paused. Received non-paused state from API: {state}")
        stored(form.save(keyset))
        logger.info("Waiting at %s; the run goes on when it is resumed.", key)
        deadline = time.monotonic() + timeout
        while True:
            # resumed from this process: the server accepted it (the run is Running again)
            # and stored this answer, which it checked against the form
            answer = resumed_here(min(poll_interval, max(deadline - time.monotonic(), 0)))
            if answer is not None:
                return form(**answer)
            run = client.read_flow_run(context.flow_run.id)  # resumed elsewhere (the UI, a CLI)?
            if run.state and run.state.is_running():
                return form.load(keyset)
            if run.state and run.state.is_final():  # cancelled while it waited (`deal cancel`, the UI)
                raise RunEnded(run.state.name, run.state.message or "")
            if time.monotonic() >= deadline:
                raise FlowPauseTimeout("Flow run was paused and never resumed.")


def paused_keyset(client, flow_run_id: str, key: str) -> dict[str, str] | None:
    """The keyset of the run's form if the run waits (paused or suspended) at ``key``: ``{}``
    when Prefect holds none for it. None if it does not wait there, or this API does not know it."""
    from prefect.exceptions import ObjectNotFound

    try:
        state = client.read_flow_run(UUID(flow_run_id)).state
    except ObjectNotFound:
        return None
    if state is None or not state.is_paused() or state.state_details.pause_key != key:
        return None
    return state.state_details.run_input_keyset or {}
