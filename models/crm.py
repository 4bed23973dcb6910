"""Customers, leads, opportunities, their stage history and follow-ups.

Lead states            Opportunity stages (default probability)
  new -> qualified       prospecting 10 -> qualification 20 -> needs_analysis 40
  new -> disqualified    -> proposal 60 -> negotiation 80 -> closed_won 100 | closed_lost 0
  qualified -> converted
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .errors import InvalidTransition, ValidationError
from .staff import StaffUser
from .states import LeadStatus
from .text import bounded, has_control, one_line, shown


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (CheckConstraint("deposit_pct BETWEEN 0 AND 100", name="deposit_pct"),
                      CheckConstraint("deposit_before in ('shipping','release')", name="deposit_before"),
                      CheckConstraint("credit_limit >= 0", name="credit_limit"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(60), default="")
    billing_address: Mapped[str] = mapped_column(Text, default="")
    shipping_address: Mapped[str] = mapped_column(Text, default="")
    tax_id: Mapped[str] = mapped_column(String(40), default="", server_default="")
    payment_terms_days: Mapped[int] = mapped_column(default=30, server_default="30")
    currency: Mapped[str | None] = mapped_column(String(3))  # None: the settings' default
    # payment terms: a deposit (% of the order, paid before shipping or before QA releases it;
    # None: the company's) and a credit limit in the customer's currency (None: no limit)
    deposit_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    deposit_before: Mapped[str | None] = mapped_column(String(10))
    credit_limit: Mapped[Decimal | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contacts: Mapped[list[Contact]] = relationship(back_populates="customer", order_by="Contact.id")

    @property
    def primary_contact(self) -> Contact | None:
        return next((c for c in self.contacts if c.is_primary), self.contacts[0] if self.contacts else None)


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(60), default="")
    title: Mapped[str] = mapped_column(String(80), default="")
    is_primary: Mapped[bool] = mapped_column(default=False)

    customer: Mapped[Customer] = relationship(back_populates="contacts")


LEAD_SOURCES = ("web", "referral", "trade_show", "cold_call", "email", "partner", "other")


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        CheckConstraint(LeadStatus.check(), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company: Mapped[str] = mapped_column(String(200))
    contact_name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(60), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(30), default="other")
    status: Mapped[str] = mapped_column(String(20), default="new")
    notes: Mapped[str] = mapped_column(Text, default="")
    qualification_notes: Mapped[str] = mapped_column(Text, default="")
    budget: Mapped[Decimal | None]
    timeline: Mapped[str] = mapped_column(String(120), default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    qualified_at: Mapped[datetime | None]

    owner: Mapped[StaffUser] = relationship()
    customer: Mapped[Customer | None] = relationship()

    def validate(self) -> None:
        self.company = one_line(self.company, "company", 150, required=True)
        self.contact_name = one_line(self.contact_name, "contact_name", 120, required=True)
        self.phone = one_line(self.phone, "phone", 60)
        self.address = bounded(self.address, "address", 1000)
        self.notes = bounded(self.notes, "notes", 4000)
        email = (self.email or "").strip()
        if "@" not in email or any(c in email for c in " ,;<>\"") or has_control(email) or len(email) > 200:
            raise ValidationError("email", f"must be one e-mail address, got {shown(self.email)}")
        self.email = email
        if self.source not in LEAD_SOURCES:
            raise ValidationError("source", f"must be one of {', '.join(LEAD_SOURCES)}")
        if self.budget is not None and self.budget < 0:
            raise ValidationError("budget", "must not be negative")

    def qualify(self, notes: str, budget: Decimal | None, timeline: str) -> None:
        status = LeadStatus.move(f"lead {self.id}", self.status, LeadStatus.QUALIFIED, "qualify")
        if budget is not None and budget < 0:
            raise ValidationError("budget", "must not be negative")
        self.status = status
        self.qualification_notes = notes
        self.budget = budget
        self.timeline = timeline
        self.qualified_at = utcnow()

    def disqualify(self, notes: str) -> None:
        self.status = LeadStatus.move(f"lead {self.id}", self.status, LeadStatus.DISQUALIFIED, "disqualify")
        self.qualification_notes = notes

    def mark_converted(self, customer: Customer) -> None:
        self.status = LeadStatus.move(f"lead {self.id}", self.status, LeadStatus.CONVERTED, "convert")
        self.customer = customer


STAGES: dict[str, int] = {
    "prospecting": 10,
    "qualification": 20,
    "needs_analysis": 40,
    "proposal": 60,
    "negotiation": 80,
    "closed_won": 100,
    "closed_lost": 0,
}
OPEN_STAGES = tuple(s for s in STAGES if not s.startswith("closed"))


class Opportunity(Base):
    __tablename__ = "opportunities"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(30), default="qualification", index=True)
    probability: Mapped[int] = mapped_column(default=STAGES["qualification"])
    expected_amount: Mapped[Decimal | None]
    expected_close: Mapped[date | None]
    owner_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    engineer_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    handoff_note: Mapped[str] = mapped_column(Text, default="", server_default="")  # what the engineer should know
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lead: Mapped[Lead] = relationship()
    owner: Mapped[StaffUser] = relationship(foreign_keys=[owner_id])
    engineer: Mapped[StaffUser | None] = relationship(foreign_keys=[engineer_id])
    customer: Mapped[Customer] = relationship()
    history: Mapped[list[StageChange]] = relationship(order_by="StageChange.id", back_populates="opportunity")
    followups: Mapped[list[FollowUp]] = relationship(order_by="FollowUp.due_at", back_populates="opportunity")

    @property
    def is_closed(self) -> bool:
        return self.stage.startswith("closed")

    def hand_to(self, engineer: StaffUser, note: str, by: StaffUser | None = None) -> None:
        """The hand-off: a sales engineer (active) prepares the estimate, told ``note`` by sales. In
        a team that answers with one-time codes (``by`` is enrolled), the engineer must be enrolled
        too: else the estimate would wait for someone who cannot answer it."""
        if not engineer.holds("sales_engineer") or not engineer.active:
            raise ValidationError("engineer", f"{engineer.handle} is {engineer.role}"
                                              f"{'' if engineer.active else ' (disabled)'}, not a sales_engineer")
        if by is not None and by.enrolled and not engineer.enrolled:
            raise ValidationError("engineer", f"{engineer.handle} is not enrolled for one-time codes and could not "
                                              f"answer the estimate: `dealflow staff enroll {engineer.handle}` first")
        self.engineer = engineer
        self.handoff_note = note

    def move_to(self, stage: str, by: StaffUser, probability: int | None = None) -> StageChange:
        if stage not in STAGES:
            raise ValidationError("stage", f"must be one of {', '.join(STAGES)}")
        if self.is_closed:
            raise InvalidTransition(f"opportunity {self.name!r}", self.stage, f"move to {stage}")
        if probability is not None and not 0 <= probability <= 100:
            raise ValidationError("probability", "must be between 0 and 100")
        change = StageChange(from_stage=self.stage, to_stage=stage, by=by)
        self.stage = stage
        self.probability = STAGES[stage] if probability is None else probability
        self.history.append(change)
        return change


class StageChange(Base):
    __tablename__ = "opportunity_stage_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id"), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(30))
    to_stage: Mapped[str] = mapped_column(String(30))
    by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    opportunity: Mapped[Opportunity] = relationship(back_populates="history")
    by: Mapped[StaffUser] = relationship()


FOLLOWUP_KINDS = ("call", "email", "meeting", "demo", "site_visit")


class FollowUp(Base):
    __tablename__ = "followups"
    # the reminder scan reads only open follow-ups by due time: a partial index keeps it small
    __table_args__ = (Index("ix_followups_open_due", "due_at", "owner_id",
                            sqlite_where=text("done_at IS NULL"), postgresql_where=text("done_at IS NULL")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(Text, default="")
    done_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    opportunity: Mapped[Opportunity] = relationship(back_populates="followups")
    owner: Mapped[StaffUser] = relationship()

    @property
    def is_done(self) -> bool:
        return self.done_at is not None

    def is_overdue(self, now: datetime) -> bool:
        return not self.is_done and self.due_at < now

    # a follow-up is due within these bounds: a typo of a year, not a plan, lies outside them
    EARLIEST_DUE = datetime(2000, 1, 1)
    LATEST_AHEAD = timedelta(days=3650)  # ten years

    @classmethod
    def check_due(cls, due_at: datetime, now: datetime) -> datetime:
        if not cls.EARLIEST_DUE <= due_at <= now + cls.LATEST_AHEAD:
            raise ValidationError("due", f"must be between {cls.EARLIEST_DUE:%Y-%m-%d} and ten years from now, "
                                         f"got {due_at:%Y-%m-%d %H:%M}")
        return due_at

    def validate(self) -> None:
        if self.kind not in FOLLOWUP_KINDS:
            raise ValidationError("kind", f"must be one of {', '.join(FOLLOWUP_KINDS)}")
        self.notes = bounded(self.notes, "notes", 4000)

    def complete(self, outcome: str) -> None:
        if self.is_done:
            raise InvalidTransition(f"follow-up {self.id}", "done", "complete it again")
        outcome = bounded(outcome, "outcome", 4000)
        if not outcome:
            raise ValidationError("outcome", "must say what came of the follow-up")
        self.outcome = outcome
        self.done_at = utcnow()
