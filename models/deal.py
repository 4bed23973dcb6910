"""The deal: one sale from lead to cash, and the human steps (waits) it stops at.

Deal states: open -> won | lost | cancelled.
Wait states: open -> answered | refused (a refused answer closes the wait; a new one opens).
One live flow run drives a deal (``Deal.drive_by``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, utcnow
from .crm import Customer, Lead, Opportunity
from .errors import DealAlreadyRunning, NotFound
from .money import DEFAULT_CURRENCY
from .staff import StaffUser
from .states import DealStatus, WaitStatus
from .text import printable

if TYPE_CHECKING:
    from .billing import Invoice
    from .credit import CreditHold
    from .credit_notes import CreditNote
    from .estimates import Estimate
    from .orders import SalesOrder


# A flow run's liveness, as the orchestrator tells it: the run's state (e.g. "Running",
# "Suspended") while it is live, else None.
Liveness = Callable[[str], "str | None"]


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (CheckConstraint(DealStatus.check(), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunities.id"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3), default=DEFAULT_CURRENCY)
    status: Mapped[str] = mapped_column(String(10), default=DealStatus.OPEN, index=True)
    lost_reason: Mapped[str] = mapped_column(Text, default="")
    flow_run_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]

    lead: Mapped[Lead] = relationship()
    customer: Mapped[Customer | None] = relationship()
    opportunity: Mapped[Opportunity | None] = relationship()
    owner: Mapped[StaffUser] = relationship()
    estimate: Mapped[Estimate | None] = relationship(back_populates="deal")
    order: Mapped[SalesOrder | None] = relationship(back_populates="deal")
    # its invoices: the final one (``invoice``) and a deposit invoice, if its terms ask for one;
    # read-only here (an invoice is made with its deal; ``billing.add_invoice`` refreshes these)
    invoices: Mapped[list[Invoice]] = relationship(order_by="Invoice.id", viewonly=True)
    invoice: Mapped[Invoice | None] = relationship(
        primaryjoin="and_(Deal.id == foreign(Invoice.deal_id), Invoice.kind == 'final')", viewonly=True)
    deposit_invoice: Mapped[Invoice | None] = relationship(
        primaryjoin="and_(Deal.id == foreign(Invoice.deal_id), Invoice.kind == 'deposit')", viewonly=True)
    waits: Mapped[list[Wait]] = relationship(order_by="Wait.id", back_populates="deal")
    credit_holds: Mapped[list[CreditHold]] = relationship(order_by="CreditHold.id", viewonly=True)
    credit_notes: Mapped[list[CreditNote]] = relationship(order_by="CreditNote.id", viewonly=True)

    @property
    def customer_name(self) -> str:
        return self.customer.name if self.customer else self.lead.company

    @property
    def is_open(self) -> bool:
        return self.status == DealStatus.OPEN

    @property
    def open_wait(self) -> Wait | None:
        """The open wait of the deal's own plan (not of a return or a claim of it: ``case_waits``)."""
        return next((w for w in self.waits if w.status == WaitStatus.OPEN and not w.of_case), None)

    @property
    def case_waits(self) -> list[Wait]:
        """The open waits of its returns and warranty claims (``models.cases``)."""
        return [w for w in self.waits if w.status == WaitStatus.OPEN and w.of_case]

    def close_won(self) -> None:
        self.status = DealStatus.move(f"deal {self.number}", self.status, DealStatus.WON, "close as won")
        self.closed_at = utcnow()

    def close_lost(self, reason: str) -> None:
        self.status = DealStatus.move(f"deal {self.number}", self.status, DealStatus.LOST, "close as lost")
        self.lost_reason = reason
        self.closed_at = utcnow()

    def cancel(self, reason: str) -> None:
        """Cancelled by a manager (``models.cancellation``); the reason is kept as a lost deal's is."""
        self.status = DealStatus.move(f"deal {self.number}", self.status, DealStatus.CANCELLED, "cancel")
        self.lost_reason = reason
        self.closed_at = utcnow()

    def drive_by(self, flow_run_id: str, is_live: Liveness) -> bool:
        """Record ``flow_run_id`` as the flow run that drives the deal: True if it changed, False
        if it is that run already (a run starts again from its top after every resume). Refused
        (``DealAlreadyRunning``) while another recorded run is live: two drivers would open every
        wait twice. ``is_live(run_id)``: the run's state while it is live, else None."""
        if self.flow_run_id == flow_run_id:
            return False
        self.refuse_second_run(is_live)
        self.flow_run_id = flow_run_id
        return True

    def refuse_second_run(self, is_live: Liveness) -> None:
        """``DealAlreadyRunning`` if the run recorded for the deal is live (what ``deal start``
        asks before it starts one); a run that ended, or that the orchestrator does not know, is
        not."""
        if self.flow_run_id and (state := is_live(self.flow_run_id)):
            raise DealAlreadyRunning(self.number, self.flow_run_id, state)


