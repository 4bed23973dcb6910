"""The outbox run's task: release what dead senders left, send everything pending."""

from __future__ import annotations

from typing import Any

from prefect import task

from models.outbox import outbox_health
from services import mailer
from services.config import load_settings, with_smtp_password
from services.db import session_scope
from services.orchestration.engine import NO_CACHE


@task(task_run_name="send-pending-mail", cache_policy=NO_CACHE)
def send_pending_mail() -> dict[str, Any]:
    """Every pending email, once. A mail server that cannot take mail now is reported, not raised:
    the next run (every few minutes) tries again, and the rows stay pending until then."""
    with session_scope() as s:
        error = None
        try:
            sent = mailer.deliver(s, settings=with_smtp_password(load_settings()))
        except mailer.TransientMailError as exc:
            sent, error = exc.sent, str(exc)
        health = outbox_health(s)
        return {"sent": sent, "error": error, **health,
                "oldest_pending_since": health["oldest_pending_since"].isoformat(timespec="seconds")
                if health["oldest_pending_since"] else None}
