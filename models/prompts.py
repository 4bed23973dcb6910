"""What a person needs to decide at each wait, as short Markdown for the form (see ``models.markdown``)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .catalog import StockLevel, catalogue, checklist_title, reserved, shortages, sku_of
from .deal import Deal, Wait
from .documents import revision_changes
from .identity import PROOF_FIELDS
from .markdown import Markdown, table
from .money import amount_text, round_money
from .portal import BY_LINK
from .staff import Role, StaffUser


def _money(amount, currency: str) -> Markdown:
    """An amount as people read it, always with its currency: '118,448.40 USD', '495,991 JPY'."""
    return Markdown("{}").format(Markdown(amount_text(amount, currency)))


def _lines_table(lines, currency: str) -> Markdown:
    return table(["Product", "Qty", Markdown("Unit price ({})").format(currency), "Discount",
                  Markdown("Net ({})").format(currency)],
                 [[ln.sku, ln.quantity, Markdown(f"{round_money(ln.unit_price, currency):,}"),
                   Markdown("{}%").format(Markdown(format(ln.discount_pct.normalize(), "f")) if ln.discount_pct else 0),
                   Markdown(f"{round_money(ln.net, currency):,}")] for ln in lines],
                 align=["---", "---:", "---:", "---:", "---:"])


# where a lead came from, as people say it
SOURCES = {"web": "the website", "referral": "a referral", "trade_show": "a trade show", "cold_call": "a cold call",
           "email": "an email", "partner": "a partner", "other": "elsewhere"}


def _last_refused(session: Session, deal: Deal, key: str) -> Wait | None:
    """The last refused answer to the wait ``key`` is a retry of (None if ``key`` is no retry)."""
    base = re.sub(r"-retry-\d+$", "", key)
    if base == key:
        return None
    return session.scalars(select(Wait).where(
        Wait.deal_id == deal.id, Wait.status == "refused",
        (Wait.key == base) | Wait.key.like(f"{base}-retry-%")).order_by(Wait.id.desc())).first()


def prefill(session: Session, deal: Deal, step: str, key: str) -> dict[str, Any]:
    """What the wait's form starts with (plain JSON data), so that a person types only what is new:

    - after a refusal, what was typed (the person corrects the wrong field, not the whole form),
      without the person when the refusal was about them;
    - a new revision: the previous revision's lines and notes;
    - a shipment: every line still to ship; a payment: the amount due.
    The customer's own answers (from the portal) are never put into a staff form."""
    refused = _last_refused(session, deal, key)
    if refused is not None and refused.answer and refused.proof != BY_LINK:
        from .choices import in_words  # as the form offers them

        start = in_words(step, {k: v for k, v in refused.answer.items() if k not in PROOF_FIELDS})
        if refused.refusal_reason.startswith("by:"):
            start.pop("by", None)
    elif step == "estimate" and deal.estimate and deal.estimate.latest is not None:
        latest = deal.estimate.latest
        start = {"lines": [{"sku": ln.sku, "quantity": ln.quantity, "discount_pct": str(ln.discount_pct)}
                           for ln in latest.lines], "notes": latest.notes}
    elif step == "shipment":
        start = {"lines": [{"sku": ln.sku, "quantity": ln.remaining} for ln in deal.order.lines if ln.remaining]}
    elif step == "payment":
        start = {"amount": str(deal.invoice.amount_due)}
    else:
        start = {}
    if step == "estimate" and isinstance(start.get("lines"), list):  # as the catalogue select shows them now
        labels = catalogue_labels(session, deal.currency)  # a product retired since: its line is dropped
        start["lines"] = [{**ln, "sku": labels[str(sku_of(ln.get("sku", "")))]} for ln in start["lines"]
                          if isinstance(ln, dict) and str(sku_of(ln.get("sku", ""))) in labels]
    return start


