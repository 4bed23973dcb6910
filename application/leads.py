"""Leads: the start of every deal. The domain records a new lead under its owner."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Deal, Lead, NotFound, StaffUser
from models.customers import customer_of_lead
from models.pipeline import add_lead as add_to_pipeline

from .uow import unit_of_work


def add_lead(*, company: str, contact_name: str, email: str, owner: str, phone: str = "", address: str = "",
             source: str = "other", notes: str = "") -> dict[str, Any]:
    """A new lead, owned by a sales rep; ``customer``: the known customer it belongs to (same
    e-mail and company), whose deal it becomes when it is converted, or None."""
    with unit_of_work() as s:
        new = add_to_pipeline(s, company=company, contact_name=contact_name, email=email, owner=owner, phone=phone,
                              address=address, source=source, notes=notes)
        known = customer_of_lead(s, new.email, new.company)
        return {"lead": new.id, "company": new.company, "owner": new.owner.handle,
                "customer": {"id": known.id, "name": known.name, "currency": known.currency} if known else None}


def _lead_row(lead: Lead, deal: Deal | None) -> dict[str, Any]:
    return {"lead": lead.id, "company": lead.company, "contact": lead.contact_name, "email": lead.email,
            "phone": lead.phone, "source": lead.source, "status": lead.status, "owner": lead.owner.handle,
            "notes": lead.notes, "qualification_notes": lead.qualification_notes,
            "budget": str(lead.budget) if lead.budget is not None else None, "timeline": lead.timeline,
            "created": lead.created_at.isoformat(timespec="seconds"), "deal": deal.number if deal else None}


def list_leads(status: str | None = None, owner: str | None = None) -> list[dict[str, Any]]:
    """Every lead, newest first, with its deal's number if one was started (``status``, ``owner``:
    only those)."""
    with unit_of_work() as s:
        query = select(Lead).order_by(Lead.id.desc())
        if status:
            query = query.where(Lead.status == status)
        if owner:
            query = query.join(StaffUser, Lead.owner_id == StaffUser.id).where(StaffUser.handle == owner.strip().lower())
        deals = {d.lead_id: d for d in s.scalars(select(Deal))}
        return [_lead_row(lead, deals.get(lead.id)) for lead in s.scalars(query)]


def show_lead(lead_id: int) -> dict[str, Any]:
    with unit_of_work() as s:
        lead = s.get(Lead, lead_id)
        if lead is None:
            raise NotFound("lead", lead_id)
        return _lead_row(lead, s.scalars(select(Deal).where(Deal.lead_id == lead.id)).one_or_none())
