"""Estimates (quotes) with immutable revisions and the change requests between them.

Revision states: draft -> sent -> approved | changes_requested | declined;
draft -> returned (a sales manager sent it back: its discount was over its preparer's limit).
A revision's lines never change once it leaves the draft (a manager may lower a draft's
discounts before it is sent); a change request leads to a new revision.
The estimate gets its number when its first revision is sent; revision n reads EST-0007-R2.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text, UniqueConstraint, event, false
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, utcnow
from .catalog import Product, product_by_sku, sku_of
from .errors import (
    DiscountNeedsApproval,
    DiscountOutOfRange,
    DuplicateLine,
    EstimateExpired,
    InvalidTransition,
    PermissionDenied,
    ProductRetired,
    ValidationError,
)
from .money import parse_money
from .numbering import next_number
from .pricing import PricedLine, Totals
from .staff import StaffUser
from .states import RevisionStatus
from .typed import MAX_LINES, quantity, whole_number

if TYPE_CHECKING:
    from .deal import Deal

MAX_VALID_DAYS = 365

DECISION_CHANNELS = ("email", "phone", "signed_document", "meeting", "portal")
# what a form offers, in the team's words -> what is recorded (the CLI takes either)
DECISION_WORDS = {"approve": "approve", "ask for changes": "request_changes", "decline": "decline"}
CHANNEL_WORDS = {"email": "email", "phone": "phone", "signed document": "signed_document", "meeting": "meeting"}
# a sales manager's decision on a discount over its preparer's limit
DISCOUNT_DECISIONS = ("approve", "lower", "send_back")
DISCOUNT_WORDS = {"approve": "approve", "approve a lower discount": "lower", "send back": "send_back"}


class Estimate(Base):
    __tablename__ = "estimates"

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), unique=True)
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    deal: Mapped[Deal] = relationship(back_populates="estimate")
    revisions: Mapped[list[EstimateRevision]] = relationship(
        order_by="EstimateRevision.revision", back_populates="estimate")

    @property
    def latest(self) -> EstimateRevision | None:
        return self.revisions[-1] if self.revisions else None

    def sent_before(self, rev: EstimateRevision) -> EstimateRevision | None:
        """The revision the customer saw before ``rev`` (never one sent back before it went out)."""
        return next((r for r in reversed(self.revisions) if r.revision < rev.revision and r.sent_at is not None),
                    None)

    def draft_revision(self, session: Session, lines: list[dict[str, Any]], by: StaffUser, *, on: date,
                       valid_days: Any = 30, notes: str = "") -> EstimateRevision:
        """The next revision, a draft: its lines priced in the deal's currency on ``on`` (the
        product's price-list price, else the catalogue's at that day's rate, which the revision
        keeps). Refused, with nothing written, for no lines or too many, a validity outside 1 to
        365 days, a product retired or twice, a quantity that is not a whole number above zero, a
        discount outside 0 to 100 %, or a product without a price in the deal's currency."""
        from .company import the_company
        from .prices import quote, rate_on

        if not lines:
            raise ValidationError("lines", "an estimate needs at least one line")
        if len(lines) > MAX_LINES:
            raise ValidationError("lines", f"an estimate has at most {MAX_LINES} lines, got {len(lines)}")
        days = whole_number(valid_days, "valid_days")
        if not 1 <= days <= MAX_VALID_DAYS:
            raise ValidationError("valid_days", f"must be between 1 and {MAX_VALID_DAYS}")
        currency, own = self.deal.currency, the_company(session).currency
        rev = EstimateRevision(revision=len(self.revisions) + 1, valid_until=on + timedelta(days=days), notes=notes,
                               prepared_by=by)
        quotes, seen = [], set()
        for i, raw in enumerate(lines, start=1):
            where = f"Line {i}"
            product = product_by_sku(session, str(sku_of(raw.get("sku", ""))).strip(), f"{where}, product")
            sku = product.sku  # as the catalogue spells it (a SKU is matched whatever its case)
            if not product.active:
                raise ProductRetired(sku, f"{where}, product")
            if sku in seen:
                raise DuplicateLine(sku, f"{where}, product", "; put the quantity on one line")
            seen.add(sku)
            qty = quantity(raw.get("quantity"), f"{where}, quantity")
            disc = parse_money(raw.get("discount_pct") or 0, f"{where}, discount %")
            if not 0 <= disc <= 100:
                raise DiscountOutOfRange(f"{where}, discount %")
            priced = quote(session, product, currency, on, own, f"{where}, product")  # never relabelled
            quotes.append(priced)
            rev.lines.append(EstimateLine(line_no=i, product_id=product.id, sku=product.sku, description=product.name,
                                          quantity=qty, unit_price=priced.unit_price, discount_pct=disc,
                                          tax_rate=product.tax_rate))
        if currency != own and (rate := rate_on(session, currency, on)) is not None:
            rev.fx_rate, rev.fx_on = rate.rate, rate.valid_from  # fixed with the prices: reports convert back at it
        rev.fx_converted = any(q.source == "rate" for q in quotes)
        rev.hold_for_discount(by.discount_limit)
        self.revisions.append(rev)
        session.flush()
        return rev


