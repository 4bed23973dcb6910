"""A return or a warranty claim by its number (RMA-0001, WC-0001): the one lookup of the cases
after a sale, for their plans (``models.cases``) and their waits (``models.waits.of_case``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from .errors import NotFound
from .returns import ReturnOrder, return_by_number
from .warranty import WarrantyClaim, claim_by_number


def case_by_number(session: Session, number: object) -> ReturnOrder | WarrantyClaim:
    text = str(number).strip().upper()
    if text.startswith("RMA-"):
        return return_by_number(session, text)
    if text.startswith("WC-"):
        return claim_by_number(session, text)
    raise NotFound("return or warranty claim", text[:40])
