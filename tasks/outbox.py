"""The outbox run's task: release what dead senders left, send everything pending."""

from __future__ import annotations

from typing import Any

from prefect import task

from application import outbox
from services.orchestration.engine import NO_CACHE


@task(task_run_name="send-pending-mail", cache_policy=NO_CACHE)
def send_pending_mail() -> dict[str, Any]:
    """Every pending email, once. A mail server that cannot take mail now is reported, not raised:
    the next run (every few minutes) tries again, and the rows stay pending until then."""
    return outbox.send_all_pending()