def catalogue_labels(session: Session, currency: str) -> dict[str, str]:
    """SKU -> how the estimate form's select lists it (its price in the deal's currency, what is
    available): the choices and a pre-filled line are built by this one function, so a pre-filled
    line is always one of them. A product with no price in that currency says so (picked, the
    estimate is refused naming the price and the rate it lacks)."""
    from .clock import utcnow
    from .company import the_company
    from .prices import NoPrice, quote

    held = reserved(session)
    own, today = the_company(session).currency, utcnow().date()
    labels = {}
    for p in catalogue(session):
        try:
            labels[p.sku] = p.label(currency, held.get(p.id, 0), quote(session, p, currency, today, own).unit_price)
        except NoPrice:
            labels[p.sku] = p.label(currency, held.get(p.id, 0), unpriced=True)
    return labels


def form_choices(session: Session, deal: Deal, step: str) -> dict[str, Any]:
    """What the wait's form offers to pick from, built from the deal when the wait opens:
    ``engineers`` (who can take the hand-off), ``products`` (the catalogue, as labels with price
    and stock), ``ship`` (the SKUs left to ship), ``checklist`` ([item, title] of what QA checks
    on this order)."""
    if step == "handoff":
        return {"engineers": [p.handle for p in session.scalars(select(StaffUser).where(StaffUser.active)
                                                                .order_by(StaffUser.handle))
                              if p.holds(Role.SALES_ENGINEER)]}
    if step == "estimate":
        return {"products": list(catalogue_labels(session, deal.currency).values())}
    if step == "shipment":
        return {"ship": [ln.sku for ln in deal.order.lines if ln.remaining]}
    if step == "qa":
        return {"checklist": [[item, checklist_title(item)] for item in deal.order.qa_checklist]}
    return {}


def describe(session: Session, deal: Deal, key: str, body: Markdown) -> Markdown:
    """The wait's description: the deal, ``body`` (what to decide, from the wait's ``describe``), and
    why the previous answer was refused. Every value a person typed (names, notes, reasons) is
    escaped: see ``models.markdown``."""
    who = Markdown("**{}** · {}").format(deal.number, deal.customer_name)
    note = Markdown("")
    refused = _last_refused(session, deal, key)  # a retry: say why the previous answer was refused
    if refused is not None:
        who = session.scalars(select(StaffUser.name).where(StaffUser.handle == refused.answered_by)).first()
        reason = " ".join(refused.refusal_reason.split())
        note = Markdown("\n\n> **The previous answer was refused.** {} answered; the reason: {}").format(
            who or refused.answered_by or "someone", reason if reason.endswith((".", "?", "!")) else reason + ".")
        if refused.answer and refused.proof != BY_LINK:
            note += Markdown(" The form starts with what was typed: correct what the reason names.")
    return Markdown("{}: {}{}").format(who, body, note)


def describe_qualify(session: Session, deal: Deal) -> Markdown:
    lead = deal.lead
    text = Markdown("qualify the lead from {} ({}), who came from {}.").format(
        lead.contact_name, lead.email, SOURCES.get(lead.source, lead.source))
    if lead.notes and lead.notes.strip():
        text += Markdown(" What we know: {}").format(" ".join(lead.notes.split()).rstrip(".") + ".")
    return text + Markdown(" Is it a real opportunity? Switch *Qualified?* on or off, and give the budget and "
                           "the timeline if you know them.")


def describe_handoff(session: Session, deal: Deal) -> Markdown:
    opp = deal.opportunity
    done = sum(1 for f in opp.followups if f.is_done)
    return Markdown("the opportunity is at {} ({}% likely); {} of {} follow-ups done. Hand it to the sales "
                    "engineer who prepares the estimate when it is ready for one, with a note of what they should "
                    "know.").format(opp.stage.replace("_", " "), opp.probability, done, len(opp.followups))


def sales_notes(deal: Deal) -> list[tuple[str, str]]:
    """What sales learned, for the engineer: (whose words, the words), each only if there are any."""
    lead, opp = deal.lead, deal.opportunity
    notes = [("the lead's notes", lead.notes), (f"qualified by {deal.owner.name}", lead.qualification_notes)]
    if opp is not None and opp.engineer is not None:
        notes.append((f"hand-off note to {opp.engineer.name}", opp.handoff_note))
    return [(who, text.strip()) for who, text in notes if text and text.strip()]


