"""The scheduled reminder run (weekdays 08:00, see prefect.yaml): nothing falls through the cracks.

Every reminder goes out at most once per rule, entity, recipient and day, also when the run is
retried or two runs overlap (the database's unique key decides, not the run)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.mail import sent_or_left_in_outbox, with_mail_retries
from models import utcnow
from models.reminders import ReminderRules
from tasks.reminders import publish_reminder_table, queue_due_reminders, send_reminder_mail


def _run_name() -> str:
    from services.orchestration.engine import current_run as flow_run
    return f"reminders-{flow_run.parameters.get('as_of') or utcnow().isoformat(timespec='minutes')}"


@flow(name="reminders", flow_run_name=_run_name, persist_result=False)
def reminders_flow(as_of: str | None = None, estimate_unanswered_days: int = 7, estimate_max_reminders: int = 2,
                   qa_pending_days: int = 3, unshipped_days: int = 5, dunning_days: list[int] | None = None,
                   stuck_wait_days: int = 5, mail_waiting_minutes: int = 60,
                   discount_approval_hours: int = 4, deposit_waiting_days: int = 3,
                   credit_hold_hours: int = 4) -> list[dict[str, Any]]:
    """Find due reminders as of ``as_of`` (ISO time, UTC; default now), queue and send them.
    While the mail server cannot take mail they stay queued in the outbox (the outbox run sends
    them later) and the run's table says they were not sent yet."""
    as_of = as_of or utcnow().isoformat(timespec="seconds")
    rules = ReminderRules(estimate_unanswered_days, estimate_max_reminders, qa_pending_days, unshipped_days,
                          tuple(dunning_days or (1, 7, 14, 30)), stuck_wait_days, mail_waiting_minutes,
                          discount_approval_hours, deposit_waiting_days, credit_hold_hours)
    queued = queue_due_reminders(as_of, {**rules.__dict__, "dunning_days": list(rules.dunning_days)})
    state = with_mail_retries(send_reminder_mail)([q["email_id"] for q in queued], return_state=True)
    sent = sent_or_left_in_outbox(state, "reminders") or []
    publish_reminder_table(as_of, queued, sent)
    return queued
