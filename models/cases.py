"""The cases that follow a sale, each with its own run and plan: a return (RMA) and a warranty claim.

Like the deal's plan (``models.plan``), a case's plan is an ordered table of rows asked in turn
whether the case is at them, read from the database, so a run that starts again from its top
continues where the case really is. Their human steps are wait kinds (``models.waits``) with a
``case``: their waits are the deal's (the deal the goods shipped on) under keys that start with
the case's number (``rma-0001-receive``), and their rules are given the case.

    return:  return_authorize* (refuse -> done) -> return_receive* -> return_inspect*
             -> return_credit* (what stays with us: restocked or scrapped; not for a warranty return)
             -> return_ship_back* (if QA sent units to repair) -> close -> done
    claim:   claim_diagnose* -> (a return: its steps, as above, without the credit) -> claim_close* -> done
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from .case_numbers import case_by_number  # noqa: F401 - the cases' one lookup
from .deal import Deal
from .plan import Step, _wait
from .return_steps import close
from .returns import ReturnOrder
from .states import ReturnStatus
from .waits import KINDS, WaitKind
from .warranty import WarrantyClaim


@dataclass(frozen=True)
class CaseAuto:
    """An automatic step of a case: when the case is at it, its key, and what it does."""
    name: str
    at: Callable[[Any], bool]
    key: Callable[[Any], str]
    run: Callable[[Session, Any], str]


def _close_return(session: Session, ret: ReturnOrder) -> str:
    close(session, ret)
    return f"{ret.number} closed"


RETURN_PLAN: tuple[WaitKind | CaseAuto, ...] = (
    KINDS["return_authorize"], KINDS["return_receive"], KINDS["return_inspect"], KINDS["return_credit"],
    KINDS["return_ship_back"],
    CaseAuto("close_return", lambda r: r.status == ReturnStatus.INSPECTED, lambda r: f"close-{r.key_prefix}",
             _close_return),
)
CLAIM_PLAN: tuple[WaitKind | CaseAuto, ...] = (KINDS["claim_diagnose"], KINDS["claim_close"])
CASE_AUTOMATIC = {row.name: row for row in RETURN_PLAN + CLAIM_PLAN if isinstance(row, CaseAuto)}


def _rows(session: Session, deal: Deal, case: Any, plan: tuple[WaitKind | CaseAuto, ...]) -> Step | None:
    for row in plan:
        if isinstance(row, CaseAuto):
            if row.at(case):
                return Step(row.name, "auto", row.key(case), facts={"case": case.number})
        elif (facts := row.at(case)) is not None:
            return _wait(session, deal, row, {"case": case.number, **facts})
    return None


def next_case_step(session: Session, case: ReturnOrder | WarrantyClaim) -> Step:
    """Where the case stands: its next step, or done (``key``: its status)."""
    deal = case.deal
    if isinstance(case, WarrantyClaim):
        if case.is_done:
            return Step("done", "done", case.status)
        ret = case.ret
        if ret is not None and not ret.is_done and case.status != "open":  # its return first
            step = _rows(session, deal, ret, RETURN_PLAN)
            if step is not None:
                return step
        step = _rows(session, deal, case, CLAIM_PLAN)
    else:
        if case.is_done:
            return Step("done", "done", case.status)
        step = _rows(session, deal, case, RETURN_PLAN)
    if step is None:
        raise AssertionError(f"{case.number} ({case.status}) is at no step of its plan")
    return step


def run_case_automatic(session: Session, name: str, case: ReturnOrder | WarrantyClaim, key: str) -> str:
    """Run the automatic step ``name`` of the case (or of a claim's return) if it is still at it."""
    step = next_case_step(session, case)
    if step.kind != "auto" or step.key != key:
        return f"{key}: already done"
    subject = case.ret if isinstance(case, WarrantyClaim) else case
    return CASE_AUTOMATIC[name].run(session, subject)
