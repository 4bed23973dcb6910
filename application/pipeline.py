"""The opportunity a deal carries, worked by sales beside the flow: follow-ups scheduled and
done, the pipeline stage moved. (Its hand-off to an engineer is an answer to the deal's hand-off
wait: ``application.answers``.) A change the deal's open wait describes is the door's to show
on the wait (``deals.redescribe_open_wait``): the door knows where its form is stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from models import Deal, pipeline
from models.deal import deal_by_number

from .uow import unit_of_work


def add_followup(deal_number: str, by: str, kind: str, due_at: datetime | Callable[[], datetime],
                 notes: str = "") -> dict[str, Any]:
    """A follow-up on the deal's opportunity, due at ``due_at`` (naive UTC, or a function that
    reads it from what was typed: called once the deal is found, so that an unknown deal is said
    first)."""
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        f = pipeline.add_followup(s, deal, by=by, kind=kind, due_at=due_at() if callable(due_at) else due_at,
                                  notes=notes)
        return {"followup": f.id, "deal": deal.number, "kind": f.kind, "due_at": f.due_at.isoformat()}


def complete_followup(followup_id: int, by: str, outcome: str) -> dict[str, Any]:
    """The follow-up is done, with its outcome; ``deal``: the number of the deal it is on (None
    for an opportunity without a lead)."""
    with unit_of_work() as s:
        f = pipeline.complete_followup(s, followup_id, by=by, outcome=outcome)
        number = f.opportunity.lead and s.scalars(select(Deal.number).where(Deal.lead_id == f.opportunity.lead_id)).first()
        return {"followup": f.id, "done_at": f.done_at.isoformat(), "deal": number or None}


def move_stage(deal_number: str, stage: str, by: str, probability: int | None = None) -> dict[str, Any]:
    """The opportunity moves to a pipeline stage (``probability``: instead of the stage's own)."""
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        pipeline.move_stage(s, deal, by=by, stage=stage, probability=probability)
        return {"deal": deal.number, "stage": deal.opportunity.stage, "probability": deal.opportunity.probability}
