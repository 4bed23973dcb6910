"""The reminders that keep anything from falling through the cracks (``models.reminders``, each
wait kind's own in ``models.waits``): find what is due, queue each one's record and email, send
them. Each reminder goes out at most once per rule, entity, recipient and day: the database's
unique key decides, also when two runs overlap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from models import Email, reminders
from models.states import EmailStatus
from models.waits import due_reminders
from services import mailer
from services.config import load_settings, with_smtp_password

from .uow import unit_of_work


def queue_due(now: datetime, rules: reminders.ReminderRules) -> list[dict[str, Any]]:
    """Each reminder due at ``now`` gets its record and outbox email in one savepoint; one that
    another run already recorded is skipped. What this call queued: rule, about, to, subject,
    email_id."""
    with unit_of_work() as s:
        queued = []
        for r in due_reminders(s, now, rules):
            email_id = reminders.record(s, r)
            if email_id is not None:
                queued.append({"rule": r.rule, "about": r.about, "to": r.recipient, "subject": r.subject,
                               "email_id": email_id})
        return queued


def send(email_ids: list[int]) -> list[int]:
    """Send these reminders, and any queued earlier but not sent (the mail server was down); the
    ids sent. A mail server that cannot take them raises ``mailer.TransientMailError``, and they
    stay pending."""
    with unit_of_work() as s:
        earlier = s.scalars(select(Email.id).where(Email.status == EmailStatus.PENDING,
                                                   Email.dedupe_key.like("reminder:%"))).all()
        ids = sorted(set(email_ids) | set(earlier))
        if not ids:
            return []
        return mailer.deliver(s, email_ids=ids, settings=with_smtp_password(load_settings()))
