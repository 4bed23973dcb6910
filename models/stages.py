"""The automatic steps of a deal: each looks up before it creates (one order per approved
revision, one receipt per pick release, one invoice per order), so running it twice changes
nothing, and each issues its document to the customer once (``models.sending``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from . import audit, portal
from .billing import Invoice, InvoiceLine, add_invoice
from .clock import utcnow
from .credit import hold_of
from .crm import STAGES, Contact, Customer, Opportunity, StageChange
from .customers import customer_of_lead
from .deal import Deal
from .deposits import DepositTerms, deduction_lines, make_deposit_lines, terms_for
from .documents import estimate_context, invoice_context, order_context, receipt_context
from .errors import InvalidTransition
from .numbering import next_number
from .orders import SalesOrder, SalesOrderLine, SalesReceipt
from .outbox import queue_email
from .sending import SYSTEM, issue_document
from .staff import StaffUser
from .states import HoldStatus, OrderStatus, RevisionStatus

PAYMENT_TERMS_DAYS = 30
DEPOSIT_DUE_DAYS = 7  # a deposit invoice is due a week after the order is confirmed


def _today():
    return utcnow().date()


def convert_lead(session: Session, deal: Deal) -> str:
    """The qualified lead becomes an opportunity of a customer: the known customer with the lead's
    e-mail and company name (imported, or from an earlier deal; the lead's contact is added to it),
    else a new one with the company's currency and payment terms. The deal is in the customer's
    currency."""
    from .company import the_company

    company = the_company(session)
    default_currency = company.currency
    lead = deal.lead
    if deal.opportunity is not None:
        return "already converted"
    customer = customer_of_lead(session, lead.email, lead.company)
    known = customer is not None
    if known and not any(c.email.lower() == lead.email.lower() for c in customer.contacts):
        customer.contacts.append(Contact(name=lead.contact_name, email=lead.email, phone=lead.phone,
                                         is_primary=not customer.contacts))
    if customer is None:
        customer = Customer(name=lead.company, email=lead.email, phone=lead.phone, currency=default_currency,
                            payment_terms_days=company.payment_terms_days, billing_address=lead.address, shipping_address=lead.address)
        customer.contacts.append(Contact(name=lead.contact_name, email=lead.email, phone=lead.phone,
                                         is_primary=True))
        session.add(customer)
    deal.currency = customer.currency or default_currency
    lead.mark_converted(customer)
    opp = Opportunity(lead=lead, customer=customer, name=f"{lead.company}: {lead.timeline or 'machinery'}"[:200],
                      stage="qualification", probability=STAGES["qualification"],
                      expected_amount=lead.budget, owner_id=lead.owner_id)
    opp.history.append(StageChange(from_stage=None, to_stage=opp.stage, by=lead.owner))
    session.add(opp)
    deal.customer = customer
    deal.opportunity = opp
    session.flush()
    audit.record(session, SYSTEM, "lead.converted", deal_id=deal.id, subject=deal.number,
                 customer=customer.id, opportunity=opp.id, known_customer=known, currency=deal.currency)
    return (f"lead converted: {'known ' if known else ''}customer {customer.name} ({deal.currency}), "
            f"opportunity {opp.id}")


def send_estimate(session: Session, deal: Deal) -> str:
    rev = deal.estimate.latest
    if rev.status != RevisionStatus.DRAFT:
        return f"{rev.number} already sent"
    rev.send(session)
    offered = terms_for(session, deal.customer)  # the deposit it offers, kept with it: accepting it asks for this
    rev.deposit_pct, rev.deposit_before = offered.pct, offered.before
    deal.opportunity.expected_amount = rev.totals.total  # what the customer was quoted, not the budget
    if deal.opportunity.stage in ("prospecting", "qualification", "needs_analysis"):
        deal.opportunity.move_to("proposal", rev.prepared_by)
    issue_document(session, deal, "estimate", rev.number, estimate_context(rev),
                   f"Estimate {rev.number} for {deal.customer_name}", link=lambda to: portal.estimate_link(rev, to),
                   event="estimate.sent", total=rev.totals.total)
    return f"{rev.number} sent, total {rev.totals.total} {deal.currency}"


def create_order(session: Session, deal: Deal) -> str:
    rev = deal.estimate.latest
    if deal.order is not None:
        return f"{deal.order.number} already exists"
    if rev.status != RevisionStatus.APPROVED:
        raise InvalidTransition(f"estimate {rev.number}", rev.status, "convert to an order")
    hold = hold_of(session, rev)
    if hold is not None and hold.status not in (HoldStatus.RELEASED, HoldStatus.DEPOSIT):
        raise InvalidTransition(f"estimate {rev.number}", f"on credit hold ({hold.status})", "convert to an order")
    terms = (DepositTerms(rev.deposit_pct, rev.deposit_before or "shipping") if rev.deposit_pct is not None
             else terms_for(session, deal.customer))  # the terms the accepted estimate stated
    if hold is not None and hold.deposit_pct:  # credit control asked for one: the stricter of it and the terms'
        asked = [t for t in (terms, DepositTerms(hold.deposit_pct, hold.deposit_before or "shipping")) if t.asked]
        terms = DepositTerms(max(t.pct for t in asked),
                             "release" if any(t.before == "release" for t in asked) else "shipping")
    order = SalesOrder(number=next_number(session, "order"), deal=deal, estimate_revision=rev,
                       created_by=rev.prepared_by.handle, customer_po=rev.customer_po or "",
                       deposit_pct=terms.pct, deposit_before=terms.before)
    session.add(order)
    for ln in rev.lines:
        order.lines.append(SalesOrderLine(line_no=ln.line_no, product_id=ln.product_id, sku=ln.sku,
                                          description=ln.description, quantity=ln.quantity,
                                          unit_price=ln.unit_price, discount_pct=ln.discount_pct,
                                          tax_rate=ln.tax_rate))
    session.flush()
    order.qa_checks = order.qa_checklist  # fixed now: editing a product later does not change this order's QA
    issue_document(session, deal, "order", order.number, order_context(order),
                   f"Order confirmation {order.number} (from estimate {rev.number})",
                   event="order.created", estimate=rev.number)
    if release_if_nothing_to_check(session, order, rev.prepared_by):
        return (f"{order.number} created from {rev.number}, total {order.totals.total} {deal.currency}; "
                "no QA needed: released")
    return f"{order.number} created from {rev.number}, total {order.totals.total} {deal.currency}"


def release_if_nothing_to_check(session: Session, order: SalesOrder, by: StaffUser) -> bool:
    """An order of accessories and spare parts only has nothing for QA to check: it is released
    when it is made, or, with a deposit before release, when the deposit is paid."""
    if order.needs_qa or order.status != OrderStatus.AWAITING_QA:
        return False
    if order.deposit_terms.asked and order.deposit_before == "release" and order.deposit_unpaid():
        return False
    order.release_for_picking(by)
    audit.record(session, SYSTEM, "order.released", deal_id=order.deal_id, subject=order.number,
                 why="no product on it needs QA")
    return True


def create_deposit_invoice(session: Session, deal: Deal) -> str:
    """The deposit invoice of the order's deposit terms (DEP series), with its portal link."""
    order = deal.order
    if deal.deposit_invoice is not None:
        return f"{deal.deposit_invoice.number} already exists"
    if not order.deposit_terms.asked or order.status == OrderStatus.CANCELLED:
        return f"{order.number} asks for no deposit"
    lines = make_deposit_lines(order)
    if not lines:  # the share comes to nothing (an order of nothing, a share below the minor unit)
        order.deposit_pct = Decimal(0)
        release_if_nothing_to_check(session, order, order.estimate_revision.prepared_by)
        return f"{order.number}: its deposit comes to nothing; none is asked"
    invoice = Invoice(number=next_number(session, "deposit"), order=order, deal=deal, kind="deposit",
                      due_date=_today() + timedelta(days=DEPOSIT_DUE_DAYS), lines=lines)
    add_invoice(session, invoice)
    invoice.settle_if_nothing_due()
    issue_document(session, deal, "deposit_invoice", invoice.number, invoice_context(invoice),
                   f"Deposit invoice {invoice.number} for order {order.number}, due {invoice.due_date}",
                   link=lambda to: portal.invoice_link(invoice, to), event="deposit_invoice.created",
                   total=invoice.totals.total, order=order.number, terms=order.deposit_terms.words())
    return (f"{invoice.number} issued: {order.deposit_terms.words()}, {invoice.totals.total} {deal.currency} "
            f"due {invoice.due_date}")


def create_receipt(session: Session, deal: Deal, finance_email: str) -> str:
    order = deal.order
    release = order.pick_release
    if release.receipt is not None:
        return f"{release.receipt.number} already exists"
    receipt = SalesReceipt(number=next_number(session, "receipt"), pick_release=release,
                           amount=order.totals.total)
    session.add(receipt)
    session.flush()
    doc = issue_document(session, deal, "receipt", receipt.number, receipt_context(receipt),
                         f"Sales receipt {receipt.number} for order {order.number}")
    queue_email(session, deal_id=deal.id, dedupe_key=f"finance-qa-passed:{order.number}", kind="finance_notice",
                to_addr=finance_email, subject=(f"QA passed: {order.number} released, receipt {receipt.number}"
                                                  if order.needs_qa else
                                                  f"Released (no QA needed): {order.number}, receipt {receipt.number}"),
                template="emails/finance_notice", context=doc.context, document=doc)
    audit.record(session, SYSTEM, "receipt.created", deal_id=deal.id, subject=receipt.number,
                 order=order.number, amount=receipt.amount)
    return f"{receipt.number} created on pick release of {order.number}; finance informed"


def create_invoice(session: Session, deal: Deal) -> str:
    order = deal.order
    if deal.invoice is not None:
        return f"{deal.invoice.number} already exists"
    invoice = Invoice(number=next_number(session, "invoice"), order=order, deal=deal,
                      due_date=_today() + timedelta(days=deal.customer.payment_terms_days
                                                    if deal.customer is not None else PAYMENT_TERMS_DAYS))
    for ln in order.lines:
        invoice.lines.append(InvoiceLine(line_no=ln.line_no, order_line_id=ln.id, sku=ln.sku,
                                         description=ln.description, quantity=ln.shipped_qty,
                                         unit_price=ln.unit_price, discount_pct=ln.discount_pct,
                                         tax_rate=ln.tax_rate))
        ln.invoiced_qty = ln.shipped_qty
    # the deposit paid, deducted: the invoice is the order less the deposit
    invoice.lines += deduction_lines(deal.deposit_invoice, len(order.lines) + 1)
    add_invoice(session, invoice)
    invoice.settle_if_nothing_due()  # all lines at 100 % discount: nothing to wait for
    issue_document(session, deal, "invoice", invoice.number, invoice_context(invoice),
                   f"Invoice {invoice.number} for order {order.number}, due {invoice.due_date}",
                   link=lambda to: portal.invoice_link(invoice, to), event="invoice.created",
                   total=invoice.totals.total)
    return f"{invoice.number} issued, {invoice.totals.total} {deal.currency} due {invoice.due_date}"


def close_deal(session: Session, deal: Deal) -> str:
    if not deal.is_open:
        return f"{deal.number} already {deal.status}"
    deal.close_won()
    audit.record(session, SYSTEM, "deal.won", deal_id=deal.id, subject=deal.number,
                 total=deal.invoice.totals.total)
    return f"{deal.number} won"