def _what_sales_learned(deal: Deal) -> Markdown:
    notes = sales_notes(deal)
    if not notes:
        return Markdown("")
    return Markdown("\n\n**What sales learned**\n\n") + Markdown("\n").join(
        Markdown("- {}: {}").format(who, " ".join(text.split())) for who, text in notes)


def describe_estimate(session: Session, deal: Deal) -> Markdown:
    latest = deal.estimate.latest if deal.estimate else None
    if latest is None:
        budget = deal.lead.budget
        return Markdown("prepare estimate revision 1: a line per product (pick it from the list, with its price "
                        "and stock), quantity and discount %. Budget {}, timeline {}."
                        ).format(_money(budget, deal.currency) if budget is not None else "not given",
                                 deal.lead.timeline or "not given") + _what_sales_learned(deal)
    cr = latest.change_request
    return Markdown('prepare revision {}. The customer asked on {}: "{}" The form starts with the lines of '
                    '{}: change what was asked.\n\n{}').format(
        latest.revision + 1, latest.number, cr.text if cr else "-", latest.number,
        _lines_table(latest.lines, deal.currency)) + _what_sales_learned(deal)


def describe_decision(session: Session, deal: Deal) -> Markdown:
    rev = deal.estimate.latest
    previous = deal.estimate.revisions[-2] if len(deal.estimate.revisions) > 1 else None
    changes = revision_changes(previous, rev)
    t = rev.totals
    text = Markdown("record the customer's decision on {} (valid until {}), given by phone, email or in a "
                    "meeting: they approve it, ask for changes (say which) or decline it (say why), and how they "
                    "told us. The customer can also answer online from the link in the estimate email; the first "
                    "answer wins.\n\n{}\n\nNet {}, tax {}, **total {}**.").format(
        rev.number, rev.valid_until, _lines_table(rev.lines, deal.currency), _money(t.net, deal.currency),
        _money(t.tax, deal.currency), _money(t.total, deal.currency))
    if changes:
        text += Markdown("\n\nChanged since the previous revision: ") + Markdown("; ").join(changes) + Markdown(".")
    short = shortages(session, [(ln.product, ln.quantity) for ln in rev.lines])
    if short:
        text += (Markdown("\n\n**More than is available:** ") + Markdown("; ").join(Markdown("{}").format(n)
                                                                                  for n in short)
                 + Markdown(". The order can still be made; it ships when the stock is there."))
    return text


def describe_qa(session: Session, deal: Deal) -> Markdown:
    order = deal.order
    machines = ", ".join(f"{ln.quantity} × {ln.sku}" for ln in order.lines)
    failed = [i for i in order.inspections if not i.passed]
    items = order.qa_checklist
    text = (Markdown("test order {} ({}). Switch on each check that passed: all on releases it for picking; "
                     "any off sends it to rework (say what failed in the notes).").format(order.number, machines)
            if items else Markdown("test order {} ({}). Its products have no checklist: answer passed yes/no."
                                   ).format(order.number, machines))
    if failed:
        text += Markdown(" Attempt {} failed: {}").format(failed[-1].attempt,
                                                          " ".join(failed[-1].notes.split()).rstrip(".") + ".")
    return text


def describe_shipment(session: Session, deal: Deal) -> Markdown:
    order = deal.order
    parts = []
    for ln in order.lines:
        if ln.remaining:
            level = session.get(StockLevel, ln.product_id)
            parts.append(Markdown("{}: {} to ship, {} in stock").format(ln.sku, ln.remaining,
                                                                      level.on_hand if level else 0))
    return Markdown("confirm a shipment of {}: the carrier, the tracking number and what is in it (the form "
                    "starts with all that is left to ship; a line at 0 is not in this shipment). ").format(
        order.number) + Markdown("; ").join(parts) + Markdown(".")


def describe_payment(session: Session, deal: Deal) -> Markdown:
    inv = deal.invoice
    return Markdown("record a payment received for {} (due {}): total {}, paid so far {}, **still due {}**.").format(
        inv.number, inv.due_date, _money(inv.totals.total, deal.currency), _money(inv.paid, deal.currency),
        _money(inv.amount_due, deal.currency))