DEAL_NUMBER = re.compile(r"DEAL-\d{1,9}")


def deal_by_number(session: Session, number: str) -> Deal:
    """The deal numbered ``number`` (any case); a malformed number is not looked up at all."""
    wanted = str(number).strip().upper()
    if not DEAL_NUMBER.fullmatch(wanted):
        raise NotFound("deal", printable(number, 40) + ("…" if len(str(number)) > 40 else ""))
    deal = session.scalars(select(Deal).where(Deal.number == wanted)).one_or_none()
    if deal is None:
        raise NotFound("deal", wanted)
    return deal


CASE_STEP_PREFIXES = ("return_", "claim_")  # the steps of the cases after a sale (``models.waits``)


class Wait(Base):
    """A human step the deal stops at: who may answer, since when, and what was answered."""

    __tablename__ = "waits"
    __table_args__ = (
        UniqueConstraint("deal_id", "key"),
        CheckConstraint(WaitStatus.check(), name="status"),
        # what the stage-times report reads of every wait: read from this index alone, not from
        # the rows (which carry forms and answers: 1 GB for five years' 1.2M waits, 70 MB here)
        Index("ix_waits_spans", "deal_id", "step", "opened_at", "answered_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    key: Mapped[str] = mapped_column(String(60))
    step: Mapped[str] = mapped_column(String(20))
    roles: Mapped[str] = mapped_column(String(80))  # comma separated: any of them may answer
    status: Mapped[str] = mapped_column(String(10), default=WaitStatus.OPEN, index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    flow_run_id: Mapped[str | None] = mapped_column(String(40))
    # when the run's wait form was confirmed stored: a run can die between suspending and storing
    # its form (Prefect does them in that order), and recovery looks for waits without this
    form_stored_at: Mapped[datetime | None]
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    answered_by: Mapped[str | None] = mapped_column(String(40))
    answer: Mapped[dict[str, Any] | None]
    refusal_reason: Mapped[str] = mapped_column(Text, default="")
    # how the answer was proven ("one-time code", "signed session", "unverified"), and the roles a
    # manager answered for without holding them (standing in)
    proof: Mapped[str | None] = mapped_column(String(20))
    stand_in_for: Mapped[str | None] = mapped_column(String(80))

    deal: Mapped[Deal] = relationship(back_populates="waits")

    @property
    def role_list(self) -> list[str]:
        return self.roles.split(",")

    @property
    def of_case(self) -> bool:
        """A step of a return or a warranty claim of the deal (``models.cases``), not of the deal's own plan."""
        return self.step.startswith(CASE_STEP_PREFIXES)

    def close(self, status: WaitStatus, by: str, answer: dict[str, Any], reason: str = "", *,
              proof: str | None = None, stand_in_for: str | None = None) -> None:
        to = WaitStatus.move(f"wait {self.key} of deal {self.deal.number}", self.status, WaitStatus(status),
                             "answer it")
        self.proof = proof
        self.stand_in_for = stand_in_for
        self.status = to
        self.answered_by = by
        self.answered_at = utcnow()
        self.answer = answer
        self.refusal_reason = reason
