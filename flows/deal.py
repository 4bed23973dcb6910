"""One flow run per deal, from lead to cash.

The flow holds no business state of its own: it drives the deal's plan with the one driver
(``application.driver``), which each turn asks the database where the deal stands, then runs
that stage's task or waits for the person whose turn it is. A run that starts again from its top (a retry, a resume after suspension) therefore
continues where the deal really is, and the stage tasks' business keys make repeats no-ops.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from application.driver import MAX_STEPS, Ways, drive
from services.orchestration.engine import current_run, engine_settings, get_run_logger
from services.views import run_name
from tasks.deal_steps import AUTOMATIC, attach_run, deliver_mail, publish_deal_page, tag_run

from .mail import sent_or_left_in_outbox, with_mail_retries
from .waits import moved, running_here, wait_for_answer

THIRTY_DAYS = 30 * 24 * 3600


def deal_run_name() -> str:
    """deal-DEAL-0001-acme-steel: the UI reads like the sales floor."""
    return run_name(current_run.parameters.get("deal_number", "?"))


@flow(name="deal", flow_run_name=deal_run_name, persist_result=False)
def deal_flow(deal_number: str, poll_interval: int = 1, wait_timeout: int = THIRTY_DAYS) -> dict[str, Any]:
    """Drive deal ``deal_number`` from where it stands to won or lost."""
    try:
        with running_here(deal_number):
            return _drive(deal_number, poll_interval, wait_timeout)
    finally:
        moved(deal_number)  # whoever waits on the deal in this process looks again


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
        outcome = AUTOMATIC[step["name"]].with_options(task_run_name=step["key"])(deal_number)
        logger.info("%s: %s", step["key"], outcome)
        return outcome

    def wait(step: dict[str, Any]) -> dict[str, Any]:
        result = wait_for_answer(deal_number, step, run_id, poll_interval=poll_interval, timeout=wait_timeout)
        if result["accepted"]:
            logger.info("%s answered: %s", step["key"], result["outcome"])
        else:
            logger.warning("%s refused: %s", step["key"], result["reason"])
        return result

    def done(step: dict[str, Any]) -> None:
        publish_deal_page(deal_number)
        logger.info("%s is %s", deal_number, step["deal_status"])

    return drive(deal_number, Ways(automatic=automatic, wait=wait, send_mail=send_mail, planned=planned, done=done),
                 max_steps=MAX_STEPS)


def run_here(deal_number: str, **options: Any) -> dict[str, Any]:
    """Run the deal's flow in this process (the demo, `deal start` without a server deployment)."""
    with engine_settings():
        return deal_flow(deal_number=deal_number, **options)


def send_mail(deal_number: str) -> None:
    """Send the deal's mail now; if the mail server stays down through the task's retries, the
    mail waits in the outbox and the deal goes on to its next step."""
    state = with_mail_retries(deliver_mail)(deal_number, return_state=True)
    sent_or_left_in_outbox(state, f"mail of {deal_number}")
