"""One flow run per return and per warranty claim (``models.cases``), like a deal's.

Each run drives its case's plan from where the case stands, read from the database each turn:
its automatic steps as tasks, its waits paused (in-process) or suspended (from a deployment)
through the same ``wait_for_answer`` as a deal's, with their forms, proofs and refusals. A
claim's warranty return is driven by the claim's run (its steps between the diagnosis and the
claim's close), so the claim's run shows the whole story.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from application import cases
from application.deals import mail_pending
from services.orchestration.engine import current_run, engine_settings, get_run_logger, outcome
from services.orchestration.pausing import RunEnded
from tasks.case_steps import case_step, tag_case_run
from tasks.deal_steps import publish_deal_page

from .deal import THIRTY_DAYS, send_mail
from .waits import moved, running_here, wait_for_answer

MAX_CASE_STEPS = 100


def case_run_name() -> str:
    """RMA-0001-DEAL-0001 / WC-0001-DEAL-0001: the case, then its deal (the flow's name, return or
    warranty-claim, shows beside it in the UI)."""
    params = current_run.parameters
    return f"{params.get('case', '?')}-{params.get('deal_number', '?')}"


def _drive(case: str, deal_number: str, poll_interval: int, wait_timeout: int) -> dict[str, Any]:
    logger = get_run_logger()
    run_id = str(current_run.id)
    cases.attach_run(case, run_id)
    last = None
    for _ in range(MAX_CASE_STEPS):
        if mail_pending(deal_number):
            send_mail(deal_number)
        step = cases.next_step(case)
        if step["name"] != last:
            tag_case_run(case, run_id, step["name"] if step["kind"] != "done" else step["status"])
            last = step["name"]
        if step["kind"] == "done":
            publish_deal_page(deal_number)
            logger.info("%s is %s", case, step["status"])
            return {"case": case, "deal": deal_number, "status": step["status"]}
        if step["kind"] == "auto":
            logger.info("%s: %s", step["key"], case_step(step["name"], case, step["key"]))
            continue
        try:
            result = wait_for_answer(deal_number, step, run_id, poll_interval=poll_interval, timeout=wait_timeout)
        except RunEnded as ended:
            return {"case": case, "deal": deal_number, "status": "stopped",
                    "reason": f"{case}'s run was cancelled at {step['key']}: {ended.message or ''}"}
        if result["accepted"]:
            logger.info("%s answered: %s", step["key"], result["outcome"])
        else:
            logger.warning("%s refused: %s", step["key"], result["reason"])
    raise RuntimeError(f"{case} took more than {MAX_CASE_STEPS} steps; a rule must be looping")


def _run(case: str, deal_number: str, poll_interval: int, wait_timeout: int) -> dict[str, Any]:
    try:
        with running_here(deal_number):
            return _drive(case, deal_number, poll_interval, wait_timeout)
    finally:
        moved(deal_number)


@flow(name="return", flow_run_name=case_run_name, persist_result=False)
def return_flow(case: str, deal_number: str, poll_interval: int = 1, wait_timeout: int = THIRTY_DAYS) -> Any:
    """Drive return ``case`` (RMA-0001) of deal ``deal_number``: a manager's authorization, the RMA,
    delivery's receipt, QA's inspection (restock, scrap, repair), finance's credit note."""
    return _run(case, deal_number, poll_interval, wait_timeout)


@flow(name="warranty-claim", flow_run_name=case_run_name, persist_result=False)
def claim_flow(case: str, deal_number: str, poll_interval: int = 1, wait_timeout: int = THIRTY_DAYS) -> Any:
    """Drive warranty claim ``case`` (WC-0001): an engineer's diagnosis, repair on site or a
    warranty return (its steps, without a credit note), then the claim closed with a note."""
    return _run(case, deal_number, poll_interval, wait_timeout)


FLOWS = {"return": return_flow, "claim": claim_flow}
DEPLOYMENTS = {"return": "return/return", "claim": "warranty-claim/warranty-claim"}


def run_case_here(kind: str, case: str, deal_number: str, **options: Any) -> dict[str, Any]:
    """Run a case's flow in this process (``return start`` / ``warranty claim`` without a server
    deployment): how it ended."""
    with engine_settings():
        state = FLOWS[kind](case=case, deal_number=deal_number, return_state=True, **options)
    result = outcome(state)
    return result if result is not None else {"case": case, "status": "stopped", "reason": state.message or ""}
