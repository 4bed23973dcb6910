"""Every human step of a deal goes through ``wait_for_answer``.

The wait is recorded in the database (who may answer, since when), the flow waits for a typed
form under a deterministic key (``estimate-rev-2``, ``qa-attempt-1``, ``payment-2-retry-1``), and
the answer is checked again after the resume: a person without the step's role, or an answer
that breaks a rule, is refused and the deal waits again under the next key, with the reason in
the form's description.

How it waits depends on where the run lives:
- from a deployment (a worker started it), the run **suspends**: its process ends, it holds
  nothing while the deal waits for days, and after the resume a worker runs it again from its
  top; the flow then goes straight to this wait (the database says so) and Prefect hands back
  the stored answer for the key at once;
- in-process (the demo, the tests, ``deal start`` without a server deployment) it **pauses**,
  polling every ``poll_interval`` seconds, because suspending needs a deployment.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from prefect.context import FlowRunContext
from prefect.exceptions import Pause
from prefect.flow_runs import pause_flow_run, suspend_flow_run

from tasks.deal_steps import (
    form_start,
    form_stored,
    open_wait,
    publish_deal_page,
    record_answer,
    unconfirmed_waits,
)

from .inputs import INPUTS


def runs_from_deployment() -> bool:
    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.deployment_id)


def wait_for_answer(deal_number: str, step: dict[str, Any], flow_run_id: str, *,
                    poll_interval: int, timeout: int) -> dict[str, Any]:
    opened = step.get("opened")
    if opened is None or opened["flow_run_id"] != flow_run_id:  # else a re-entry: the wait is written
        opened = open_wait(deal_number, step["name"], step["key"], flow_run_id)
        if opened["new"]:  # the page shows the new wait
            publish_deal_page(deal_number)
    form = INPUTS[step["name"]].form(opened["description"], opened.get("prefill"), opened.get("choices"))
    if runs_from_deployment():
        try:
            answer = suspend_flow_run(wait_for_input=form, key=step["key"], timeout=None)
        except Pause:
            # Prefect marks the run Suspended, then stores the form: only now are both done. A
            # failure to note it must not fail a run the server already holds as suspended:
            # recovery finds the wait and notes it then.
            try:
                form_stored(deal_number, step["key"], flow_run_id)
            except Exception:  # noqa: BLE001
                logging.getLogger(__name__).warning("%s %s: could not note its form as stored", deal_number,
                                                    step["key"], exc_info=True)
            raise
    else:
        form_stored(deal_number, step["key"], flow_run_id)  # a pause in this process: nothing to recover
        answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=poll_interval,
                                key=step["key"])
    return record_answer(deal_number, step["key"], answer.model_dump(mode="json"))


def restore_form(client, deal_number: str, key: str, step: str, description: str, flow_run_id: str) -> bool:
    """Store the form of a run that waits at ``key`` but died before Prefect stored it (Prefect
    marks a run Suspended first, and deletes what was stored under the wait's keys, then stores
    the form), so that the UI's Resume and ``dealflow answer`` can answer it. Parts already
    stored are kept. True if the run waits there."""
    from prefect.exceptions import ObjectNotFound

    try:
        state = client.read_flow_run(UUID(flow_run_id)).state
    except ObjectNotFound:
        return False
    if state is None or not state.is_paused() or state.state_details.pause_key != key:
        return False
    if state.state_details.run_input_keyset:
        start = form_start(deal_number, key)
        INPUTS[step].form(description, start.get("prefill"), start.get("choices")).save(
            state.state_details.run_input_keyset, flow_run_id=UUID(flow_run_id))
    form_stored(deal_number, key, flow_run_id)
    return True


def restore_missing_forms(older_than_seconds: float = 20) -> list[str]:
    """Every run that suspended at a wait without confirming its form stored (its process died
    in between): its form is stored now. Called by the executor's recovery."""
    from prefect import get_client

    restored = []
    waits = unconfirmed_waits(older_than_seconds)
    if not waits:
        return restored
    with get_client(sync_client=True) as client:
        for w in waits:
            if restore_form(client, w["deal"], w["key"], w["step"], w["description"], w["flow_run_id"]):
                restored.append(f"{w['deal']} {w['key']}")
    return restored
