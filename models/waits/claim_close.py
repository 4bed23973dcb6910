"""An engineer closes a warranty claim with a note, once it is repaired (on site, or its return
received and inspected)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from sqlalchemy.orm import Session

from ..markdown import Markdown
from ..reminders import STUCK_WAIT
from ..return_steps import outcome_words
from ..staff import Role, StaffUser
from ..states import ClaimStatus
from ..typed import notes_of
from ..warranty import WarrantyClaim, close_claim
from .claim_diagnose import claim_header
from .forms import Fields
from .kind import WaitKind
from .of_case import case_key, case_of_key


class ClaimCloseFields(Fields):
    """Close the claim: how it was resolved."""
    note: str = Field(title="Note", description="How it was resolved (parts replaced, work done).")
    required_fields: ClassVar[list[str]] = ["note"]


def at(claim: WarrantyClaim) -> dict[str, Any] | None:
    return {} if claim.status == ClaimStatus.DIAGNOSED else None


def describe(session: Session, claim: WarrantyClaim) -> Markdown:
    how = (Markdown("returned under {}: {}").format(claim.ret.number, outcome_words(claim.ret))
           if claim.ret is not None else Markdown("to be repaired on site"))
    # the diagnosis as its own paragraph: typed text, whatever it ends with, never runs into ours
    return Markdown("close the warranty claim {} once it is repaired ({}), with a note of how.\n\n"
                    "Diagnosis by {}: {}\n\n{}").format(
        claim.number, how, claim.diagnosed_by or "?", claim.diagnosis, claim_header(claim))


def answer(session: Session, claim: WarrantyClaim, person: StaffUser, answer: dict[str, Any]) -> str:
    close_claim(session, claim, person, notes_of(answer, "note", 4000).strip())
    return f"{claim.number} closed"


CLAIM_CLOSE = WaitKind(
    name="claim_close", title="closing a warranty claim", roles=(Role.SALES_ENGINEER,),
    at=at, key=case_key("close"), fields=ClaimCloseFields, describe=describe, answer=answer,
    reminder=STUCK_WAIT, case="claim", subject=case_of_key)
