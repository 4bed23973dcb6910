"""Credit notes: an invoice reversed (a cancelled order's deposit invoice), or what came back on a
return credited against the deal's invoice (less its restocking fee), numbered in their own
gap-free series (CN-0001), with what was paid on it refunded to the customer (recorded as a
refund payment, numbered in its own series, RFD-0001) or kept as credit on the customer's account."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, utcnow
from .billing import PAYMENT_METHODS, Invoice
from .deposit_terms import SETTLEMENTS
from .errors import ValidationError
from .money import ZERO, round_money
from .numbering import next_number
from .states import InvoiceStatus

if TYPE_CHECKING:
    from .crm import Customer
    from .deal import Deal
    from .returns import ReturnOrder
    from .staff import StaffUser

SETTLEMENT_WORDS = {"refund": "refunded to the customer", "credit": "kept as credit on the customer's account",
                    "none": "nothing was paid"}


class FeeLine(NamedTuple):
    """The restocking fee on the goods credited at one tax rate: its net and its tax, each rounded."""
    tax_rate: Decimal
    net: Decimal
    tax: Decimal

    @property
    def total(self) -> Decimal:
        return self.net + self.tax


def restocking_fee_lines(goods: Iterable[tuple[Decimal, Decimal]], pct: Decimal, currency: str) -> list[FeeLine]:
    """The restocking fee kept on goods credited (``goods``: each line's net and tax rate), as a VAT
    credit note states it: per tax rate, ``pct`` % of the goods' net at that rate, rounded, and the
    tax on that at the rate, rounded. The fee is their sum: a line per rate, rounded, then summed."""
    nets: dict[Decimal, Decimal] = {}
    for net, rate in goods:
        nets[rate] = nets.get(rate, ZERO) + net
    fees = []
    for rate, net in sorted(nets.items()):
        fee_net = round_money(net * pct / 100, currency)
        if fee_net:
            fees.append(FeeLine(rate, fee_net, round_money(fee_net * rate / 100, currency)))
    return fees


class CreditNote(Base):
    __tablename__ = "credit_notes"
    __table_args__ = (CheckConstraint("settlement in ('refund','credit','none')", name="settlement"),
                      CheckConstraint("amount > 0", name="amount_positive"),
                      CheckConstraint("refunded >= 0 and kept_as_credit >= 0", name="settled_not_negative"))

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    # the invoice it reverses, or a return's credit is against (an invoice is reversed once: its status)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal]  # the invoice's total reversed, or what came back less the restocking fee
    return_id: Mapped[int | None] = mapped_column(ForeignKey("returns.id"), unique=True)  # one per return
    restocking_fee: Mapped[Decimal] = mapped_column(default=ZERO)
    lines: Mapped[list[Any] | None] = mapped_column(default=None)  # a return's: what came back, as credited
    settlement: Mapped[str] = mapped_column(String(10))
    refunded: Mapped[Decimal] = mapped_column(default=ZERO)  # paid back (a refund payment)
    kept_as_credit: Mapped[Decimal] = mapped_column(default=ZERO)
    refund_method: Mapped[str] = mapped_column(String(20), default="")
    # the refund payment, numbered in its own gap-free series (RFD-0001); None: nothing refunded
    refund_number: Mapped[str | None] = mapped_column(String(20), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    issued_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    deal: Mapped[Deal] = relationship()
    customer: Mapped[Customer] = relationship()
    invoice: Mapped[Invoice] = relationship()
    issued_by: Mapped[StaffUser] = relationship()
    ret: Mapped[ReturnOrder | None] = relationship()

    @property
    def is_return(self) -> bool:
        return self.return_id is not None


def credit_invoice(session: Session, invoice: Invoice, settlement: str, reason: str, by: StaffUser,
                   method: str = "bank_transfer") -> CreditNote:
    """Reverse ``invoice`` by a credit note: what was paid on it is refunded or kept as credit.
    Once per invoice (its status is then credited)."""
    if settlement not in SETTLEMENTS:
        raise ValidationError("settle", f"must be {' or '.join(SETTLEMENTS)} (what becomes of the deposit paid)")
    refund_methods = [m for m in PAYMENT_METHODS if m != "account_credit"]  # money paid back, not a credit
    if method not in refund_methods:
        raise ValidationError("method", f"must be one of {', '.join(refund_methods)}")
    paid = invoice.paid
    invoice.status = InvoiceStatus.move(f"invoice {invoice.number}", invoice.status, InvoiceStatus.CREDITED,
                                        "credit it")
    note = CreditNote(number=next_number(session, "credit_note"), deal=invoice.deal, customer=invoice.deal.customer,
                      invoice=invoice, amount=invoice.totals.total, settlement=settlement if paid > ZERO else "none",
                      refunded=paid if settlement == "refund" else ZERO,
                      kept_as_credit=paid if settlement == "credit" else ZERO,
                      refund_method=method if settlement == "refund" and paid > ZERO else "", reason=reason,
                      issued_by=by)
    if note.refunded > ZERO:  # recorded as a refund payment of its own number
        note.refund_number = next_number(session, "refund")
    session.add(note)
    session.flush()
    session.expire(invoice.deal, ["credit_notes"])
    return note


def credit_balance(session: Session, customer: Customer, currency: str) -> Decimal:
    """What the customer has on account in ``currency``: the credit notes' money kept as credit,
    less what was paid from it (payments by ``account_credit``)."""
    from .billing import Payment
    from .deal import Deal

    kept = session.scalar(select(func.coalesce(func.sum(CreditNote.kept_as_credit), 0))
                          .join(Deal, CreditNote.deal_id == Deal.id)
                          .where(CreditNote.customer_id == customer.id, Deal.currency == currency)) or ZERO
    used = session.scalar(select(func.coalesce(func.sum(Payment.amount), 0))
                          .join(Invoice, Payment.invoice_id == Invoice.id).join(Deal, Invoice.deal_id == Deal.id)
                          .where(Deal.customer_id == customer.id, Deal.currency == currency,
                                 Payment.method == "account_credit")) or ZERO
    return Decimal(kept) - Decimal(used)


def credit_balances(session: Session, customer: Customer) -> dict[str, Decimal]:
    """The credit on the customer's account, per currency (only those with some)."""
    from .deal import Deal

    currencies = session.scalars(select(Deal.currency).join(CreditNote, CreditNote.deal_id == Deal.id)
                                 .where(CreditNote.customer_id == customer.id).distinct()).all()
    return {c: b for c in sorted(currencies) if (b := credit_balance(session, customer, c))}
