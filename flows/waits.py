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

from typing import Any

from prefect.context import FlowRunContext
from prefect.flow_runs import pause_flow_run, suspend_flow_run

from tasks.deal_steps import open_wait, publish_deal_page, record_answer

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
    form = INPUTS[step["name"]].with_initial_data(description=opened["description"])
    if runs_from_deployment():
        answer = suspend_flow_run(wait_for_input=form, key=step["key"], timeout=None)
    else:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=poll_interval,
                                key=step["key"])
    return record_answer(deal_number, step["key"], answer.model_dump(mode="json"))
