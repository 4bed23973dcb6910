"""What the customer is told of a warranty claim: one email when it is opened, one when it is
diagnosed, one when it is closed (no document: a claim is not an official paper).

Each email is queued in the transaction of the step that causes it, under a dedupe key naming the
claim and the step (``claim_opened:WC-0001``), so a step run again sends nothing again. A claim
returned for repair also gets the RMA (``return_steps.send_rma``, queued after the diagnosis):
the diagnosis email says that it follows and does not repeat it. What people typed (the issue, the
diagnosis, the close note) is carried as typed; the HTML templates escape it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

if TYPE_CHECKING:
    from .warranty import WarrantyClaim

# what the engineer decided, as the customer reads it
RESOLUTION_FOR_CUSTOMER = {"repair_on_site": "repair at your site", "return": "return to us for repair"}


def _staff_name(session: Session, handle: str | None) -> str:
    from .staff import StaffUser

    if not handle:
        return ""
    return session.scalars(select(StaffUser.name).where(StaffUser.handle == handle)).first() or ""


def _claim_base(claim: WarrantyClaim, kind: str) -> dict[str, Any]:
    """The email's common part: the customer and seller as the documents have them, the claim's
    number, its unit (product, serial) and the issue as the customer gave it."""
    from .documents import _base

    serial = claim.serial
    ctx = _base(claim.deal, kind, claim.number)
    ctx.update({"order": claim.deal.order.number if claim.deal.order is not None else "",
                "unit": {"sku": serial.product.sku, "description": serial.product.name, "serial": serial.serial},
                "issue": claim.issue, "warranty_end": claim.warranty_end.isoformat(),
                "opened_on": claim.opened_at.date().isoformat()})
    return ctx


def claim_opened_context(claim: WarrantyClaim) -> dict[str, Any]:
    """The acknowledgement: the claim's number, the unit, the issue, the warranty's end, what next."""
    return _claim_base(claim, "claim_opened")


def claim_diagnosed_context(claim: WarrantyClaim) -> dict[str, Any]:
    """The diagnosis and what is done about it (``resolution``: repair_on_site or return; with a
    return, ``rma`` is its number: the RMA itself goes in its own email)."""
    ctx = _claim_base(claim, "claim_diagnosed")
    ctx.update({"diagnosis": claim.diagnosis, "resolution": claim.resolution,
                "resolution_words": RESOLUTION_FOR_CUSTOMER[claim.resolution],
                "rma": claim.ret.number if claim.ret is not None else "",
                "engineer": _staff_name(object_session(claim), claim.diagnosed_by)})
    return ctx


def claim_closed_context(claim: WarrantyClaim) -> dict[str, Any]:
    """The claim closed: the engineer's note of how it was resolved (and its return, if any)."""
    ctx = _claim_base(claim, "claim_closed")
    ctx.update({"note": claim.close_note, "diagnosis": claim.diagnosis,
                "closed_on": claim.closed_at.date().isoformat() if claim.closed_at else "",
                "rma": claim.ret.number if claim.ret is not None else "",
                "engineer": _staff_name(object_session(claim), claim.closed_by)})
    return ctx


def _queue(session: Session, claim: WarrantyClaim, step: str, context: dict[str, Any], subject: str) -> None:
    from .outbox import queue_email

    queue_email(session, deal_id=claim.deal_id, dedupe_key=f"claim_{step}:{claim.number}", kind=f"claim_{step}",
                to_addr=context["customer"]["email"], subject=subject, template=f"emails/claim_{step}",
                context=context)


def _unit(claim: WarrantyClaim) -> str:
    # short: a subject over a header line's 78 characters is folded, and some readers show it
    # with a leading space
    return f"serial {claim.serial.serial}"


def opened_mail(session: Session, claim: WarrantyClaim) -> None:
    _queue(session, claim, "opened", claim_opened_context(claim),
           f"Warranty claim {claim.number} received ({_unit(claim)})")


def diagnosed_mail(session: Session, claim: WarrantyClaim) -> None:
    _queue(session, claim, "diagnosed", claim_diagnosed_context(claim),
           f"Warranty claim {claim.number}: diagnosis ({_unit(claim)})")


def closed_mail(session: Session, claim: WarrantyClaim) -> None:
    _queue(session, claim, "closed", claim_closed_context(claim),
           f"Warranty claim {claim.number} closed ({_unit(claim)})")
