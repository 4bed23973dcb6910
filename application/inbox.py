"""The inbox: the deals waiting for a person, for what, since when, for which role."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models.case_numbers import case_by_number
from models.deal import CASE_STEP_PREFIXES
from models.money import ZERO
from models.returns import ReturnOrder
from services.views import inbox as inbox_rows

from .uow import unit_of_work


def open_waits(role: str | None = None, run_states: dict[str, str] | None = None,
               limit: int | None = None) -> list[dict[str, Any]]:
    """Every open wait, oldest first (``role``: only those it may answer), with its deal, what it
    waits for in words (``waiting_for``: "deposit, by finance", "the credit decision (on credit
    hold), by credit control"), the amount at stake (for the deposit, what is still due on it;
    for a return, its goods' value; none for a warranty claim) and its flow run. ``run_states``
    (flow run id -> the state name the orchestrator holds, read by the door): each row then also
    says whether its run really waits there (``run``). ``limit``: only the oldest that many."""
    with unit_of_work() as s:
        rows = inbox_rows(s, role, run_states, limit)
        for row in rows:
            if row["step"].startswith(CASE_STEP_PREFIXES):  # not the deal's order total
                row["amount"] = _case_amount(s, row["key"])
        return rows


def _case_amount(session: Session, key: str) -> str | None:
    """What a case's wait is about in money: a credited return's goods (as asked for; once they
    came in, as received), tax included as they were sold; nothing for a warranty claim or a
    warranty return (nothing is credited)."""
    case = case_by_number(session, "-".join(key.split("-")[:2]).upper())  # rma-0001-receive -> RMA-0001
    if not isinstance(case, ReturnOrder) or not case.with_credit:
        return None
    if case.received_at is not None:
        return str(case.received_value)
    return str(sum((ln.order_line.net_for(ln.quantity) + ln.order_line.tax_for(ln.quantity) for ln in case.lines),
                   ZERO))
