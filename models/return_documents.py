"""The context of each document of a return (plain data for the templates, as ``documents``):
the RMA, the refusal's email, the delivery note of repaired units going back, and the return's
credit note."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .base import utcnow
from .documents import _base
from .money import ZERO

if TYPE_CHECKING:
    from .credit_notes import CreditNote
    from .returns import ReturnOrder


def _return_lines(ret: ReturnOrder, received: bool) -> list[dict[str, Any]]:
    """A return's lines: what may come back (each with the serials named), or what was received."""
    return [{"line_no": ln.line_no, "sku": ln.sku, "description": ln.order_line.description,
             "quantity": ln.received_qty if received else ln.quantity,
             "serials": [rs.serial.serial for rs in ln.serials if rs.received or not received]}
            for ln in ret.lines if ln.received_qty or not received]


RMA_DAYS = 30  # the goods are to be sent back within this many days of the RMA


def rma_context(ret: ReturnOrder) -> dict[str, Any]:
    """The RMA: what may come back under its number, and how to send it (by ``return_by``)."""
    from datetime import timedelta

    ctx = _base(ret.deal, "rma", ret.number)
    seller = ctx["seller"] or {}
    day = (ret.requested_at if ret.decided_by is None else utcnow()).date()
    ctx.update({"date": day.isoformat(), "return_days": RMA_DAYS,
                "return_by": (day + timedelta(days=RMA_DAYS)).isoformat(),
                "order": ret.deal.order.number, "reason": _once(ret, ret.reason), "lines": _return_lines(ret, False),
                "restocking_fee_pct": format(ret.restocking_fee_pct.normalize(), "f"),
                "with_credit": ret.with_credit, "note": _once(ret, ret.decision_note),
                "return_address": seller.get("address", "") if isinstance(seller, dict) else "",
                "claim": ret.claim.number if ret.claim is not None else ""})
    return ctx


def _once(ret: ReturnOrder, text: str) -> str:
    """A claim's return names its claim once (``claim``: "under warranty claim WC-0001"): its reason
    and the engineer's note are stored as "Warranty claim WC-0001: …" (``models.warranty``), and
    the RMA shows what follows."""
    said = f"Warranty claim {ret.claim.number}: " if ret.claim is not None else ""
    return text[len(said):] if said and (text or "").startswith(said) else text


def ship_back_context(ret: ReturnOrder, number: str) -> dict[str, Any]:
    """The delivery note of a return's repaired units going back (``documents/shipment.html``,
    ``repaired_under`` the return), each unit with its serial and warranty end (as it was)."""
    ctx = _base(ret.deal, "shipment", number)
    ctx.update({"order": ret.deal.order.number, "repaired_under": ret.number, "date": str(ret.shipped_back_on),
                "claim": ret.claim.number if ret.claim is not None else "", "carrier": ret.back_carrier,
                "tracking_number": ret.back_tracking_number,
                "lines": [{"sku": ln.sku, "description": ln.order_line.description,
                           "quantity": ln.shipped_back_qty, "serials": [u.serial for u in units],
                           "warranty_ends": [str(u.warranty_end or "") for u in units]}
                          for ln, units in ret.in_repair()]})
    return ctx


def return_refused_context(ret: ReturnOrder) -> dict[str, Any]:
    """A refused return's email: what was asked back, and the manager's reason (``refusal``)."""
    ctx = _base(ret.deal, "return_refused", ret.number)
    ctx.update({"order": ret.deal.order.number, "reason": ret.reason, "refusal": ret.decision_note,
                "lines": _return_lines(ret, False)})
    return ctx


def return_credit_note_context(note: CreditNote) -> dict[str, Any]:
    """A return's credit note as a VAT auditor reads it (``return``): the goods received as they
    were invoiced (its lines with the serials received, each line's net and tax), the restocking
    fee as negative lines, net, one per tax rate (``fee_lines``), then the net, the tax and the
    total credited (``credited_net``, ``credited_tax``; the total is ``amount``, what is stored).
    ``goods`` and ``restocking_fee`` are tax included, as the emails say them. ``lines`` and
    ``totals`` are a cancel's (the invoice reversed), empty here."""
    from .credit_notes import SETTLEMENT_WORDS, restocking_fee_lines

    invoice = note.invoice
    currency = note.deal.currency
    ctx = _base(note.deal, "credit_note", note.number)
    lines = note.lines or []
    net = sum((Decimal(ln["net"]) for ln in lines), ZERO)
    tax = sum((Decimal(ln["tax"]) for ln in lines), ZERO)
    pct = note.ret.restocking_fee_pct if note.ret else ZERO
    fees = restocking_fee_lines([(Decimal(ln["net"]), Decimal(ln["tax_rate"])) for ln in lines], pct, currency)
    fee_net, fee_tax = sum((f.net for f in fees), ZERO), sum((f.tax for f in fees), ZERO)
    ctx.update({"date": note.at.date().isoformat(), "invoice": invoice.number, "invoice_title": invoice.title,
                "invoice_date": invoice.issued_at.date().isoformat(), "order": invoice.order.number,
                "return": {"number": note.ret.number if note.ret else "", "lines": lines,
                           "reason": note.ret.reason if note.ret else "",
                           "net": str(net), "tax": str(tax), "goods": str(net + tax),
                           "restocking_fee": str(note.restocking_fee),
                           "restocking_fee_pct": format(pct.normalize(), "f"),
                           "fee_lines": [{"tax_rate": str(f.tax_rate), "net": str(f.net), "tax": str(f.tax),
                                          "total": str(f.total)} for f in fees],
                           "fee_net": str(fee_net), "fee_tax": str(fee_tax),
                           "credited_net": str(net - fee_net), "credited_tax": str(tax - fee_tax)},
                "lines": [], "totals": None, "amount": str(note.amount),
                "reason": note.reason, "settlement": note.settlement,
                "settlement_words": SETTLEMENT_WORDS[note.settlement], "refunded": str(note.refunded),
                "kept_as_credit": str(note.kept_as_credit), "refund_method": note.refund_method.replace("_", " "),
                "refund_number": note.refund_number or ""})
    return ctx
