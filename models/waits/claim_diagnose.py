"""An engineer diagnoses a warranty claim: repair on site, or a return of the unit (authorized by
this diagnosis: the customer gets the RMA; never credited)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from ..markdown import Markdown
from ..reminders import STUCK_WAIT
from ..staff import Role, StaffUser
from ..states import ClaimStatus
from ..typed import line_of, notes_of
from ..warranty import RESOLUTION_WORDS, RESOLUTIONS, WarrantyClaim, diagnose
from .forms import Fields
from .kind import WaitKind
from .of_case import case_key, case_of_key


class ClaimDiagnoseFields(Fields):
    """Diagnose the claim: what is wrong, and repair on site or return the unit."""
    diagnosis: str = Field(title="Diagnosis", description="What is wrong with the machine.")
    resolution: Literal[(*RESOLUTION_WORDS, *RESOLUTIONS)] = Field(  # type: ignore[valid-type]
        title="Resolution", description="repair on site, or return it for repair (the customer gets an RMA).")
    words: ClassVar[dict[str, dict[str, str]]] = {"resolution": RESOLUTION_WORDS}
    required_fields: ClassVar[list[str]] = ["diagnosis"]


def at(claim: WarrantyClaim) -> dict[str, Any] | None:
    return {} if claim.status == ClaimStatus.OPEN else None


def claim_header(claim: WarrantyClaim) -> Markdown:
    serial = claim.serial
    return Markdown("**{}**: {} serial **{}**, shipped {} on order {}, warranty until {}. The customer says: {}").format(
        claim.number, serial.product.sku, serial.serial, serial.shipped_on.isoformat() if serial.shipped_on else "?",
        claim.deal.order.number, claim.warranty_end.isoformat(), claim.issue)


def describe(session: Session, claim: WarrantyClaim) -> Markdown:
    return Markdown("diagnose the warranty claim {}: say what is wrong, and repair it on site or have it "
                    "returned.\n\n{}").format(claim.number, claim_header(claim))


def answer(session: Session, claim: WarrantyClaim, person: StaffUser, answer: dict[str, Any]) -> str:
    from ..return_steps import send_rma

    outcome = diagnose(session, claim, person, notes_of(answer, "diagnosis", 4000).strip(),
                       line_of(answer, "resolution", 20, required=True))
    if claim.ret is not None:
        send_rma(session, claim.ret)
    return outcome


CLAIM_DIAGNOSE = WaitKind(
    name="claim_diagnose", title="a warranty claim's diagnosis", roles=(Role.SALES_ENGINEER,),
    at=at, key=case_key("diagnose"), fields=ClaimDiagnoseFields, describe=describe, answer=answer,
    reminder=STUCK_WAIT, case="claim", subject=case_of_key)
