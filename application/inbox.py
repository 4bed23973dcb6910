"""The inbox: the deals waiting for a person, for what, since when, for which role."""

from __future__ import annotations

from typing import Any

from services.views import inbox as inbox_rows

from .uow import unit_of_work


def open_waits(role: str | None = None, run_states: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every open wait, oldest first (``role``: only those it may answer), with its deal, what it
    waits for in words (``waiting_for``: "deposit, by finance", "the credit decision (on credit
    hold), by credit control"), the amount at stake (for the deposit, what is still due on it)
    and its flow run. ``run_states`` (flow run id -> the state name the
    orchestrator holds, read by the door): each row then also says whether its run really waits
    there (``run``)."""
    with unit_of_work() as s:
        return inbox_rows(s, role, run_states)
