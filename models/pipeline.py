"""What a sales rep does beside the flow: add leads, schedule and complete follow-ups, move stages.

These are recorded while the deal waits (for the hand-off, typically); the flow reads them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from . import audit
from .base import utcnow
from .crm import FollowUp, Lead
from .deal import Deal
from .errors import InvalidTransition, NotFound, ValidationError
from .staff import Role
from .staff import staff_member as staff_by_handle
from .text import check_id, one_line


def add_lead(session: Session, *, company: str, contact_name: str, email: str, owner: str,
             phone: str = "", address: str = "", source: str = "other", notes: str = "",
             budget: Decimal | None = None) -> Lead:
    person = staff_by_handle(session, owner, "owner")
    if not person.has_role(Role.SALES_REP):
        raise ValidationError("owner", f"{owner} is {person.role}; a lead's owner must be a sales_rep")
    lead = Lead(company=(company or "").strip(), contact_name=(contact_name or "").strip(),
                email=(email or "").strip(), phone=phone, address=address, source=source,
                notes=notes, budget=budget, owner=person)
    lead.validate()
    session.add(lead)
    session.flush()
    audit.record(session, person.handle, "lead.added", subject=f"lead {lead.id}", company=lead.company)
    return lead


def _opportunity(deal: Deal):
    if deal.opportunity is None:
        raise InvalidTransition(f"deal {deal.number}", "a lead", "work the opportunity (qualify it first)")
    return deal.opportunity


def add_followup(session: Session, deal: Deal, *, by: str, kind: str, due_at: datetime,
                 notes: str = "") -> FollowUp:
    person = staff_by_handle(session, by)
    opp = _opportunity(deal)
    followup = FollowUp(opportunity=opp, kind=kind, due_at=FollowUp.check_due(due_at, utcnow()), owner=person,
                        notes=notes)
    followup.validate()
    session.add(followup)
    session.flush()
    audit.record(session, person.handle, "followup.scheduled", deal_id=deal.id, subject=f"follow-up {followup.id}",
                 kind=kind, due_at=due_at.isoformat(timespec="minutes"))
    return followup


def complete_followup(session: Session, followup_id: int, *, by: str, outcome: str) -> FollowUp:
    person = staff_by_handle(session, by)
    followup = session.get(FollowUp, check_id(followup_id, "followup_id"))
    if followup is None:
        raise NotFound("follow-up", followup_id)
    followup.complete(outcome)
    deal = session.query(Deal).filter(Deal.opportunity_id == followup.opportunity_id).one()
    audit.record(session, person.handle, "followup.done", deal_id=deal.id, subject=f"follow-up {followup.id}",
                 outcome=outcome)
    return followup


STAGE_MOVERS = (Role.SALES_REP, Role.SALES_ENGINEER)


def move_stage(session: Session, deal: Deal, *, by: str, stage: str, probability: int | None = None) -> None:
    """A person's stage move. The closed stages are the flow's: the customer's decision closes."""
    person = staff_by_handle(session, by)
    if not any(person.has_role(r) for r in STAGE_MOVERS):
        raise ValidationError("by", f"{person.handle} is {person.role}; stages are moved by sales")
    stage = one_line(stage, "stage", 30, required=True)
    if stage.startswith("closed"):
        raise ValidationError("stage", f"{stage} is set by the deal's flow when the customer decides; "
                                       f"record the decision with `dealflow answer DEAL decision`")
    opp = _opportunity(deal)
    change = opp.move_to(stage, person, probability)
    audit.record(session, person.handle, "opportunity.stage", deal_id=deal.id, subject=deal.number,
                 from_stage=change.from_stage, to_stage=stage, probability=opp.probability)
