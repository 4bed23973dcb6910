"""Credit control: what a customer owes and has ordered (their exposure), their credit limit, and
the hold an order goes on when the customer accepts an estimate over it.

Exposure, in the customer's currency: their invoices not yet paid (deposits included) plus what
they have confirmed and not yet been invoiced for (approved estimates of open deals, less any
deposit invoiced for them); an order on hold, rejected or cancelled counts for nothing. When the
customer accepts an estimate (online or as recorded by sales) and their exposure plus this order
is over their limit, or an invoice of theirs is overdue by more than the company's
``credit_overdue_days``, the order goes on credit hold: a wait for finance (the ``credit`` role;
a manager may stand in), who release it with a reason, ask for a deposit instead, or reject it.

The check locks the customer's row, so two acceptances of one customer at the same moment are
checked one after the other: the second sees the first's order in the exposure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, utcnow
from .crm import Customer
from .customers import credit_limit  # noqa: F401  (the rule, where the customer's other terms are)
from .deal import Deal
from .errors import ValidationError
from .money import ZERO, round_money
from .states import DealStatus, HoldStatus, RevisionStatus

if TYPE_CHECKING:
    from .estimates import EstimateRevision
    from .staff import StaffUser


class CreditHold(Base):
    """An accepted estimate's order held for credit control, and what finance decided."""

    __tablename__ = "credit_holds"
    __table_args__ = (CheckConstraint(HoldStatus.check(), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("estimate_revisions.id"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default=HoldStatus.OPEN, index=True)
    why: Mapped[str] = mapped_column(Text)  # in words: over the limit by …, an invoice overdue …
    exposure: Mapped[Decimal]  # before this order
    order_total: Mapped[Decimal]
    credit_limit: Mapped[Decimal | None]
    currency: Mapped[str] = mapped_column(String(3))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    deposit_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))  # asked instead of releasing
    deposit_before: Mapped[str | None] = mapped_column(String(10))

    deal: Mapped[Deal] = relationship()
    customer: Mapped[Customer] = relationship()
    decided_by: Mapped[StaffUser | None] = relationship()

    @property
    def is_open(self) -> bool:
        return self.status == HoldStatus.OPEN

    def decide(self, status: HoldStatus, by: StaffUser, reason: str) -> None:
        if not reason.strip():
            raise ValidationError("reason", "say why (it is kept with the decision, and a rejection's is sent to "
                                            "the customer)")
        self.status = HoldStatus.move(f"credit hold of {self.deal.number}", self.status, status, "decide it")
        self.decided_by = by
        self.decided_at = utcnow()
        self.reason = reason


def _currency(session: Session, customer: Customer) -> str:
    from .company import the_company

    return customer.currency or the_company(session).currency


@dataclass(frozen=True)
class Exposure:
    currency: str
    unpaid: Decimal  # invoices not yet paid, deposits included
    uninvoiced: Decimal  # confirmed, not yet invoiced
    overdue: list[tuple[str, int]]  # (invoice, days overdue)

    @property
    def total(self) -> Decimal:
        return self.unpaid + self.uninvoiced


def exposure_of(session: Session, customer: Customer, today: date | None = None,
                leave_out: int | None = None) -> Exposure:
    """The customer's exposure in their currency (a limit is in one currency: a deal in another
    is not added in, and ``check_credit`` holds an order in another currency when there is a
    limit), and their unpaid invoices, in any currency, by how late they are. ``leave_out``: a
    deal whose own order is being checked."""
    today = today or utcnow().date()
    currency = _currency(session, customer)
    deals = session.scalars(select(Deal).where(Deal.customer_id == customer.id)).all()
    unpaid = uninvoiced = ZERO
    overdue: list[tuple[str, int]] = []
    for deal in deals:
        if deal.id == leave_out:
            continue
        for invoice in deal.invoices:
            if invoice.is_settled:
                continue
            if deal.currency == currency:
                unpaid += invoice.amount_due
            if invoice.due_date < today:
                overdue.append((invoice.number, (today - invoice.due_date).days))
        if deal.currency != currency or deal.status != DealStatus.OPEN or deal.invoice is not None or deal.estimate is None:
            continue
        latest = deal.estimate.latest
        if latest is None or latest.status != RevisionStatus.APPROVED or held(session, latest):
            continue
        deposit = deal.deposit_invoice
        uninvoiced += latest.totals.total - (deposit.totals.total if deposit is not None else ZERO)
    return Exposure(currency, round_money(unpaid, currency), round_money(uninvoiced, currency), overdue)


def held(session: Session, rev: EstimateRevision) -> bool:
    """Whether the revision's order is held or was rejected (it counts for nothing then)."""
    hold = hold_of(session, rev)
    return hold is not None and hold.status in (HoldStatus.OPEN, HoldStatus.REJECTED)


def hold_of(session: Session, rev: EstimateRevision) -> CreditHold | None:
    return session.scalars(select(CreditHold).where(CreditHold.revision_id == rev.id)).one_or_none()


def check_credit(session: Session, deal: Deal, rev: EstimateRevision, today: date | None = None) -> CreditHold | None:
    """The hold the accepted ``rev`` goes on, if its customer's credit does not cover it; None if
    it does. Called when the customer accepts, in the transaction that records it."""
    from .company import the_company

    if deal.customer_id is None:
        return None
    existing = hold_of(session, rev)
    if existing is not None:
        return existing
    # one check at a time per customer: the second waits here and then counts the first's order
    customer = session.scalars(select(Customer).where(Customer.id == deal.customer_id).with_for_update()
                               .execution_options(populate_existing=True)).one()
    today = today or utcnow().date()
    limit_days = the_company(session).credit_overdue_days
    exposure = exposure_of(session, customer, today, leave_out=deal.id)
    order_total = rev.totals.total if deal.currency == exposure.currency else ZERO
    why = []
    if customer.credit_limit is not None and deal.currency != exposure.currency:
        why.append(f"the order is in {deal.currency} and the credit limit in {exposure.currency}: credit control "
                   f"weighs it")
    elif customer.credit_limit is not None and exposure.total + order_total > customer.credit_limit:
        why.append(f"exposure {exposure.total} + this order {order_total} = {exposure.total + order_total} "
                   f"{exposure.currency}, over the credit limit of {customer.credit_limit}")
    late = [(n, d) for n, d in exposure.overdue if d > limit_days]
    if late:
        why.append("overdue more than {} days: {}".format(limit_days, ", ".join(f"{n} ({d} days)" for n, d in late)))
    if not why:
        return None
    hold = CreditHold(deal=deal, revision_id=rev.id, customer=customer, why="; ".join(why), exposure=exposure.total,
                      order_total=rev.totals.total, credit_limit=customer.credit_limit, currency=exposure.currency)
    session.add(hold)
    session.flush()
    return hold


def open_hold(deal: Deal) -> CreditHold | None:
    """The deal's hold that waits for finance, if one."""
    return next((h for h in deal.credit_holds if h.is_open), None)


def holds_of(session: Session, customer: Customer) -> list[CreditHold]:
    return list(session.scalars(select(CreditHold).where(CreditHold.customer_id == customer.id)
                                .order_by(CreditHold.id)))
