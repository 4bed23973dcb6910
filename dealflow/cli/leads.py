"""``dealflow lead``: the start of every deal."""

from __future__ import annotations

from typing import Any

import click

from models import NotFound
from models.text import MAX_ID

from .common import DealflowGroup, emit, table


@click.group(cls=DealflowGroup)
def lead() -> None:
    """Leads: the start of every deal."""


@lead.command("add")
@click.option("--company", required=True, help="The prospect's company name.")
@click.option("--contact", "contact_name", required=True, help="The person we talk to.")
@click.option("--email", required=True, help="The contact's e-mail address.")
@click.option("--owner", required=True, help="Handle of the sales rep who owns the lead.")
@click.option("--phone", default="", help="Phone number.")
@click.option("--address", default="", help="Postal address (billing and shipping until told otherwise).")
@click.option("--source", default="other", show_default=True,
              help="web, referral, trade_show, cold_call, email, partner or other.")
@click.option("--notes", default="", help="What we know so far.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def lead_add(as_json: bool, **fields: Any) -> None:
    """Add a lead. A lead whose e-mail and company are a known customer's becomes that customer's
    deal (their currency and terms) when it is converted."""
    from models.customers import customer_of_lead
    from models.pipeline import add_lead
    from services.db import session_scope

    with session_scope() as s:
        new = add_lead(s, **fields)
        s.commit()
        known = customer_of_lead(s, new.email, new.company)
        out = {"lead": new.id, "company": new.company, "owner": new.owner.handle,
               "customer": {"id": known.id, "name": known.name, "currency": known.currency} if known else None}
    of = (f"; a known customer: {out['customer']['name']} (customer {out['customer']['id']}"
          + (f", {out['customer']['currency']}" if out["customer"]["currency"] else "") + ")") if known else ""
    emit(out, as_json, f"lead {out['lead']} added: {out['company']} (owner {out['owner']}){of}; "
                       f"start its deal with `dealflow deal start {out['lead']}`")


def _lead_row(lead, deal) -> dict[str, Any]:
    return {"lead": lead.id, "company": lead.company, "contact": lead.contact_name, "email": lead.email,
            "phone": lead.phone, "source": lead.source, "status": lead.status, "owner": lead.owner.handle,
            "notes": lead.notes, "qualification_notes": lead.qualification_notes,
            "budget": str(lead.budget) if lead.budget is not None else None, "timeline": lead.timeline,
            "created": lead.created_at.isoformat(timespec="seconds"), "deal": deal.number if deal else None}


@lead.command("list")
@click.option("--status", type=click.Choice(["new", "qualified", "disqualified", "converted"]),
              help="Only leads in this state.")
@click.option("--owner", help="Only this sales rep's leads (handle).")
@click.option("--json", "as_json", is_flag=True, help="Print the leads as JSON.")
def lead_list(status: str | None, owner: str | None, as_json: bool) -> None:
    """Every lead, newest first: company, contact, state, owner, and its deal if started."""
    from sqlalchemy import select

    from models import Deal, Lead, StaffUser
    from services.db import session_scope

    with session_scope() as s:
        query = select(Lead).order_by(Lead.id.desc())
        if status:
            query = query.where(Lead.status == status)
        if owner:
            query = query.join(StaffUser, Lead.owner_id == StaffUser.id).where(StaffUser.handle == owner.strip().lower())
        deals = {d.lead_id: d for d in s.scalars(select(Deal))}
        rows = [_lead_row(lead, deals.get(lead.id)) for lead in s.scalars(query)]
    emit(rows, as_json, table(rows, ["lead", "company", "contact", "status", "owner", "deal"]))


@lead.command("show")
@click.argument("lead_id", type=click.IntRange(1, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="Print the lead as JSON.")
def lead_show(lead_id: int, as_json: bool) -> None:
    """One lead: who, how to reach them, where it came from, what we know, and its deal."""
    from sqlalchemy import select

    from models import Deal, Lead
    from services.db import session_scope

    with session_scope() as s:
        lead = s.get(Lead, lead_id)
        if lead is None:
            raise NotFound("lead", lead_id)
        row = _lead_row(lead, s.scalars(select(Deal).where(Deal.lead_id == lead.id)).one_or_none())
    text = [f"lead {row['lead']} · {row['company']} · {row['status']} · owner {row['owner']}",
            f"contact: {row['contact']} <{row['email']}>" + (f", {row['phone']}" if row["phone"] else ""),
            f"source: {row['source'].replace('_', ' ')}; added {row['created']} UTC"]
    if row["notes"]:
        text.append(f"notes: {row['notes']}")
    if row["qualification_notes"] or row["budget"] or row["timeline"]:
        from services.company import details

        budget = f"{row['budget']} {details()['currency']}" if row["budget"] else "not given"
        text.append(f"qualification: {row['qualification_notes'] or 'no notes'}; budget {budget}; "
                    f"timeline {row['timeline'] or 'not given'}")
    text.append(f"deal: {row['deal']} (`dealflow deal show {row['deal']}`)" if row["deal"]
                else f"deal: not started (`dealflow deal start {row['lead']}`)")
    emit(row, as_json, "\n".join(text))