class EstimateRevision(Base):
    __tablename__ = "estimate_revisions"
    __table_args__ = (
        UniqueConstraint("estimate_id", "revision"),
        CheckConstraint(
            RevisionStatus.check(), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estimate_id: Mapped[int] = mapped_column(ForeignKey("estimates.id"), index=True)
    revision: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default=RevisionStatus.DRAFT)
    valid_until: Mapped[date]
    notes: Mapped[str] = mapped_column(Text, default="")
    prepared_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(40))
    decision_channel: Mapped[str | None] = mapped_column(String(20))
    decision_note: Mapped[str] = mapped_column(Text, default="")
    customer_po: Mapped[str] = mapped_column(String(60), default="", server_default="")  # given with the approval
    # the deposit terms the customer was offered, fixed when it was sent (the customer's, else the
    # company's): what accepting it asks for, whatever the terms say by then (None: sent before)
    deposit_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    deposit_before: Mapped[str | None] = mapped_column(String(10))
    # the exchange rate of the day it was drafted (deal currency per company currency; None: the
    # company's own currency, or no rate that day), fixed with its prices; ``fx_converted``: some
    # line's price is the catalogue's at that rate (the document says so)
    fx_rate: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    fx_on: Mapped[date | None]
    fx_converted: Mapped[bool] = mapped_column(default=False, server_default=false())
    # a discount over its preparer's limit (``StaffUser.discount_limit``) waits for a sales
    # manager: what was asked over which limit, and the manager's decision (approved, lowered,
    # returned: sent back), by whom, when and why
    discount_asked_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    discount_limit_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    discount_decision: Mapped[str | None] = mapped_column(String(10))
    discount_decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    discount_decided_at: Mapped[datetime | None]
    discount_reason: Mapped[str] = mapped_column(Text, default="", server_default="")

    estimate: Mapped[Estimate] = relationship(back_populates="revisions")
    prepared_by: Mapped[StaffUser] = relationship(foreign_keys=[prepared_by_id])
    discount_decided_by: Mapped[StaffUser | None] = relationship(foreign_keys=[discount_decided_by_id])
    lines: Mapped[list[EstimateLine]] = relationship(order_by="EstimateLine.line_no", back_populates="revision")
    change_request: Mapped[ChangeRequest | None] = relationship(back_populates="revision")

    @property
    def number(self) -> str:
        base = self.estimate.number or "EST-DRAFT"
        return f"{base}-R{self.revision}"

    @property
    def totals(self) -> Totals:
        return Totals(self.lines, self.estimate.deal.currency)

    def _decide(self, status: RevisionStatus, verb: str, by: str, channel: str, note: str) -> None:
        to = RevisionStatus.move(f"estimate {self.number}", self.status, status, verb)
        if channel not in DECISION_CHANNELS:
            raise ValidationError("channel", f"must be one of {', '.join(DECISION_CHANNELS)}")
        self.status = to
        self.decided_by = by
        self.decided_at = utcnow()
        self.decision_channel = channel
        self.decision_note = note

    @property
    def largest_discount(self) -> Decimal:
        return max((ln.discount_pct for ln in self.lines), default=Decimal(0))

    @property
    def discount_pending(self) -> bool:
        """Its discount is over its preparer's limit and no manager has decided yet."""
        return self.discount_asked_pct is not None and self.discount_decision is None

    def hold_for_discount(self, limit: Decimal | None) -> bool:
        """Whether the revision waits for a manager: its largest discount is over ``limit`` (its
        preparer's; None: no limit). The limit is kept, so that a limit changed later does not
        change what this revision needed."""
        if limit is None or self.largest_discount <= limit:
            return False
        self.discount_asked_pct, self.discount_limit_pct = self.largest_discount, limit
        return True

    def _decide_discount(self, decision: str, by: StaffUser, reason: str, verb: str) -> None:
        if self.status != RevisionStatus.DRAFT or not self.discount_pending:
            raise InvalidTransition(f"estimate {self.number}",
                                    self.status if self.status != RevisionStatus.DRAFT
                                    else "not waiting for a discount approval",
                                    verb)
        if not by.has_role("manager"):
            raise PermissionDenied(by.handle, "manager", "discount", by.role)
        self.discount_decision, self.discount_decided_by, self.discount_decided_at = decision, by, utcnow()
        self.discount_reason = reason

    def approve_discount(self, by: StaffUser, note: str = "") -> None:
        self._decide_discount("approved", by, note, "approve its discount")

    def lower_discount(self, by: StaffUser, highest: Decimal, note: str = "") -> None:
        """Approve a lower discount: every line above ``highest`` is lowered to it (the totals follow)."""
        if not 0 <= highest < self.discount_asked_pct:
            raise ValidationError("discount_pct", f"must be at least 0 and below the {self.discount_asked_pct} % "
                                                  "asked (approve it to keep it)")
        self._decide_discount("lowered", by, note, "lower its discount")
        for line in self.lines:
            if line.discount_pct > highest:
                line.discount_pct = highest

    def send_back(self, by: StaffUser, reason: str) -> None:
        """Returned to its preparer: the deal waits for a new revision, which shows ``reason``."""
        if not reason.strip():
            raise ValidationError("reason", "must say why it goes back, for the engineer")
        self._decide_discount("returned", by, reason, "send it back")
        self.status = RevisionStatus.move(f"estimate {self.number}", self.status, RevisionStatus.RETURNED,
                                          "send it back")

    def send(self, session: Session) -> None:
        RevisionStatus.move(f"estimate {self.number}", self.status, RevisionStatus.SENT, "send")
        if self.discount_pending:
            raise DiscountNeedsApproval(self.number, self.discount_asked_pct, self.discount_limit_pct)
        if self.estimate.number is None:
            self.estimate.number = next_number(session, "estimate")
        self.status = RevisionStatus.SENT
        self.sent_at = utcnow()

    def is_expired(self, on: date) -> bool:
        """Past its validity on ``on``: the last day it can be answered is ``valid_until``."""
        return self.valid_until < on

    def approve(self, by: str, channel: str, note: str = "", on: date | None = None) -> None:
        if self.is_expired(on or utcnow().date()):
            raise EstimateExpired(self.number, self.valid_until)
        self._decide(RevisionStatus.APPROVED, "approve it", by, channel, note)

    def decline(self, by: str, channel: str, reason: str) -> None:
        self._decide(RevisionStatus.DECLINED, "decline it", by, channel, reason)

    def request_changes(self, by: str, channel: str, text: str) -> ChangeRequest:
        if not text.strip():
            raise ValidationError("changes", "must say what the customer wants changed")
        self._decide(RevisionStatus.CHANGES_REQUESTED, "request changes", by, channel, text)
        self.change_request = ChangeRequest(text=text, channel=channel, recorded_by=by)
        return self.change_request


