"""Every human step of a deal goes through ``wait_for_answer``.

The wait is recorded in the database (who may answer, since when), the flow pauses with a typed
form under a deterministic key (``estimate-rev-2``, ``qa-attempt-1``, ``payment-2-retry-1``), and
the answer is checked again after the resume: a person without the step's role, or an answer
that breaks a rule, is refused and the deal waits again under the next key, with the reason in
the form's description.
"""

from __future__ import annotations

from typing import Any

from prefect.flow_runs import pause_flow_run

from tasks.deal_steps import open_wait, record_answer

from .inputs import INPUTS


def wait_for_answer(deal_number: str, step: dict[str, Any], flow_run_id: str, *,
                    poll_interval: int, timeout: int) -> dict[str, Any]:
    opened = open_wait(deal_number, step["name"], step["key"], flow_run_id)
    form = INPUTS[step["name"]].with_initial_data(description=opened["description"])
    answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=poll_interval,
                            key=step["key"])
    return record_answer(deal_number, step["key"], answer.model_dump(mode="json"))
