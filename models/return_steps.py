"""A return's steps after it is asked for (``models.returns``): a manager authorizes or refuses it,
delivery receives the goods, QA inspects them (restock once, scrap, repair), finance credits what
came back and stays (``credit_return``), delivery ships the repaired units back (``ship_back``);
and what the customer is told (the RMA, a refusal, the repaired units' delivery note)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit
from .base import utcnow
from .billing import PAYMENT_METHODS
from .credit_notes import CreditNote
from .deposit_terms import SETTLEMENTS
from .errors import DomainError, InvalidTransition, ValidationError
from .money import ZERO, parse_money
from .numbering import next_number
from .returns import OUTCOME_WORDS, OUTCOMES, ReturnLineSerial, ReturnOrder, _on_open_return, _serials_of
from .states import ReturnStatus, SerialStatus
from .stock import receive as stock_receive
from .text import one_line, shown

if TYPE_CHECKING:
    from .returns import ReturnLine
    from .serials import Serial
    from .staff import StaffUser


# --- the steps ---------------------------------------------------------------------------------

def authorize(session: Session, ret: ReturnOrder, by: StaffUser, fee_pct: object, note: str) -> None:
    pct = parse_money(fee_pct if fee_pct not in (None, "") else "0", "restocking_fee_pct")
    if not ZERO <= pct <= 100:
        raise ValidationError("restocking_fee_pct", f"must be between 0 and 100, got {pct}")
    ret.move(ReturnStatus.AUTHORIZED, "authorize")
    ret.restocking_fee_pct = pct
    ret.decided_by = by.handle
    ret.decision_note = note
    audit.record(session, by.handle, "return.authorized", deal_id=ret.deal_id, subject=ret.number,
                 restocking_fee_pct=pct, note=note)


def refuse(session: Session, ret: ReturnOrder, by: StaffUser, reason: str) -> None:
    if not reason.strip():
        raise ValidationError("note", "say why it is refused: the customer reads it")
    ret.move(ReturnStatus.REFUSED, "refuse")
    ret.decided_by = by.handle
    ret.decision_note = reason
    ret.closed_at = utcnow()
    audit.record(session, by.handle, "return.refused", deal_id=ret.deal_id, subject=ret.number, reason=reason)


def receive(session: Session, ret: ReturnOrder, by: StaffUser, lines: list[dict[str, Any]], note: str) -> None:
    """Delivery takes the goods in: per line what arrived (at most what was authorized), with one
    serial per unit of a serialized product, each one shipped to this customer on this deal."""
    from .serials import record_event

    if ret.status != ReturnStatus.AUTHORIZED:
        raise InvalidTransition(f"return {ret.number}", ret.status, "receive")
    by_sku = {ln.sku: ln for ln in ret.lines}
    seen: set[str] = set()
    taken: set[int] = set()
    got: dict[str, tuple[int, list[Serial]]] = {}
    for i, item in enumerate(lines or [], start=1):
        where = f"lines[{i}]"
        sku = str(item.get("sku", "")).strip().upper()
        line = by_sku.get(sku) or next((ln for s, ln in by_sku.items() if s.upper() == sku), None)
        if line is None:
            raise ValidationError(f"{where}.sku", f"{shown(item.get('sku'))} is not on return {ret.number} "
                                                  f"(it has {', '.join(by_sku)})")
        if line.sku in seen:
            raise ValidationError(f"{where}.sku", f"{line.sku} is named twice")
        seen.add(line.sku)
        from .typed import whole_number

        qty = whole_number(item.get("quantity"), f"{where}.quantity", limit=1_000_000)
        if not 0 <= qty <= line.quantity:
            raise ValidationError(f"{where}.quantity", f"between 0 and {line.quantity} (authorized), got {qty}")
        texts = [str(s).strip() for s in (item.get("serials") or []) if str(s).strip()]
        if line.order_line.product.serialized:
            if len(texts) != qty:
                raise ValidationError(f"{where}.serials", f"{line.sku} has serial numbers: one per unit received "
                                                          f"({qty} units, {len(texts)} serials)")
        elif texts:
            raise ValidationError(f"{where}.serials", f"{line.sku} has no serial numbers")
        _only_named(ret, line, texts, f"{where}.serials")
        serials = _serials_of(session, ret.deal, line.order_line, texts, f"{where}.serials", ret.customer_id, taken)
        for serial in serials:
            if (other := _on_open_return(session, serial, ret)) is not None:
                raise ValidationError(f"{where}.serials", f"{serial.serial} is already on return {other}")
        got[line.sku] = (qty, serials)
    if not any(qty for qty, _ in got.values()):
        raise ValidationError("lines", "nothing received: say what arrived (a line per SKU)")
    for line in ret.lines:
        qty, serials = got.get(line.sku, (0, []))
        line.received_qty = qty
        named = {rs.serial_id: rs for rs in line.serials}
        for serial in serials:
            rs = named.pop(serial.id, None)
            if rs is None:
                rs = ReturnLineSerial(serial=serial)
                line.serials.append(rs)
            rs.received = True
            serial.move(SerialStatus.RETURNED)
            record_event(session, serial, "return_received", ret.number, by.handle, deal=ret.deal)
        for rs in named.values():  # named when asked for, not among what arrived
            line.serials.remove(rs)
            session.delete(rs)
    ret.move(ReturnStatus.RECEIVED, "receive")
    ret.received_at = utcnow()
    audit.record(session, by.handle, "return.received", deal_id=ret.deal_id, subject=ret.number, note=note,
                 lines=[{"sku": ln.sku, "received": ln.received_qty, "serials": ln.serial_numbers} for ln in ret.lines])


def _only_named(ret: ReturnOrder, line: ReturnLine, texts: list[str], field: str) -> None:
    """A return that named its units takes back those only (its RMA told the customer so); one
    that named none takes any unit shipped to this customer on this deal (``_serials_of``)."""
    named = line.serial_numbers
    if not named:
        return
    allowed = {n.upper() for n in named}
    for typed in texts:
        text = one_line(typed, field, 60, required=True)
        sku, _, number = text.rpartition(":")
        if number.strip().upper() not in allowed or (sku.strip() and sku.strip().upper() != line.sku.upper()):
            raise ValidationError(field, f"{text} is not on {ret.number} (it names {', '.join(named)})")


def inspect(session: Session, ret: ReturnOrder, by: StaffUser, rows: list[dict[str, Any]], note: str) -> dict[str, int]:
    """QA decides for each unit received: restock (back into stock, once: the move's key names the
    return's line), scrap or repair. ``rows``: {sku, serial, quantity, outcome}; a serialized
    line's units one row per serial. Every unit received gets exactly one outcome."""
    from .serials import record_event

    if ret.status != ReturnStatus.RECEIVED:
        raise InvalidTransition(f"return {ret.number}", ret.status, "inspect")
    counts = {ln.sku: dict.fromkeys(OUTCOMES, 0) for ln in ret.lines}
    by_serial: dict[int, str] = {}
    for i, row in enumerate(rows or [], start=1):
        where = f"lines[{i}]"
        sku = str(row.get("sku", "")).strip()
        line = next((ln for ln in ret.lines if ln.sku.upper() == sku.upper()), None)
        if line is None or not line.received_qty:
            raise ValidationError(f"{where}.sku", f"{shown(sku)} did not come back on {ret.number}")
        outcome = OUTCOME_WORDS.get(str(row.get("outcome", "")).strip(), str(row.get("outcome", "")).strip())
        if outcome not in OUTCOMES:
            raise ValidationError(f"{where}.outcome", f"must be restock, scrap or repair, got {shown(outcome)}")
        from .typed import whole_number

        qty = whole_number(row.get("quantity", 1), f"{where}.quantity", limit=1_000_000)
        if qty < 1:
            raise ValidationError(f"{where}.quantity", "must be at least 1")
        serial_text = str(row.get("serial") or "").strip()
        received = {rs.serial.serial: rs for rs in line.serials if rs.received}
        if received:
            if serial_text not in received:
                raise ValidationError(f"{where}.serial", f"{line.sku}: name one of the serials received "
                                                         f"({', '.join(received)}), got {shown(serial_text)}")
            if qty != 1:
                raise ValidationError(f"{where}.quantity", "a serial number is one unit")
            rs = received[serial_text]
            if rs.serial_id in by_serial:
                raise ValidationError(f"{where}.serial", f"{serial_text} is named twice")
            by_serial[rs.serial_id] = outcome
        elif serial_text:
            raise ValidationError(f"{where}.serial", f"{line.sku} has no serial numbers on this return")
        counts[line.sku][outcome] += qty
    for line in ret.lines:
        decided = sum(counts[line.sku].values())
        if decided != line.received_qty:
            raise ValidationError("lines", f"{line.sku}: {line.received_qty} received, {decided} inspected; every "
                                           f"unit received gets one outcome")
    for line in ret.lines:
        c = counts[line.sku]
        line.restock_qty, line.scrap_qty, line.repair_qty = c["restock"], c["scrap"], c["repair"]
        line.inspection_note = note
        if line.restock_qty:
            stock_receive(session, line.order_line.product, line.restock_qty, reason="return",
                          source_key=f"return:{ret.number}:{line.line_no}", reference=ret.number, by=by.handle)
        for rs in line.serials:
            if rs.received:
                rs.outcome = by_serial[rs.serial_id]
                status = {"restock": SerialStatus.IN_STOCK, "scrap": SerialStatus.SCRAPPED,
                          "repair": SerialStatus.IN_REPAIR}[rs.outcome]
                rs.serial.move(status)
                if status == "in_stock":
                    rs.serial.customer_id = rs.serial.deal_id = rs.serial.shipment_line_id = None
                record_event(session, rs.serial, {"restock": "restocked", "scrap": "scrapped",
                                                  "repair": "in_repair"}[rs.outcome], ret.number, by.handle,
                             deal=ret.deal)
    ret.move(ReturnStatus.INSPECTED, "inspect")
    ret.inspected_at = utcnow()
    totals = {o: sum(counts[s][o] for s in counts) for o in OUTCOMES}
    audit.record(session, by.handle, "return.inspected", deal_id=ret.deal_id, subject=ret.number, note=note,
                 **totals)
    return totals


def ship_back(session: Session, ret: ReturnOrder, by: StaffUser, carrier: object, tracking: object,
              shipped_on: date | None, note: str = "") -> None:
    """Delivery ships the units QA sent to repair back to the customer, all at once: each serial is
    the customer's again (shipped, its warranty as it was), the lines say how many went back, and
    the customer gets the delivery note (``documents/shipment.html``, numbered ``RMA-0001-BACK``).
    Once: a second call after they shipped back changes nothing."""
    from .return_documents import ship_back_context
    from .sending import issue_document
    from .serials import record_event

    # the return's row locked and read again: two answers at the same moment ship the units once
    session.scalars(select(ReturnOrder).where(ReturnOrder.id == ret.id).with_for_update()
                    .execution_options(populate_existing=True)).one()
    if ret.shipped_back_on is not None:
        return
    if ret.status != ReturnStatus.INSPECTED or not ret.to_ship_back:
        raise InvalidTransition(f"return {ret.number}", ret.status if ret.status != ReturnStatus.INSPECTED else
                                "inspected, none in repair", "ship back")
    carrier_text = one_line(carrier, "carrier", 80, required=True)
    tracking_text = one_line(tracking, "tracking_number", 80, required=True)
    today = utcnow().date()
    day = shipped_on or today
    if day > today:
        raise ValidationError("shipped_on", f"is in the future ({day}; today is {today})")
    if ret.inspected_at is not None and day < ret.inspected_at.date():
        raise ValidationError("shipped_on", f"is before {ret.number} was inspected ({ret.inspected_at.date()})")
    for line, serials in ret.in_repair():
        line.shipped_back_qty = line.repair_qty
        for serial in serials:
            serial.move(SerialStatus.SHIPPED, "ship back")  # its customer, deal and warranty are kept
            record_event(session, serial, "shipped_back", ret.number, by.handle, deal=ret.deal)
    ret.back_carrier, ret.back_tracking_number = carrier_text, tracking_text
    ret.shipped_back_on, ret.shipped_back_by = day, by.handle
    number = f"{ret.number}-BACK"
    issue_document(session, ret.deal, "shipment", number, ship_back_context(ret, number),
                   f"Repaired and on its way back: {ret.number} ({carrier_text} {tracking_text})",
                   event="return.shipped_back", by=by.handle, note=note, carrier=carrier_text,
                   tracking_number=tracking_text, shipped_on=day.isoformat(),
                   lines=[{"sku": ln.sku, "quantity": ln.shipped_back_qty, "serials": [u.serial for u in units]}
                          for ln, units in ret.in_repair()])


def close(session: Session, ret: ReturnOrder) -> None:
    if ret.status == ReturnStatus.CLOSED:
        return
    if ret.to_ship_back:
        raise DomainError(f"return {ret.number}: {ret.to_ship_back} repaired unit(s) to ship back to the customer "
                          f"first")
    ret.move(ReturnStatus.CLOSED, "close")
    ret.closed_at = utcnow()
    audit.record(session, "system", "return.closed", deal_id=ret.deal_id, subject=ret.number)


def outcome_words(ret: ReturnOrder) -> str:
    parts = []
    for ln in ret.lines:
        bits = [f"{n} {w}" for n, w in ((ln.restock_qty, "restocked"), (ln.scrap_qty, "scrapped"),
                                        (ln.repair_qty, "to repair")) if n]
        bits += [f"{ln.shipped_back_qty} shipped back"] if ln.shipped_back_qty else []
        parts.append(f"{ln.sku}: {', '.join(bits) or 'nothing received'}")
    return "; ".join(parts)


def credit_return(session: Session, ret: ReturnOrder, settlement: str, method: str, by: StaffUser) -> CreditNote:
    """Credit what came back on ``ret`` and stays with us against the deal's invoice: the goods
    received and restocked or scrapped, as they were sold (tax included), less the restocking fee
    (a unit repaired goes back to its customer: ``ship_back``, never credited); refunded (at most
    what was paid on the invoice, less earlier refunds of it) or kept as credit. Once per return;
    the note is emailed with its portal link. The return closes unless repaired units are still
    to ship back."""
    from .portal import credit_note_link
    from .return_documents import return_credit_note_context
    from .sending import issue_document

    if ret.credit_note is not None:
        return ret.credit_note
    if not ret.with_credit:
        raise ValidationError("settle", f"{ret.number} is a warranty return: nothing is credited")
    if ret.status != ReturnStatus.INSPECTED:
        raise ValidationError("settle", f"{ret.number} is {ret.status}: it is credited once received and inspected")
    if settlement not in SETTLEMENTS:
        raise ValidationError("settle", f"must be {' or '.join(SETTLEMENTS)}")
    refund_methods = [m for m in PAYMENT_METHODS if m != "account_credit"]
    if method not in refund_methods:
        raise ValidationError("method", f"must be one of {', '.join(refund_methods)}")
    invoice = ret.deal.invoice
    currency = ret.deal.currency
    amount = ret.credited_value - ret.restocking_fee
    if amount <= ZERO:
        raise ValidationError("settle", f"nothing to credit on {ret.number}: the goods kept (restocked or scrapped) "
                                        f"are worth {ret.credited_value} {currency} and the fee is {ret.restocking_fee}")
    if settlement == "refund":
        refunded = session.scalar(select(func.coalesce(func.sum(CreditNote.refunded), 0))
                                  .where(CreditNote.invoice_id == invoice.id)) or ZERO
        can = invoice.paid - Decimal(refunded)
        if amount > can:
            raise ValidationError("settle", f"{invoice.number} has {can} {currency} paid that is not refunded yet; "
                                            f"{amount} cannot be refunded: keep it as credit on the customer's account")
    lines = []
    for ln in ret.lines:
        if ln.kept_qty:
            ol = ln.order_line
            net, tax = ol.net_for(ln.kept_qty), ol.tax_for(ln.kept_qty)
            lines.append({"line_no": ln.line_no, "sku": ln.sku, "description": ol.description,
                          "quantity": ln.kept_qty, "unit_price": str(ol.unit_price),
                          "discount_pct": str(ol.discount_pct), "tax_rate": str(ol.tax_rate),
                          "net": str(net), "tax": str(tax), "total": str(net + tax),
                          "serials": [rs.serial.serial for rs in ln.serials if rs.received and rs.outcome != "repair"]})
    note = CreditNote(number=next_number(session, "credit_note"), deal=ret.deal, customer=ret.deal.customer,
                      invoice=invoice, amount=amount, settlement=settlement, return_id=ret.id,
                      restocking_fee=ret.restocking_fee, lines=lines,
                      refunded=amount if settlement == "refund" else ZERO,
                      kept_as_credit=amount if settlement == "credit" else ZERO,
                      refund_method=method if settlement == "refund" else "",
                      reason=f"Goods returned under {ret.number}: {ret.reason}", issued_by=by)
    if note.refunded > ZERO:
        note.refund_number = next_number(session, "refund")
    session.add(note)
    session.flush()
    session.expire(ret, ["credit_note"])
    session.expire(ret.deal, ["credit_notes"])
    issue_document(session, ret.deal, "credit_note", note.number, return_credit_note_context(note),
                   f"Credit note {note.number} for your return {ret.number}", link=lambda to: credit_note_link(note, to),
                   event="credit_note.issued", by=by.handle, amount=note.amount, settlement=settlement)
    if not ret.to_ship_back:
        close(session, ret)
    return note


# --- what the customer is told ------------------------------------------------------------------

def send_rma(session: Session, ret: ReturnOrder) -> None:
    """The RMA document, emailed to the customer once (its dedupe key names the return)."""
    from .return_documents import rma_context
    from .sending import issue_document

    issue_document(session, ret.deal, "rma", ret.number, rma_context(ret),
                   f"Return authorized: {ret.number} for order {ret.deal.order.number}", event="return.rma_sent",
                   lines=len(ret.lines))


def refusal_mail(session: Session, ret: ReturnOrder) -> None:
    """One email to the customer with the manager's reason (no document: nothing was authorized)."""
    from .outbox import queue_email
    from .return_documents import return_refused_context

    ctx = return_refused_context(ret)
    queue_email(session, deal_id=ret.deal_id, dedupe_key=f"return_refused:{ret.number}", kind="return_refused",
                to_addr=ctx["customer"]["email"], subject=f"Your return request {ret.number} for order "
                                                          f"{ret.deal.order.number}",
                template="emails/return_refused", context=ctx)
