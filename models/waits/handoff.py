"""The sales rep hands the opportunity to the sales engineer who prepares the estimate, with a
note of what they should know."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..deal import Deal
from ..markdown import Markdown
from ..reminders import STUCK_WAIT
from ..staff import Role, StaffUser, staff_member
from ..typed import notes_of
from .forms import Fields
from .kind import WaitKind


class HandoffFields(Fields):
    """Hand the opportunity to a sales engineer."""
    engineer: str = Field(title="Sales engineer", description="The sales engineer who prepares the estimate (e.g. mark).")
    note: str = Field(title="Note", default="", description="What the engineer should know.")

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        if cls.choices.get("engineers"):
            schema["properties"]["engineer"] = {**schema["properties"]["engineer"], "enum": cls.choices["engineers"]}


def describe(session: Session, deal: Deal) -> Markdown:
    opp = deal.opportunity
    done = sum(1 for f in opp.followups if f.is_done)
    return Markdown("the opportunity is at {} ({}% likely); {} of {} follow-ups done. Hand it to the sales "
                    "engineer who prepares the estimate when it is ready for one, with a note of what they should "
                    "know.").format(opp.stage.replace("_", " "), opp.probability, done, len(opp.followups))


def choices(session: Session, deal: Deal) -> dict[str, Any]:
    """``engineers``: who can take the hand-off."""
    return {"engineers": [p.handle for p in session.scalars(select(StaffUser).where(StaffUser.active)
                                                            .order_by(StaffUser.handle))
                          if p.holds(Role.SALES_ENGINEER)]}


def answer(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    note = notes_of(answer, "note", 2000)  # shown to the engineer on the estimate form, the deal's page and `deal show`
    engineer = staff_member(session, answer.get("engineer"), "engineer")
    deal.opportunity.hand_to(engineer, note, by=person)
    return f"assigned to {engineer.handle}"


HANDOFF = WaitKind(
    name="handoff", title="the hand-off to a sales engineer", roles=(Role.SALES_REP,),
    at=lambda deal: {} if deal.opportunity.engineer_id is None else None, key=lambda facts: "handoff",
    assignee=lambda deal: deal.owner.handle,
    fields=HandoffFields, describe=describe, choices=choices, answer=answer, reminder=STUCK_WAIT)
