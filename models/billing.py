"""Invoices made from the order, and the payments against them.

An order has at most two invoices: its deposit invoice (``kind`` deposit, its own series DEP),
when the customer's terms ask for a deposit, and its final invoice (INV), which deducts the
deposit paid. Invoice states: open -> partially_paid -> paid; a cancelled order's deposit
invoice is credited. Due = total - paid, never below zero.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, utcnow
from .errors import InvalidTransition, Overpayment, ValidationError
from .money import ZERO, quantum, round_money, total
from .numbering import next_number
from .pricing import PricedLine, Totals
from .staff import StaffUser
from .states import InvoiceStatus

if TYPE_CHECKING:
    from .deal import Deal
    from .orders import SalesOrder

# "account_credit": paid from the credit on the customer's account (a cancelled order's deposit kept
# as credit, ``models.credit_notes``), at most what is left of it in the invoice's currency
PAYMENT_METHODS = ("bank_transfer", "card", "cheque", "cash", "account_credit")
METHOD_WORDS = {"bank transfer": "bank_transfer", "card": "card", "cheque": "cheque", "cash": "cash",
                "credit on account": "account_credit"}  # form -> record


INVOICE_KINDS = ("deposit", "final")


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (CheckConstraint(InvoiceStatus.check(), name="status"),
                      CheckConstraint("kind in (" + ",".join(f"'{k}'" for k in INVOICE_KINDS) + ")", name="kind"),
                      UniqueConstraint("deal_id", "kind"))

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_orders.id"), index=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="final", server_default="final")
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_date: Mapped[date] = mapped_column(index=True)

    deal: Mapped[Deal] = relationship()
    order: Mapped[SalesOrder] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(order_by="InvoiceLine.line_no", back_populates="invoice")
    payments: Mapped[list[Payment]] = relationship(order_by="Payment.seq", back_populates="invoice")

    @property
    def totals(self) -> Totals:
        return Totals(self.lines, self.deal.currency)

    @property
    def is_deposit(self) -> bool:
        return self.kind == "deposit"

    @property
    def title(self) -> str:
        """What the documents call it: "Deposit invoice" or "Invoice"."""
        return "Deposit invoice" if self.is_deposit else "Invoice"

    @property
    def is_settled(self) -> bool:
        """Nothing more to collect: paid, or credited by a credit note."""
        return self.status in (InvoiceStatus.PAID, InvoiceStatus.CREDITED)

    @property
    def paid(self) -> Decimal:
        return total((p.amount for p in self.payments), self.deal.currency)

    @property
    def amount_due(self) -> Decimal:
        return self.totals.total - self.paid

    @classmethod
    def may_be_due_at(cls, end: datetime):
        """As SQL: the invoices that may have had something due at ``end``: all but those marked
        paid (nothing due: ``record_payment``, ``settle_if_nothing_due``) by payments all made
        before ``end``. An index leaves years of paid invoices out of a report as of today."""
        return (cls.status != InvoiceStatus.PAID) | (
            select(Payment.id).where(Payment.invoice_id == cls.id, Payment.at >= end).exists())

    def is_overdue(self, today: date) -> bool:
        return not self.is_settled and self.due_date < today

    def settle_if_nothing_due(self) -> None:
        if self.status == InvoiceStatus.OPEN and self.amount_due == ZERO:
            self.status = InvoiceStatus.PAID

    def record_payment(self, session: Session, amount: Decimal, method: str, reference: str,
                       by: StaffUser, received_on: date | None = None,
                       account_credit: Decimal | None = None) -> Payment:
        """``received_on``: the day the money came in (default: today); not in the future, not
        before the invoice was issued."""
        today = utcnow().date()
        received_on = received_on or today
        if received_on > today:
            raise ValidationError("received_on", f"is in the future ({received_on}; today is {today})")
        if received_on < self.issued_at.date():
            raise ValidationError("received_on", f"is before invoice {self.number} was issued "
                                                 f"({self.issued_at.date()})")
        if self.is_settled:
            raise InvalidTransition(f"invoice {self.number}", self.status, "record a payment")
        if amount <= ZERO:
            raise ValidationError("amount", "must be greater than zero")
        currency = self.deal.currency
        if amount != round_money(amount, currency):
            places = -quantum(currency).as_tuple().exponent
            raise ValidationError("amount", f"must have at most {places} decimals in {currency}, got {amount}")
        due = self.amount_due
        if amount > due:
            raise Overpayment(round_money(amount, currency), round_money(due, currency))
        if method not in PAYMENT_METHODS:
            raise ValidationError("method", f"must be one of {', '.join(PAYMENT_METHODS)}")
        if method == "account_credit":  # ``account_credit``: what is on the customer's account in this currency
            left = account_credit or ZERO
            if amount > left:
                raise ValidationError("amount", f"is more than the credit on {self.deal.customer_name}'s account "
                                                f"({round_money(left, currency)} {currency})")
        payment = Payment(seq=len(self.payments) + 1, number=next_number(session, "payment"), amount=amount, method=method,
                          reference=reference, recorded_by=by, received_on=received_on)
        self.payments.append(payment)
        self.status = InvoiceStatus.move(f"invoice {self.number}", self.status,
                                         InvoiceStatus.PAID if self.amount_due == ZERO else InvoiceStatus.PARTIALLY_PAID,
                                         "record a payment")
        return payment


def add_invoice(session: Session, invoice: Invoice) -> Invoice:
    """A new invoice of its deal, written, and the deal's view of its invoices refreshed."""
    session.add(invoice)
    session.flush()
    session.expire(invoice.deal, ["invoices", "invoice", "deposit_invoice"])
    return invoice


class InvoiceLine(PricedLine, Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "line_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    # None: a line of no order line (a deposit invoice's line, a final invoice's deduction of it)
    order_line_id: Mapped[int | None] = mapped_column(ForeignKey("sales_order_lines.id"))
    line_no: Mapped[int]

    invoice: Mapped[Invoice] = relationship(back_populates="lines")

    def deal_of_line(self):
        return self.invoice.deal if self.invoice is not None else None


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("invoice_id", "seq"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    seq: Mapped[int]
    amount: Mapped[Decimal]
    method: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(80), default="")
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    received_on: Mapped[date | None] = mapped_column(default=None)  # None: recorded before this was asked

    @property
    def received(self) -> date:
        return self.received_on or self.at.date()

    invoice: Mapped[Invoice] = relationship(back_populates="payments")
    recorded_by: Mapped[StaffUser] = relationship()
