"""Tasks of the scheduled reminder run: find what is due and queue it, then send it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task

from application import reminders
from models.reminders import ReminderRules
from services.config import MAIL_RETRY_SECONDS

from .deal_steps import _retry_on_race, _retry_on_transient_mail


@task(task_run_name="find-and-queue-reminders-{as_of}", retries=2, retry_delay_seconds=1,
      retry_condition_fn=_retry_on_race)
def queue_due_reminders(as_of: str, rules: dict[str, Any]) -> list[dict[str, Any]]:
    """Each due reminder gets its record and outbox email in one savepoint; one that another run
    already recorded is skipped. Returns what this run queued."""
    return reminders.queue_due(datetime.fromisoformat(as_of), ReminderRules(**rules))


@task(task_run_name="send-reminders", retries=len(MAIL_RETRY_SECONDS),
      retry_delay_seconds=list(MAIL_RETRY_SECONDS),
      retry_condition_fn=_retry_on_transient_mail)
def send_reminder_mail(email_ids: list[int]) -> list[int]:
    """This run's reminders, and any an earlier run queued but could not send (its retries ran out)."""
    return reminders.send(email_ids)


@task(task_run_name="reminders-table")
def publish_reminder_table(as_of: str, queued: list[dict[str, Any]], sent: list[int]) -> str:
    from .ui import table_artifact

    rows = [{**q, "sent": q["email_id"] in sent} for q in queued]
    table_artifact("reminders", rows or [{"rule": "-", "about": "nothing was due", "to": "", "subject": "",
                                          "email_id": None, "sent": False}],
                   f"Reminders of the run for {as_of}: {len(rows)} queued, {len(sent)} sent")
    return "reminders"
