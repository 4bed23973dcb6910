"""One context function per document: plain data (str, int, lists, dicts) for the templates.

Amounts are strings of Decimals, so the snapshot stored with a document or email is exact.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from .billing import Invoice, Payment
from .deal import Deal
from .estimates import EstimateRevision
from .money import ZERO
from .orders import SalesOrder, SalesReceipt, Shipment
from .pricing import PricedLine, Totals
from .states import InvoiceStatus

if TYPE_CHECKING:
    from .credit import CreditHold
    from .credit_notes import CreditNote


def _customer(deal: Deal) -> dict[str, Any]:
    customer = deal.customer
    asked = (deal.lead.email or "").lower()  # the person who asked for this deal, if they are a contact
    contact = (next((c for c in customer.contacts if c.email.lower() == asked), customer.primary_contact)
               if customer else None)
    return {
        "name": deal.customer_name,
        "contact": contact.name if contact else deal.lead.contact_name,
        "email": contact.email if contact else deal.lead.email,
        "billing_address": customer.billing_address if customer else deal.lead.address,
        "shipping_address": customer.shipping_address if customer else deal.lead.address,
        "tax_id": customer.tax_id if customer else "",
    }


def _lines(lines: list[PricedLine], quantity_attr: str = "quantity") -> list[dict[str, Any]]:
    out = []
    for ln in lines:
        qty = getattr(ln, quantity_attr)
        out.append({
            "line_no": ln.line_no, "sku": ln.sku, "description": ln.description, "quantity": qty,
            "unit_price": str(ln.unit_price), "discount_pct": str(ln.discount_pct),
            "tax_rate": str(ln.tax_rate), "gross": str(ln.gross_for(qty)),
            "discount": str(ln.discount_for(qty)), "net": str(ln.net_for(qty)),
            "tax": str(ln.tax_for(qty)), "total": str(ln.net_for(qty) + ln.tax_for(qty)),
        })
    return out


def _base(deal: Deal, kind: str, number: str) -> dict[str, Any]:
    from sqlalchemy.orm import object_session

    from .company import THE_COMPANY, Company

    seller = object_session(deal).get(Company, THE_COMPANY)
    return {"kind": kind, "number": number, "deal": deal.number, "currency": deal.currency,
            "customer": _customer(deal), "customer_po": deal.order.customer_po if deal.order is not None else "",
            # the seller as it was when the document was made: printed again, it says the same
            "seller": seller.as_dict() if seller is not None else None}


def revision_changes(previous: EstimateRevision | None, current: EstimateRevision) -> list[str]:
    """What changed since the revision the customer saw, line by line, in words."""
    if previous is None:
        return []
    before = {ln.sku: ln for ln in previous.lines}
    after = {ln.sku: ln for ln in current.lines}
    changes = []
    for sku, ln in after.items():
        old = before.get(sku)
        if old is None:
            changes.append(f"added {ln.quantity} × {sku} ({ln.description})")
            continue
        if old.quantity != ln.quantity:
            changes.append(f"{sku}: quantity {old.quantity} → {ln.quantity}")
        if old.discount_pct != ln.discount_pct:
            changes.append(f"{sku}: discount {old.discount_pct}% → {ln.discount_pct}%")
        if old.unit_price != ln.unit_price:
            changes.append(f"{sku}: unit price {old.unit_price} → {ln.unit_price}")
    for sku, old in before.items():
        if sku not in after:
            changes.append(f"removed {sku} ({old.description})")
    return changes


def estimate_context(rev: EstimateRevision) -> dict[str, Any]:
    from sqlalchemy.orm import object_session

    from .deposits import DepositTerms, terms_for

    deal = rev.estimate.deal
    previous = rev.estimate.sent_before(rev)  # what the customer saw before (never a revision sent back)
    # what accepting it will ask for first: the terms fixed when it was sent (a draft: as they are now)
    deposit = (DepositTerms(rev.deposit_pct, rev.deposit_before or "shipping") if rev.deposit_pct is not None
               else terms_for(object_session(rev), deal.customer))
    ctx = _base(deal, "estimate", rev.number)
    ctx.update({
        "revision": rev.revision,
        "valid_until": rev.valid_until.isoformat(),
        "payment_terms_days": deal.customer.payment_terms_days if deal.customer is not None else 30,
        "deposit_terms": deposit.words() if deposit.asked else "",
        "needs_qa": any(ln.product.needs_qa for ln in rev.lines),
        "prepared_by": rev.prepared_by.name,
        "notes": rev.notes,
        "lines": _lines(rev.lines),
        "totals": rev.totals.as_dict(),
        "changes": revision_changes(previous, rev),
        "change_request": previous.change_request.text if previous and previous.change_request else "",
    })
    if rev.fx_converted and rev.fx_rate is not None:  # printed: the prices are the catalogue's at this rate
        from sqlalchemy.orm import object_session

        from .company import the_company

        ctx["fx"] = {"rate": f"{rev.fx_rate.normalize():f}", "on": rev.fx_on.isoformat(),
                     "from": the_company(object_session(rev)).currency}
    return ctx


def order_context(order: SalesOrder) -> dict[str, Any]:
    ctx = _base(order.deal, "order", order.number)
    ctx.update({"estimate": order.estimate_revision.number, "lines": _lines(order.lines),
                "totals": order.totals.as_dict(), "date": order.created_at.date().isoformat(),
                "deposit_terms": order.deposit_terms.words() if order.deposit_terms.asked else ""})
    online = order.estimate_revision.customer_answer
    if online is not None and online.action == "accept":
        ctx["accepted_online"] = {"name": online.name, "po_number": online.po_number,
                                  "date": online.submitted_at.date().isoformat(),
                                  "at": online.submitted_at.isoformat(timespec="seconds") + " UTC"}
    return ctx


def receipt_context(receipt: SalesReceipt) -> dict[str, Any]:
    order = receipt.pick_release.order
    ctx = _base(order.deal, "receipt", receipt.number)
    passed = next((i for i in order.inspections if i.passed), None)  # None: nothing on it needs QA
    ctx.update({"order": order.number, "lines": _lines(order.lines), "totals": order.totals.as_dict(),
                "date": receipt.at.date().isoformat(), "released_by": order.pick_release.released_by.name,
                "qa_attempts": len(order.inspections), "qa_inspector": passed.inspector.name if passed else None,
                "qa_notes": passed.notes if passed else "", "released_automatically": passed is None})
    return ctx


def shipment_context(shipment: Shipment) -> dict[str, Any]:
    """A delivery note: what left in this shipment, each line with its serial numbers (if any)."""
    from sqlalchemy.orm import object_session

    from .serials import serials_of_lines

    order = shipment.order
    numbers = serials_of_lines(object_session(shipment), [sl.id for sl in shipment.lines])
    ctx = _base(order.deal, "shipment", shipment.number)
    ctx.update({
        "order": order.number, "seq": shipment.seq, "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number, "date": shipment.at.date().isoformat(),
        "lines": [{"sku": sl.order_line.sku, "description": sl.order_line.description,
                   "quantity": sl.quantity, "ordered": sl.order_line.quantity,
                   "shipped_to_date": sl.order_line.shipped_qty,
                   "remaining": sl.order_line.remaining,
                   **({"serials": numbers[sl.id]} if sl.id in numbers else {})} for sl in shipment.lines],
        "complete": order.is_fully_shipped,
    })
    return ctx


def _with_serials(session, lines: list[dict[str, Any]], order_line_ids: list[int | None]) -> list[dict[str, Any]]:
    """Invoice lines with the serial numbers shipped on their order lines (a line without: as it was)."""
    from sqlalchemy import select

    from .orders import ShipmentLine
    from .serials import serials_of_lines

    ids = [i for i in order_line_ids if i is not None]
    if not ids:
        return lines
    shipped = session.execute(select(ShipmentLine.id, ShipmentLine.order_line_id).where(
        ShipmentLine.order_line_id.in_(ids)).order_by(ShipmentLine.id)).all()
    numbers = serials_of_lines(session, [line_id for line_id, _ in shipped])
    per_order_line: dict[int, list[str]] = {}
    for line_id, order_line_id in shipped:
        per_order_line.setdefault(order_line_id, []).extend(numbers.get(line_id, []))
    return [{**ln, "serials": per_order_line[i]} if per_order_line.get(i) else ln
            for ln, i in zip(lines, order_line_ids, strict=True)]


def invoice_context(invoice: Invoice) -> dict[str, Any]:
    """A final invoice (``invoice``) or a deposit invoice (``deposit_invoice``): the final one
    lists what shipped, then the deposit paid deducted (``deposit``); a deposit invoice says
    which share of the order it is and what it is paid before."""
    ctx = _base(invoice.deal, "deposit_invoice" if invoice.is_deposit else "invoice", invoice.number)
    order = invoice.order
    items = [ln for ln in invoice.lines if ln.order_line_id is not None or invoice.is_deposit]
    deducted = [ln for ln in invoice.lines if ln.order_line_id is None and not invoice.is_deposit]
    from sqlalchemy.orm import object_session

    lines = _with_serials(object_session(invoice), _lines(items), [ln.order_line_id for ln in items])
    ctx.update({"title": invoice.title, "order": order.number, "date": invoice.issued_at.date().isoformat(),
                "due_date": invoice.due_date.isoformat(), "lines": lines,
                "totals": invoice.totals.as_dict(), "paid": str(invoice.paid),
                "amount_due": str(invoice.amount_due),
                "order_total": str(order.totals.total),
                "deposit_terms": order.deposit_terms.words() if order.deposit_terms.asked else "",
                "deposit_before": order.deposit_before if order.deposit_terms.asked else ""})
    if deducted:
        deposit = invoice.deal.deposit_invoice
        less = Totals(deducted, invoice.deal.currency)
        ctx["deposit"] = {"number": deposit.number if deposit else "", "lines": _lines(deducted),
                          "amount": str(-less.total), "net": str(-less.net), "tax": str(-less.tax),
                          "date": deposit.issued_at.date().isoformat() if deposit else "",
                          # what shipped, before the deposit comes off: the lines' own totals
                          "goods": Totals(items, invoice.deal.currency).as_dict(),
                          "before": str(Totals(items, invoice.deal.currency).total)}
    return ctx


def invoice_balance(invoice: Invoice, today: date) -> dict[str, Any]:
    """Where an invoice stands today, for the customer's invoice page: the balance (total, paid,
    due, open/overdue/paid/credited) and the payments received; a credited invoice also names
    its credit note and what became of the money paid on it (``credit_note``); every other
    credit note issued against it (a return's) is in ``credit_notes``, their sum in ``credited``."""
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    from .credit_notes import CreditNote

    if invoice.status == InvoiceStatus.CREDITED:
        status = "credited"
    else:
        status = "paid" if invoice.status == InvoiceStatus.PAID else ("overdue" if invoice.is_overdue(today) else "open")
    notes = list(object_session(invoice).scalars(
        select(CreditNote).where(CreditNote.invoice_id == invoice.id).order_by(CreditNote.id)))
    note = notes[0] if status == "credited" and notes else None  # the cancel's
    others = [n for n in notes if n is not note]
    return {
        "balance": {"total": str(invoice.totals.total), "paid": str(invoice.paid),
                    # a credited invoice asks for nothing more
                    "due": "0" if status == "credited" else str(invoice.amount_due),
                    "due_date": invoice.due_date.isoformat(), "status": status,
                    "days_overdue": (today - invoice.due_date).days},
        "payments": [{"number": p.number, "date": p.received.isoformat(), "amount": str(p.amount),
                      "method": p.method.replace("_", " ")} for p in invoice.payments],
        "credit_note": _settled_note(note) if note is not None else None,
        "credit_notes": [_settled_note(n) for n in others],
        "credited": str(sum((n.amount for n in others), ZERO)),
    }


def _settled_note(note: CreditNote) -> dict[str, Any]:
    """A credit note as an invoice's page names it: its number, date, amount and what became of it."""
    return {"number": note.number, "date": note.at.date().isoformat(), "amount": str(note.amount),
            "reason": note.reason, "settlement": note.settlement, "refunded": str(note.refunded),
            "kept_as_credit": str(note.kept_as_credit), "refund_method": note.refund_method.replace("_", " "),
            "refund_number": note.refund_number or ""}


def credit_note_context(note: CreditNote) -> dict[str, Any]:
    from .credit_notes import SETTLEMENT_WORDS

    invoice = note.invoice
    ctx = _base(note.deal, "credit_note", note.number)
    ctx.update({"date": note.at.date().isoformat(), "invoice": invoice.number, "invoice_title": invoice.title,
                "invoice_date": invoice.issued_at.date().isoformat(), "order": invoice.order.number,
                "lines": _lines(invoice.lines), "totals": invoice.totals.as_dict(), "amount": str(note.amount),
                "reason": note.reason, "settlement": note.settlement,
                "settlement_words": SETTLEMENT_WORDS[note.settlement], "refunded": str(note.refunded),
                "kept_as_credit": str(note.kept_as_credit), "refund_method": note.refund_method.replace("_", " "),
                "refund_number": note.refund_number or ""})
    return ctx


def cancellation_context(deal: Deal, note: CreditNote | None) -> dict[str, Any]:
    order = deal.order
    ctx = _base(deal, "cancellation", order.number if order is not None else deal.number)
    sent = [r for r in (deal.estimate.revisions if deal.estimate else []) if r.sent_at is not None]
    ctx.update({"order": order.number if order is not None else "", "reason": deal.lost_reason,
                "estimate": sent[-1].number if sent else "",
                "date": deal.closed_at.date().isoformat() if deal.closed_at else "",
                "credit_note": credit_note_context(note) if note is not None else None})
    return ctx


def credit_declined_context(hold: CreditHold) -> dict[str, Any]:
    deal = hold.deal
    rev = deal.estimate.latest
    ctx = _base(deal, "credit_declined", rev.number)
    ctx.update({"estimate": rev.number, "reason": hold.reason, "total": str(hold.order_total),
                "date": hold.decided_at.date().isoformat() if hold.decided_at else ""})
    return ctx


def payment_context(payment: Payment) -> dict[str, Any]:
    invoice = payment.invoice
    ctx = _base(invoice.deal, "payment", payment.number)
    ctx.update({"invoice": invoice.number, "invoice_title": invoice.title, "amount": str(payment.amount), "method": payment.method,
                "reference": payment.reference, "date": payment.received.isoformat(),
                "invoice_total": str(invoice.totals.total), "paid": str(invoice.paid),
                "amount_due": str(invoice.amount_due), "settled": invoice.status == InvoiceStatus.PAID})
    return ctx




def estimate_reminder_context(rev: EstimateRevision, reminder_no: int, today: date) -> dict[str, Any]:
    """A polite reminder of an estimate the customer has not answered."""
    ctx = _base(rev.estimate.deal, "estimate_reminder", f"{rev.number}-REM{reminder_no}")
    ctx.update({"estimate": rev.number, "reminder_no": reminder_no,
                "sent_on": rev.sent_at.date().isoformat() if rev.sent_at else "",
                "valid_until": rev.valid_until.isoformat(), "days_left": (rev.valid_until - today).days,
                "total": str(rev.totals.total), "prepared_by": rev.prepared_by.name, "date": today.isoformat()})
    return ctx


DUNNING_LEVELS = {1: "Payment reminder", 2: "Second reminder", 3: "Final notice", 4: "Final notice before collection"}


def dunning_context(invoice: Invoice, level: int, today: date) -> dict[str, Any]:
    """A dunning letter: which invoice, how late, how much is still due."""
    ctx = _base(invoice.deal, "dunning", f"{invoice.number}-D{level}")
    ctx.update({"invoice": invoice.number, "invoice_title": invoice.title, "level": level,
                "title": DUNNING_LEVELS.get(level, DUNNING_LEVELS[max(DUNNING_LEVELS)]),
                "invoice_date": invoice.issued_at.date().isoformat(), "due_date": invoice.due_date.isoformat(),
                "days_overdue": (today - invoice.due_date).days, "invoice_total": str(invoice.totals.total),
                "paid": str(invoice.paid), "amount_due": str(invoice.amount_due), "date": today.isoformat()})
    return ctx
