"""The sales rep qualifies the lead: a real opportunity (need, budget, authority, timeline), or
not (the deal is lost)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy.orm import Session

from ..deal import Deal
from ..markdown import Markdown
from ..money import parse_money
from ..reminders import STUCK_WAIT
from ..staff import Role, StaffUser
from ..states import LeadStatus
from ..typed import line_of, notes_of
from .forms import Amount, Fields
from .kind import WaitKind

# where a lead came from, as people say it
SOURCES = {"web": "the website", "referral": "a referral", "trade_show": "a trade show", "cold_call": "a cold call",
           "email": "an email", "partner": "a partner", "other": "elsewhere"}


class QualifyFields(Fields):
    """Qualify the lead."""
    qualified: bool = Field(title="Qualified?", description="Is this a real opportunity (need, budget, authority, timeline)?")
    notes: str = Field(title="Notes", default="", description="What you learned: needs, decision makers, competitors.")
    budget: Amount | None = Field(title="Budget", default=None,
                                  description="The customer's budget, in the deal's currency (empty: not given).")
    timeline: str = Field(title="Timeline", default="", description="When the customer wants the machinery, e.g. 'Q1 2027'.")


def describe(session: Session, deal: Deal) -> Markdown:
    lead = deal.lead
    text = Markdown("qualify the lead from {} ({}), who came from {}.").format(
        lead.contact_name, lead.email, SOURCES.get(lead.source, lead.source))
    if lead.notes and lead.notes.strip():
        text += Markdown(" What we know: {}").format(" ".join(lead.notes.split()).rstrip(".") + ".")
    return text + Markdown(" Is it a real opportunity? Switch *Qualified?* on or off, and give the budget and "
                           "the timeline if you know them.")


def answer(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    lead = deal.lead
    notes = notes_of(answer, "notes")
    if not answer.get("qualified"):
        lead.disqualify(notes or "not qualified")
        deal.close_lost(f"lead disqualified: {notes}")
        return "disqualified"
    budget = answer.get("budget")
    budget = parse_money(budget, "budget") if budget not in (None, "") else None
    lead.qualify(notes, budget, line_of(answer, "timeline", 120))
    return "qualified"


QUALIFY = WaitKind(
    name="qualify", title="the lead's qualification", roles=(Role.SALES_REP,),
    at=lambda deal: {} if deal.lead.status == LeadStatus.NEW else None, key=lambda facts: "qualify",
    assignee=lambda deal: deal.owner.handle,
    fields=QualifyFields, describe=describe, answer=answer, reminder=STUCK_WAIT)
