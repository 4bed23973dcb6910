"""Where a deal stands: the deal's plan, an ordered table of its steps, read from the database.

    qualify* -> convert -> handoff* -> estimate* -> discount* (only over the preparer's limit;
      send_back -> estimate* again) -> send_estimate -> decision*
      (request_changes -> estimate* again; decline -> lost)
    -> credit* (only when the customer's credit does not cover it; reject -> lost)
    -> create_order -> deposit_invoice (only if the terms ask for a deposit)
    -> deposit* (until paid, before QA or before shipping, as the terms say)
    -> qa* (fail -> qa* again; none for accessories only) -> receipt -> shipment* (until all shipped)
    -> invoice (less the deposit) -> payment* (until paid) -> close -> done     (* = a person answers: ``models.waits``)

``next_step`` asks each row in order whether the deal is at it (a row may take the rows before
it as done), so a flow that re-runs from its top continues where the deal really is. An
automatic step's key names what it makes (one order per approved revision), so running it twice
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .deal import Deal, Wait
from .states import LeadStatus, RevisionStatus, WaitStatus
from .waits import (
    CREDIT,
    DECISION,
    DEPOSIT,
    DISCOUNT,
    ESTIMATE,
    HANDOFF,
    KINDS,
    PAYMENT,
    QA,
    QUALIFY,
    SHIPMENT,
    WaitKind,
)


@dataclass(frozen=True)
class Step:
    name: str
    kind: str  # "wait", "auto" or "done"
    key: str = ""
    roles: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def is_wait(self) -> bool:
        return self.kind == "wait"


@dataclass(frozen=True)
class Auto:
    """An automatic step: when the deal is at it, and the key of what it makes."""
    name: str
    at: Callable[[Deal], bool]
    key: Callable[[Deal], str]


PLAN: tuple[WaitKind | Auto, ...] = (
    QUALIFY,
    Auto("convert", lambda d: d.lead.status == LeadStatus.QUALIFIED, lambda d: f"convert-{d.number}"),
    HANDOFF,
    ESTIMATE,
    DISCOUNT,
    Auto("send_estimate", lambda d: d.estimate.latest.status == RevisionStatus.DRAFT,
         lambda d: f"send-estimate-rev-{d.estimate.latest.revision}"),
    DECISION,
    CREDIT,
    Auto("create_order", lambda d: d.order is None, lambda d: f"order-from-rev-{d.estimate.latest.revision}"),
    Auto("deposit_invoice", lambda d: d.order.deposit_terms.asked and d.deposit_invoice is None,
         lambda d: f"deposit-invoice-{d.order.number}"),
    DEPOSIT,
    QA,
    Auto("receipt", lambda d: d.order.pick_release.receipt is None, lambda d: f"receipt-{d.order.number}"),
    SHIPMENT,
    Auto("invoice", lambda d: d.invoice is None, lambda d: f"invoice-{d.order.number}"),
    PAYMENT,
    Auto("close", lambda d: True, lambda d: f"close-{d.number}"),
)
AUTOMATIC_STEPS = tuple(row.name for row in PLAN if isinstance(row, Auto))


def _wait(session: Session, deal: Deal, kind: WaitKind, facts: dict[str, Any]) -> Step:
    """A wait's key is deterministic: the kind's key, then -retry-N after N refused answers."""
    base_key = kind.key(facts)
    refused = session.scalar(select(func.count()).select_from(Wait).where(
        Wait.deal_id == deal.id, Wait.status == WaitStatus.REFUSED,
        (Wait.key == base_key) | Wait.key.like(f"{base_key}-retry-%")))
    key = base_key if not refused else f"{base_key}-retry-{refused}"
    return Step(kind.name, "wait", key, kind.roles, facts)


def next_step(session: Session, deal: Deal) -> Step:
    if not deal.is_open:
        return Step("done", "done", deal.status)
    for row in PLAN:
        if isinstance(row, Auto):
            if row.at(deal):
                return Step(row.name, "auto", row.key(deal))
        elif (facts := row.at(deal)) is not None:
            return _wait(session, deal, row, facts)
    raise AssertionError("the plan ends with a step that always applies")


def whose_turn(deal: Deal, step: Step) -> tuple[str | None, str | None]:
    """(who the deal waits for: a role, or the customer; the person it is assigned to, if one):
    for the runs list's "my work". A team's queue (QA, delivery, finance) has no assignee:
    whoever of them is free."""
    if not step.is_wait:
        return None, None
    kind = KINDS[step.name]
    return kind.turn, kind.assignee(deal)
