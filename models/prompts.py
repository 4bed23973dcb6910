"""What every wait's form shares: the deal at its top, why the previous answer was refused, what
it starts with after a refusal, the catalogue as the form lists it, and what sales learned.
Each kind's own words are in its module (``models.waits``); all is short Markdown for the form,
with every typed value escaped (see ``models.markdown``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .catalog import catalogue, reserved
from .deal import Deal, Wait
from .identity import PROOF_FIELDS
from .markdown import Markdown, table
from .money import amount_text, round_money
from .portal import BY_LINK
from .staff import StaffUser
from .states import WaitStatus

if TYPE_CHECKING:
    from .waits.kind import WaitKind


def money(amount, currency: str) -> Markdown:
    """An amount as people read it, always with its currency: '118,448.40 USD', '495,991 JPY'."""
    return Markdown("{}").format(Markdown(amount_text(amount, currency)))


def lines_table(lines, currency: str) -> Markdown:
    return table(["Product", "Qty", Markdown("Unit price ({})").format(currency), "Discount",
                  Markdown("Net ({})").format(currency)],
                 [[ln.sku, ln.quantity, Markdown(f"{round_money(ln.unit_price, currency):,}"),
                   Markdown("{}%").format(Markdown(format(ln.discount_pct.normalize(), "f")) if ln.discount_pct else 0),
                   Markdown(f"{round_money(ln.net, currency):,}")] for ln in lines],
                 align=["---", "---:", "---:", "---:", "---:"])


def last_refused(session: Session, deal: Deal, key: str) -> Wait | None:
    """The last refused answer to the wait ``key`` is a retry of (None if ``key`` is no retry)."""
    base = re.sub(r"-retry-\d+$", "", key)
    if base == key:
        return None
    return session.scalars(select(Wait).where(
        Wait.deal_id == deal.id, Wait.status == WaitStatus.REFUSED,
        (Wait.key == base) | Wait.key.like(f"{base}-retry-%")).order_by(Wait.id.desc())).first()


def start(session: Session, deal: Deal, kind: WaitKind, key: str) -> dict[str, Any]:
    """What the wait's form starts with (``prefill``) and offers to pick from (``choices``), as
    plain data, so that a person types only what is new: after a refusal, what was typed (the
    person corrects the wrong field, not the whole form), without the person when the refusal
    was about them; else what the kind starts with (a new revision: the previous one's lines; a
    shipment: every line still to ship; a payment: the amount due). The customer's own answers
    (from the portal) are never put into a staff form."""
    refused = last_refused(session, deal, key)
    typed = None
    if refused is not None and refused.answer and refused.proof != BY_LINK:
        typed = kind.as_offered({k: v for k, v in refused.answer.items() if k not in PROOF_FIELDS})
        if refused.refusal_reason.startswith("by:"):
            typed.pop("by", None)
    subject = kind.of(session, deal, key)
    return {"prefill": kind.prefill(session, subject, typed), "choices": kind.choices(session, subject)}


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


def describe(session: Session, deal: Deal, key: str, body: Markdown) -> Markdown:
    """The wait's description: the deal, ``body`` (what to decide, from the wait's ``describe``), and
    why the previous answer was refused. Every value a person typed (names, notes, reasons) is
    escaped: see ``models.markdown``."""
    who = Markdown("**{}** · {}").format(deal.number, deal.customer_name)
    note = Markdown("")
    refused = last_refused(session, deal, key)  # a retry: say why the previous answer was refused
    if refused is not None:
        who = session.scalars(select(StaffUser.name).where(StaffUser.handle == refused.answered_by)).first()
        reason = " ".join(refused.refusal_reason.split())
        note = Markdown("\n\n> **The previous answer was refused.** {} answered; the reason: {}").format(
            who or refused.answered_by or "someone", reason if reason.endswith((".", "?", "!")) else reason + ".")
        if refused.answer and refused.proof != BY_LINK:
            note += Markdown(" The form starts with what was typed: correct what the reason names.")
    return Markdown("{}: {}{}").format(who, body, note)


def sales_notes(deal: Deal) -> list[tuple[str, str]]:
    """What sales learned, for the engineer: (whose words, the words), each only if there are any."""
    lead, opp = deal.lead, deal.opportunity
    notes = [("the lead's notes", lead.notes), (f"qualified by {deal.owner.name}", lead.qualification_notes)]
    if opp is not None and opp.engineer is not None:
        notes.append((f"hand-off note to {opp.engineer.name}", opp.handoff_note))
    return [(who, text.strip()) for who, text in notes if text and text.strip()]


def what_sales_learned(deal: Deal) -> Markdown:
    notes = sales_notes(deal)
    if not notes:
        return Markdown("")
    return Markdown("\n\n**What sales learned**\n\n") + Markdown("\n").join(
        Markdown("- {}: {}").format(who, " ".join(text.split())) for who, text in notes)


