"""``dealflow lead``: the start of every deal."""

from __future__ import annotations

from typing import Any

import click

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
    from application import leads

    out = leads.add_lead(**fields)
    known = out["customer"]
    of = (f"; a known customer: {known['name']} (customer {known['id']}"
          + (f", {known['currency']}" if known["currency"] else "") + ")") if known else ""
    emit(out, as_json, f"lead {out['lead']} added: {out['company']} (owner {out['owner']}){of}; "
                       f"start its deal with `dealflow deal start {out['lead']}`")


@lead.command("list")
@click.option("--status", type=click.Choice(["new", "qualified", "disqualified", "converted"]),
              help="Only leads in this state.")
@click.option("--owner", help="Only this sales rep's leads (handle).")
@click.option("--json", "as_json", is_flag=True, help="Print the leads as JSON.")
def lead_list(status: str | None, owner: str | None, as_json: bool) -> None:
    """Every lead, newest first: company, contact, state, owner, and its deal if started."""
    from application import leads

    rows = leads.list_leads(status, owner)
    emit(rows, as_json, table(rows, ["lead", "company", "contact", "status", "owner", "deal"]))


@lead.command("show")
@click.argument("lead_id", type=click.IntRange(1, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="Print the lead as JSON.")
def lead_show(lead_id: int, as_json: bool) -> None:
    """One lead: who, how to reach them, where it came from, what we know, and its deal."""
    from application import leads

    row = leads.show_lead(lead_id)
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
