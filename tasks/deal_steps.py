"""The deal's stages as Prefect tasks, over the use cases of ``application.deals``: each takes
the deal's number (never an ORM object), commits once and returns plain data; each is
idempotent by business key, so a flow re-run repeats nothing.

The stages (automatic steps, recording an answer, sending mail) are Prefect tasks: they show in
the run's graph and carry retries. The flow's bookkeeping (``attach_run``, ``plan_next_step``,
``open_wait``, ``tag_run``, ``mail_pending``, ``publish_deal_page``) are plain calls: as tasks
they would cost a task run each (three events for the server to record), several times per
answer, and show nothing a person looks for.
No task caches (``NO_CACHE``): the database, not a cache, says what has been done."""

from __future__ import annotations

from typing import Any

from prefect import task
from sqlalchemy.exc import IntegrityError, OperationalError

from application import deals
from application.deals import (  # noqa: F401 - the flow's bookkeeping, plain calls
    form_start,
    form_stored,
    mail_pending,
    open_wait,
    plan_next_step,
    redescribe_open_wait,
    unconfirmed_waits,
)
from services import mailer
from services.config import MAIL_RETRY_SECONDS
from services.orchestration import runs
from services.orchestration.engine import NO_CACHE


def _retry_on_race(task, task_run, state) -> bool:  # noqa: ARG001
    """Retry only what a retry can cure: a lost race on a unique key, a lock timeout."""
    try:
        state.result()
    except (IntegrityError, OperationalError):
        return True
    except Exception:
        return False
    return False


def attach_run(deal_number: str, flow_run_id: str) -> int:
    """The run ``flow_run_id`` drives the deal from now on; ``DealAlreadyRunning`` while another
    run of it is live (one started from the UI's "Run", a script: the flow calls this first)."""
    return deals.attach_run(deal_number, flow_run_id, runs.live_state)


def tag_run(deal_number: str, flow_run_id: str, step: str) -> list[str]:
    """Tags on the deal's run for the UI's filters (``application.deals.run_tags``), all written
    anew each time, so none is left from an earlier step."""
    tags = deals.run_tags(deal_number, step)
    runs.tag(flow_run_id, tags)
    return tags


@task(task_run_name="answer-{key}", cache_policy=NO_CACHE)
def record_answer(deal_number: str, key: str, answer: dict[str, Any],
                  sent: dict[str, Any] | None = None) -> dict[str, Any]:
    """``application.deals.record_answer`` as the run's task: who answers and the rules checked,
    then the answer applied or its refusal recorded."""
    return deals.record_answer(deal_number, key, answer, sent)


def _auto(name: str, task_name: str):
    def run(deal_number: str) -> str:
        return deals.run_automatic(name, deal_number)
    step = deals.AUTOMATIC[name]
    run.__name__ = getattr(step, "__name__", name).lstrip("_")
    run.__doc__ = step.__doc__
    return task(run, name=task_name, retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE,
                retry_condition_fn=_retry_on_race)


convert_lead = _auto("convert", "convert-lead")
send_estimate = _auto("send_estimate", "send-estimate")
create_order = _auto("create_order", "create-order")
create_deposit_invoice = _auto("deposit_invoice", "create-deposit-invoice")
create_receipt = _auto("receipt", "create-receipt")
create_invoice = _auto("invoice", "create-invoice")
close_deal = _auto("close", "close-deal")

AUTOMATIC = {
    "convert": convert_lead,
    "send_estimate": send_estimate,
    "create_order": create_order,
    "deposit_invoice": create_deposit_invoice,
    "receipt": create_receipt,
    "invoice": create_invoice,
    "close": close_deal,
}


def _retry_on_transient_mail(task, task_run, state) -> bool:  # noqa: ARG001
    try:
        state.result()
    except mailer.TransientMailError:
        return True
    except Exception:
        return False
    return False


def publish_deal_page(deal_number: str) -> str:
    """The deal's page, one artifact per deal under a stable key, kept current in place (one page
    to find, not a version per step); its documents link through the portal."""
    from .ui import markdown_page

    key, markdown, description = deals.deal_page(deal_number)
    markdown_page(key, markdown, description)
    return key


@task(task_run_name="mail-{deal_number}", retries=len(MAIL_RETRY_SECONDS),
      retry_delay_seconds=list(MAIL_RETRY_SECONDS),
      retry_condition_fn=_retry_on_transient_mail, cache_policy=NO_CACHE)
def deliver_mail(deal_number: str) -> list[int]:
    """Send the deal's pending outbox rows (and write its documents). When the mail server stays
    unreachable through the retries, the task fails and the mail stays pending for the outbox run;
    the flow goes on (``flows.deal.send_mail``)."""
    return deals.deliver_mail(deal_number)
