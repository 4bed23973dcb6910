"""Cancelling a deal's order before its first shipment (``dealflow deal cancel``), by a manager.

In one transaction: the order is cancelled (what it reserved is free again), its deposit
invoice is reversed by a credit note, and what was paid on it refunded or kept as the
customer's credit, as the manager chooses; the wait it stood at is closed, the deal ends
cancelled with the reason, and the customer is told (with the credit note). Everything is keyed
(the deal's status, the invoice's, the mails' dedupe keys), so the command repeated, or run again
after the process died, does nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .credit_notes import SETTLEMENT_WORDS, SETTLEMENTS, CreditNote, credit_invoice
from .customer_links import credit_note_link
from .deal import Deal
from .documents import cancellation_context, credit_note_context
from .errors import InvalidTransition, ValidationError
from .outbox import queue_email
from .reminders import staff_with
from .roles import Role
from .sending import issue_document
from .staff import StaffUser
from .states import DealStatus, HoldStatus, WaitStatus
from .text import bounded


@dataclass(frozen=True)
class Cancelled:
    deal: str
    order: str | None
    credit_note: str | None
    settlement: str
    amount: str
    reason: str
    already: bool  # it was cancelled before: nothing was done now
    flow_run_id: str | None


def cancel_deal(session: Session, deal: Deal, by: StaffUser, reason: str, settle: str = "refund",
                method: str = "bank_transfer", finance_email: str | None = None) -> Cancelled:
    """Cancel the deal and its order; refused, with nothing written, after the first shipment,
    for a deal already won or lost, without a reason, or by someone who is not a manager."""
    reason = bounded(reason, "reason", 2000).strip()
    if deal.status == DealStatus.CANCELLED:
        note = _note(session, deal)
        return Cancelled(deal.number, deal.order.number if deal.order else None, note.number if note else None,
                         note.settlement if note else "none", str(note.amount) if note else "0", deal.lost_reason,
                         True, deal.flow_run_id)
    if not by.holds(Role.MANAGER):
        raise ValidationError("by", f"{by.handle} is not a manager: only a manager cancels an order")
    if not reason:
        raise ValidationError("reason", "say why the order is cancelled (the customer is told)")
    if settle not in SETTLEMENTS:
        raise ValidationError("settle", "must be refund (pay the deposit back) or credit (keep it as the "
                                        "customer's credit)")
    if not deal.is_open:
        raise InvalidTransition(f"deal {deal.number}", deal.status, "cancel")
    order = deal.order
    if order is not None and order.shipments:
        raise InvalidTransition(f"order {order.number}", f"{order.status.replace('_', ' ')} (shipment "
                                                         f"{order.shipments[0].number} "
                                                         "has left)", "cancel: a shipped order is returned instead")
    if order is not None:
        order.cancel(reason)
    note = None
    deposit = deal.deposit_invoice
    if deposit is not None and not deposit.status == "credited":
        note = credit_invoice(session, deposit, settle, reason, by, method)
    for wait in deal.waits:
        if wait.status == WaitStatus.OPEN:
            wait.close(WaitStatus.CANCELLED, by.handle, {}, f"deal cancelled: {reason}")
    for hold in deal.credit_holds:
        if hold.is_open:
            hold.decide(HoldStatus.REJECTED, by, f"deal cancelled: {reason}")
    if deal.opportunity is not None and deal.opportunity.stage not in ("closed_won", "closed_lost"):
        deal.opportunity.move_to("closed_lost", by)
    deal.cancel(reason)
    session.flush()
    if note is not None:
        issue_document(session, deal, "credit_note", note.number, credit_note_context(note),
                       f"Credit note {note.number} for {note.invoice.title.lower()} {note.invoice.number}",
                       link=lambda to: credit_note_link(note, to),
                       event="credit_note.issued", by=by.handle, invoice=note.invoice.number, amount=note.amount,
                       settlement=note.settlement, refunded=note.refunded, kept_as_credit=note.kept_as_credit)
    # the customer is told if they had something from us: an order, a deposit invoice, or an
    # estimate they could still accept from its link (its page now says the deal is closed)
    offered = deal.estimate is not None and any(r.sent_at is not None for r in deal.estimate.revisions)
    if deal.customer is not None and (order is not None or note is not None or offered):
        ctx = cancellation_context(deal, note)
        queue_email(session, deal_id=deal.id, dedupe_key=f"cancellation:{deal.number}", kind="cancellation",
                    to_addr=ctx["customer"]["email"],
                    subject=(f"Order {order.number} cancelled" if order is not None
                             else f"Estimate {ctx['estimate']} withdrawn"),
                    template="emails/cancellation", context=ctx)
    _tell_the_team(session, deal, order, note, reason, by, finance_email)
    audit.record(session, by.handle, "deal.cancelled", deal_id=deal.id, subject=deal.number, reason=reason,
                 order=order.number if order else None, credit_note=note.number if note else None,
                 settlement=SETTLEMENT_WORDS[note.settlement] if note else None)
    return Cancelled(deal.number, order.number if order else None, note.number if note else None,
                     note.settlement if note else "none", str(note.amount) if note else "0", reason, False,
                     deal.flow_run_id)


def _tell_the_team(session: Session, deal: Deal, order, note: CreditNote | None, reason: str, by: StaffUser,
                   finance_email: str | None) -> None:
    """Finance, when the cancel moves money (a refund to pay, a credit kept, a deposit invoice
    reversed); delivery, when the order was released for picking (it may be on the dock)."""
    if order is None:
        return
    lines = [f"cancelled by {by.name}: {reason}"]
    if note is not None:
        lines.append(f"credit note {note.number} reverses {note.invoice.title.lower()} {note.invoice.number} "
                     f"({note.amount} {deal.currency})")
        if note.refunded:
            lines.append(f"refund {note.refund_number} to pay: {note.refunded} {deal.currency} by "
                         f"{note.refund_method.replace('_', ' ')}")
        if note.kept_as_credit:
            lines.append(f"kept as credit on the customer's account: {note.kept_as_credit} {deal.currency}")
    people: list[tuple[str, str, str]] = []
    if finance_email and note is not None:
        people.append(("finance", finance_email, "Finance"))
    if order.pick_release is not None:  # released: it may be picked already; it goes back on the shelf
        people += [("delivery", p.email, p.name) for p in staff_with(session, Role.DELIVERY)]
    for team, to, name in people:
        queue_email(session, deal_id=deal.id, dedupe_key=f"cancelled-{team}:{deal.number}:{to}", kind="staff_notice",
                    to_addr=to, subject=f"Cancelled: order {order.number} ({deal.customer_name})",
                    template="emails/staff_reminder",
                    context={"name": name, "title": f"Order {order.number} of {deal.number} is cancelled",
                             "lines": lines + (["it was released for picking: put it back on the shelf"]
                                               if team == "delivery" else []),
                             "number": order.number})


def _note(session: Session, deal: Deal) -> CreditNote | None:
    return session.scalars(select(CreditNote).where(CreditNote.deal_id == deal.id).order_by(CreditNote.id)).first()
