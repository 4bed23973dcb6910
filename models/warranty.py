"""Warranty claims (WC-0001): a customer's machine, by its serial number, fails within its warranty.

``open_claim`` is refused after the warranty's end (or for a unit not out with a customer); an
engineer diagnoses it: repair on site, or a return (a warranty return, authorized by the
diagnosis and never credited: ``models.returns``); then the claim is closed with a note, once its
return (if any) has been received, inspected and the unit repaired has shipped back.
The customer is emailed at each of the three steps (``models.claim_mail``), in its transaction.

Claim states: open -> diagnosed -> closed.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from . import audit
from .base import Base, utcnow
from .errors import DomainError, NotFound, ValidationError
from .numbering import next_number
from .states import ClaimStatus, ReturnStatus
from .text import bounded, printable

if TYPE_CHECKING:
    from .crm import Customer
    from .deal import Deal
    from .returns import ReturnOrder
    from .serials import Serial
    from .staff import StaffUser

CLAIM_NUMBER = re.compile(r"WC-[0-9]{4,9}")
RESOLUTIONS = ("repair_on_site", "return")
RESOLUTION_WORDS = {"repair on site": "repair_on_site", "return it for repair": "return"}


class WarrantyClaim(Base):
    __tablename__ = "warranty_claims"
    __table_args__ = (CheckConstraint(ClaimStatus.check(), name="status"),
                      CheckConstraint("resolution in ('', 'repair_on_site', 'return')", name="resolution"))

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    serial_id: Mapped[int] = mapped_column(ForeignKey("serials.id"), index=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default=ClaimStatus.OPEN, index=True)
    issue: Mapped[str] = mapped_column(Text)
    warranty_end: Mapped[date]  # as it was when the claim was opened
    diagnosis: Mapped[str] = mapped_column(Text, default="")
    resolution: Mapped[str] = mapped_column(String(20), default="")
    diagnosed_by: Mapped[str | None] = mapped_column(String(40))
    return_id: Mapped[int | None] = mapped_column(ForeignKey("returns.id"), unique=True)
    close_note: Mapped[str] = mapped_column(Text, default="")
    closed_by: Mapped[str | None] = mapped_column(String(40))
    flow_run_id: Mapped[str | None] = mapped_column(String(40))
    opened_by: Mapped[str] = mapped_column(String(40))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]

    serial: Mapped[Serial] = relationship()
    deal: Mapped[Deal] = relationship()
    customer: Mapped[Customer | None] = relationship()
    ret: Mapped[ReturnOrder | None] = relationship()

    @property
    def is_done(self) -> bool:
        return self.status == ClaimStatus.CLOSED

    @property
    def key_prefix(self) -> str:
        return self.number.lower()

    def move(self, to: ClaimStatus, verb: str) -> None:
        self.status = ClaimStatus.move(f"claim {self.number}", self.status, to, verb)


def claim_by_number(session: Session, number: object) -> WarrantyClaim:
    wanted = str(number).strip().upper()
    if not CLAIM_NUMBER.fullmatch(wanted):
        raise NotFound("warranty claim", printable(number, 40))
    claim = session.scalars(select(WarrantyClaim).where(WarrantyClaim.number == wanted)).one_or_none()
    if claim is None:
        raise NotFound("warranty claim", wanted)
    return claim


def claims_of(session: Session, serial: Serial) -> list[WarrantyClaim]:
    return list(session.scalars(select(WarrantyClaim).where(WarrantyClaim.serial_id == serial.id)
                                .order_by(WarrantyClaim.id)))


def open_claim(session: Session, serial: Serial, issue: object, by: str, today: date | None = None) -> WarrantyClaim:
    """A claim on a unit that is out with its customer, within its warranty; refused in one line,
    with nothing written, after the warranty's end, for a unit without one, or one not shipped,
    or while another claim of it is open."""
    from .claim_mail import opened_mail
    from .serials import record_event

    text = bounded(issue, "issue", 2000).strip()
    if not text:
        raise ValidationError("issue", "say what is wrong with the machine")
    today = today or utcnow().date()
    if serial.status != "shipped" or serial.deal_id is None:
        raise DomainError(f"{serial.serial}: it is {serial.status.replace('_', ' ')}, not with a customer; a "
                          f"warranty claim is for a unit the customer has")
    if serial.warranty_end is None:
        raise DomainError(f"{serial.serial}: {serial.product.sku} has no warranty")
    if serial.warranty_end < today:
        raise DomainError(f"{serial.serial}: its warranty ended on {serial.warranty_end.isoformat()} "
                          f"({(today - serial.warranty_end).days} days ago); a claim is refused")
    other = session.scalars(select(WarrantyClaim.number).where(WarrantyClaim.serial_id == serial.id,
                                                               WarrantyClaim.status != ClaimStatus.CLOSED)).first()
    if other is not None:
        raise DomainError(f"{serial.serial}: claim {other} is still open for it")
    claim = WarrantyClaim(number=next_number(session, "claim"), serial=serial, deal_id=serial.deal_id,
                          customer_id=serial.customer_id, issue=text, warranty_end=serial.warranty_end, opened_by=by)
    session.add(claim)
    session.flush()
    record_event(session, serial, "claim_opened", claim.number, by, deal=claim.deal)
    audit.record(session, by, "claim.opened", deal_id=claim.deal_id, subject=claim.number, serial=serial.serial,
                 issue=text)
    opened_mail(session, claim)
    return claim


def diagnose(session: Session, claim: WarrantyClaim, by: StaffUser, diagnosis: str, resolution: str) -> str:
    """The engineer's diagnosis: repair on site, or a return (authorized by this diagnosis, without
    a credit note: the RMA goes to the customer now)."""
    from .claim_mail import diagnosed_mail
    from .return_steps import authorize
    from .returns import start_return

    if not diagnosis.strip():
        raise ValidationError("diagnosis", "say what is wrong")
    if resolution not in RESOLUTIONS:
        raise ValidationError("resolution", "must be repair_on_site or return")
    claim.move(ClaimStatus.DIAGNOSED, "diagnose")
    claim.diagnosis, claim.resolution, claim.diagnosed_by = diagnosis, resolution, by.handle
    outcome = f"{claim.number}: {resolution.replace('_', ' ')}"
    if resolution == "return":
        ret = start_return(session, claim.deal, [{"sku": claim.serial.product.sku, "quantity": 1,
                                                  "serials": [claim.serial.serial]}],
                           _return_reason(claim), by.handle, with_credit=False)
        authorize(session, ret, by, "0", f"Warranty claim {claim.number}: {diagnosis}")
        claim.ret = ret
        outcome += f" under {ret.number}"
    audit.record(session, by.handle, "claim.diagnosed", deal_id=claim.deal_id, subject=claim.number,
                 diagnosis=diagnosis, resolution=resolution)
    diagnosed_mail(session, claim)  # before the RMA its caller sends, which this mail announces
    return outcome


def _return_reason(claim: WarrantyClaim) -> str:
    """The return's reason from the claim's issue: one line of at most 500 characters, as a return's
    reason must be (``start_return``); the issue may span lines and run to 2000 (the claim keeps it
    whole), which refused the diagnosis 'return' in one line the engineer could not change."""
    from .returns import REASON_MAX

    reason = " ".join(f"Warranty claim {claim.number}: {claim.issue}".split())
    return reason if len(reason) <= REASON_MAX else reason[:REASON_MAX - 1] + "…"


def close_claim(session: Session, claim: WarrantyClaim, by: StaffUser, note: str) -> None:
    from .claim_mail import closed_mail
    from .serials import record_event

    if not note.strip():
        raise ValidationError("note", "say how it was resolved")
    ret = claim.ret
    if ret is not None and ret.status not in (ReturnStatus.INSPECTED, ReturnStatus.CLOSED):
        raise DomainError(f"note: return {ret.number} is {ret.status}; close the claim once the unit is back "
                          f"and inspected")
    if ret is not None and ret.to_ship_back:
        raise DomainError(f"note: return {ret.number} has {ret.to_ship_back} repaired unit(s) to ship back; close "
                          f"the claim once they have shipped back to the customer")
    claim.move(ClaimStatus.CLOSED, "close")
    claim.close_note, claim.closed_by, claim.closed_at = note, by.handle, utcnow()
    record_event(session, claim.serial, "claim_closed", claim.number, by.handle, deal=claim.deal)
    audit.record(session, by.handle, "claim.closed", deal_id=claim.deal_id, subject=claim.number, note=note)
    closed_mail(session, claim)
