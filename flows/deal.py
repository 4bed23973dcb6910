"""One flow run per deal, from lead to cash.

The flow holds no business state of its own: it drives the deal's plan with the one driver
(``application.driver``), which each turn asks the database where the deal stands, then runs
that stage's task or waits for the person whose turn it is. A run that starts again from its top (a retry, a resume after suspension) therefore
continues where the deal really is, and the stage tasks' business keys make repeats no-ops.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from application.driver import MAX_STEPS, Stop, Ways, drive
from models import DomainError
from models.states import DealStatus
from services.orchestration.engine import cancelled, current_run, engine_settings, get_run_logger, outcome
from services.orchestration.pausing import RunEnded
from services.views import run_name
from tasks.deal_steps import AUTOMATIC, attach_run, deliver_mail, plan_next_step, publish_deal_page, tag_run

from .mail import sent_or_left_in_outbox, with_mail_retries
from .waits import moved, running_here, wait_for_answer

THIRTY_DAYS = 30 * 24 * 3600


def deal_run_name() -> str:
    """deal-DEAL-0001-acme-steel: the UI reads like the sales floor."""
    return run_name(current_run.parameters.get("deal_number", "?"))


@flow(name="deal", flow_run_name=deal_run_name, persist_result=False)
def deal_flow(deal_number: str, poll_interval: int = 1, wait_timeout: int = THIRTY_DAYS) -> Any:
    """Drive deal ``deal_number`` from where it stands to won or lost; a deal cancelled
    (``dealflow deal cancel``) ends its run Cancelled, with the reason, also a run that was
    waiting, running or resumed when it was cancelled."""
    try:
        with running_here(deal_number):
            result = _drive(deal_number, poll_interval, wait_timeout)
    finally:
        moved(deal_number)  # whoever waits on the deal in this process looks again
    if result["status"] in (DealStatus.CANCELLED, "stopped"):
        get_run_logger().info("%s: %s", deal_number, result["reason"])
        return cancelled(result["reason"])
    return result


def _drive(deal_number: str, poll_interval: int, wait_timeout: int) -> dict[str, Any]:
    """The deal's plan (``application.driver``), its automatic steps run as tasks, its waits
    paused or suspended on this run, its run tagged with the step and whose turn it is."""
    logger = get_run_logger()
    run_id = str(current_run.id)
    attach_run(deal_number, run_id)
    tagged = {"last": next((t.split(":", 1)[1] for t in current_run.tags if t.startswith("step:")), None),
              "after_wait": True}  # the last tags may name a wait (and whose turn it was)

    def planned(step: dict[str, Any]) -> None:
        # tagged where the run stops (a wait, the end), and at the first automatic step after a
        # wait, so that nobody is shown as the one it waits for; the automatic steps that follow
        # pass in a moment, and a tag for each would cost a round trip nobody sees
        if step["name"] != tagged["last"] and (step["kind"] != "auto" or tagged["after_wait"]):
            tag_run(deal_number, run_id, step["name"] if step["kind"] != "done" else step["deal_status"])
            tagged.update(last=step["name"], after_wait=step["kind"] != "auto")

    def automatic(step: dict[str, Any]) -> str:
        did = AUTOMATIC[step["name"]].with_options(task_run_name=step["key"])(deal_number)
        logger.info("%s: %s", step["key"], did)
        return did

    def wait(step: dict[str, Any]) -> dict[str, Any]:
        try:
            result = wait_for_answer(deal_number, step, run_id, poll_interval=poll_interval, timeout=wait_timeout)
        except RunEnded as ended:  # cancelled while paused here: no answer will come
            stopped.append(f"{deal_number}'s run was cancelled at {step['key']}" + (
                f": {ended.message}" if ended.message else ""))
            raise Stop from None
        except DomainError:
            if plan_next_step(deal_number)["deal_status"] != DealStatus.CANCELLED:
                raise
            raise Stop from None  # cancelled between planning the wait and opening it
        if result["accepted"]:
            logger.info("%s answered: %s", step["key"], result["outcome"])
        else:
            logger.warning("%s refused: %s", step["key"], result["reason"])
        return result

    def done(step: dict[str, Any]) -> None:
        publish_deal_page(deal_number)
        logger.info("%s is %s", deal_number, step["deal_status"])

    stopped: list[str] = []
    result = drive(deal_number, Ways(automatic=automatic, wait=wait, send_mail=send_mail, planned=planned, done=done),
                   max_steps=MAX_STEPS)
    if result["status"] in (DealStatus.CANCELLED, "stopped"):
        end = plan_next_step(deal_number)
        if end["deal_status"] == DealStatus.CANCELLED:
            if result["status"] == "stopped":
                done(end)  # the page shows the cancel and its reason
            result.update(status=DealStatus.CANCELLED,
                          reason=f"{deal_number} cancelled: {end['reason']}")
        else:  # the run alone was cancelled (the UI): the deal stays open for a new run
            result["reason"] = (stopped[0] if stopped else f"{deal_number}'s run stopped") + \
                f"; the deal is still {end['deal_status']} (`dealflow deal start` runs it again)"
    return result


def run_here(deal_number: str, **options: Any) -> dict[str, Any]:
    """Run the deal's flow in this process (the demo, `deal start` without a server deployment):
    how it ended (a run that ended Cancelled: ``status`` cancelled, and why)."""
    with engine_settings():
        state = deal_flow(deal_number=deal_number, return_state=True, **options)
    result = outcome(state)
    return result if result is not None else {"deal": deal_number, "status": DealStatus.CANCELLED,
                                              "reason": state.message or ""}


def send_mail(deal_number: str) -> None:
    """Send the deal's mail now; if the mail server stays down through the task's retries, the
    mail waits in the outbox and the deal goes on to its next step."""
    state = with_mail_retries(deliver_mail)(deal_number, return_state=True)
    sent_or_left_in_outbox(state, f"mail of {deal_number}")