class EstimateLine(PricedLine, Base):
    __tablename__ = "estimate_lines"
    __table_args__ = (
        UniqueConstraint("revision_id", "line_no"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("discount_pct >= 0 and discount_pct <= 100", name="discount_pct"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("estimate_revisions.id"), index=True)
    line_no: Mapped[int]
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))

    revision: Mapped[EstimateRevision] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()

    def deal_of_line(self):
        estimate = self.revision.estimate if self.revision is not None else None
        return estimate.deal if estimate is not None else None


class ChangeRequest(Base):
    """What the customer asked to change, tied to the revision they saw."""

    __tablename__ = "change_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("estimate_revisions.id"), unique=True)
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(20))
    recorded_by: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    revision: Mapped[EstimateRevision] = relationship(back_populates="change_request")


@event.listens_for(EstimateLine, "before_update")
def _sent_revisions_are_immutable(mapper, connection, target):  # noqa: ARG001
    """Only a draft's discount may change (a manager lowering it before it is sent)."""
    if target.revision is None or target.revision.status != RevisionStatus.DRAFT:
        raise InvalidTransition(f"estimate line {target.sku}", "written", "change it (draft a new revision)")


@event.listens_for(EstimateLine, "before_delete")
def _lines_stay(mapper, connection, target):  # noqa: ARG001
    raise InvalidTransition(f"estimate line {target.sku}", "written", "change it (draft a new revision)")
