"""What the wait kinds of a case (a return, a warranty claim: ``models.cases``) share: the case a
wait is of, found from its key, and how its goods are shown on a form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from ..case_numbers import case_by_number
from ..errors import DomainError
from ..markdown import Markdown, table

if TYPE_CHECKING:
    from ..deal import Deal
    from ..returns import ReturnOrder


def case_of_key(session: Session, deal: Deal, key: str) -> Any:
    """The case a wait's key (``rma-0001-receive``, ``wc-0002-close-retry-1``) is of, on this deal."""
    number = "-".join(key.split("-")[:2]).upper()
    case = case_by_number(session, number)
    if case.deal_id != deal.id:
        raise DomainError(f"{number} is not of {deal.number}")
    return case


def case_key(suffix: str):
    """A case wait's key from its facts: ``rma-0001-receive``."""
    return lambda facts: f"{facts['case'].lower()}-{suffix}"


def goods(ret: ReturnOrder, received: bool = False) -> Markdown:
    """The return's lines: what comes back (or came back), with serial numbers."""
    rows = []
    for ln in ret.lines:
        serials = [rs.serial.serial for rs in ln.serials if rs.received or not received]
        rows.append([ln.sku, ln.order_line.description, ln.received_qty if received else ln.quantity,
                     ", ".join(serials) or "—"])
    return table(["Product", "Description", "Received" if received else "Qty", "Serial numbers"], rows,
                 align=["---", "---", "---:", "---"])


def header(ret: ReturnOrder) -> Markdown:
    kind = "warranty return" if not ret.with_credit else "return"
    return Markdown("**{}** ({} of order {}, asked for by {} on {}): {}").format(
        ret.number, kind, ret.deal.order.number, ret.requested_by, ret.requested_at.date().isoformat(), ret.reason)
