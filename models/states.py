"""The states of the eight things that have one, as enums with their transitions.

Each status column's CHECK constraint is made from its enum (``Status.check``), and every change
of state goes through ``Status.move``, which refuses a move its table does not have with the
entity's ``InvalidTransition`` ("estimate EST-0001-R2 is approved: cannot send"). The README's
table of states is ``table()`` (``tests/test_states.py`` checks it).
"""

from __future__ import annotations

from enum import StrEnum

from .errors import InvalidTransition


class Status(StrEnum):
    """A status; its moves are in ``MOVES`` (from -> the states it may go to)."""

    @classmethod
    def check(cls) -> str:
        """The column's CHECK constraint: one of the enum's values."""
        return "status in (" + ",".join(f"'{m.value}'" for m in cls) + ")"

    @classmethod
    def moves(cls) -> dict[Status, tuple[Status, ...]]:
        return MOVES[cls]

    @classmethod
    def move(cls, what: str, current: str, to: Status, verb: str) -> Status:
        """``to``, if the table lets ``what`` go there from ``current``; else InvalidTransition."""
        if to not in cls.moves().get(cls(current), ()):
            raise InvalidTransition(what, current, verb)
        return to


class LeadStatus(Status):
    NEW = "new"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    CONVERTED = "converted"


class DealStatus(Status):
    OPEN = "open"
    WON = "won"
    LOST = "lost"
    CANCELLED = "cancelled"  # a manager cancelled it before anything shipped (``dealflow deal cancel``)


class WaitStatus(Status):
    OPEN = "open"
    ANSWERED = "answered"
    REFUSED = "refused"  # a refused answer closes the wait; a new one opens under the next key
    CANCELLED = "cancelled"  # the deal was cancelled while it waited


class RevisionStatus(Status):
    DRAFT = "draft"
    RETURNED = "returned"  # a sales manager sent it back: its discount was over its preparer's limit
    SENT = "sent"
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    DECLINED = "declined"


class OrderStatus(Status):
    AWAITING_QA = "awaiting_qa"
    RELEASED = "released"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"  # cancelled before its first shipment: it reserves nothing any more


class InvoiceStatus(Status):
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    CREDITED = "credited"  # a credit note reversed it (a deposit invoice of a cancelled order)


class HoldStatus(Status):
    OPEN = "open"
    RELEASED = "released"  # finance released it with a reason: the order is made
    DEPOSIT = "deposit"  # finance asked for a deposit instead: the order is made with that deposit
    REJECTED = "rejected"  # finance rejected it: the deal is lost


class SerialStatus(Status):
    """One serialized unit (``models.serials``): in stock, with its customer, back from them, or
    out of use; the history of each move is its ``SerialEvent`` rows."""
    IN_STOCK = "in_stock"
    SHIPPED = "shipped"  # with its customer (``Serial.customer``, ``warranty_end``)
    RETURNED = "returned"  # back from its customer, not inspected yet
    SCRAPPED = "scrapped"
    IN_REPAIR = "in_repair"


class ReturnStatus(Status):
    REQUESTED = "requested"
    AUTHORIZED = "authorized"  # a manager authorized it (or a warranty claim's diagnosis did): the RMA is sent
    REFUSED = "refused"  # a manager refused it, with a reason to the customer
    RECEIVED = "received"  # delivery took the goods in
    INSPECTED = "inspected"  # QA restocked, scrapped or sent each unit to repair
    CLOSED = "closed"  # credited (if anything stays with us) and what was repaired shipped back


class ClaimStatus(Status):
    OPEN = "open"
    DIAGNOSED = "diagnosed"  # an engineer said what is wrong: repair on site, or a return
    CLOSED = "closed"


class EmailStatus(Status):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a sender; handed to the mail server once ``handed_at`` is set
    SENT = "sent"
    FAILED = "failed"


L, D, W, R, OS, IS, H, E = (LeadStatus, DealStatus, WaitStatus, RevisionStatus, OrderStatus, InvoiceStatus, HoldStatus,
                            EmailStatus)
MOVES: dict[type[Status], dict[Status, tuple[Status, ...]]] = {
    LeadStatus: {L.NEW: (L.QUALIFIED, L.DISQUALIFIED), L.QUALIFIED: (L.CONVERTED,)},
    DealStatus: {D.OPEN: (D.WON, D.LOST, D.CANCELLED)},
    WaitStatus: {W.OPEN: (W.ANSWERED, W.REFUSED, W.CANCELLED)},
    RevisionStatus: {R.DRAFT: (R.SENT, R.RETURNED), R.SENT: (R.APPROVED, R.CHANGES_REQUESTED, R.DECLINED)},
    OrderStatus: {OS.AWAITING_QA: (OS.RELEASED, OS.CANCELLED), OS.RELEASED: (OS.PARTIALLY_SHIPPED, OS.SHIPPED,
                                                                             OS.CANCELLED),
                  OS.PARTIALLY_SHIPPED: (OS.PARTIALLY_SHIPPED, OS.SHIPPED)},
    # a deposit invoice of a cancelled order is credited (reversed by a credit note), paid or not
    InvoiceStatus: {IS.OPEN: (IS.PARTIALLY_PAID, IS.PAID, IS.CREDITED),
                    IS.PARTIALLY_PAID: (IS.PARTIALLY_PAID, IS.PAID, IS.CREDITED), IS.PAID: (IS.CREDITED,)},
    HoldStatus: {H.OPEN: (H.RELEASED, H.DEPOSIT, H.REJECTED)},
    ReturnStatus: {ReturnStatus.REQUESTED: (ReturnStatus.AUTHORIZED, ReturnStatus.REFUSED),
                   ReturnStatus.AUTHORIZED: (ReturnStatus.RECEIVED,), ReturnStatus.RECEIVED: (ReturnStatus.INSPECTED,),
                   ReturnStatus.INSPECTED: (ReturnStatus.CLOSED,)},
    ClaimStatus: {ClaimStatus.OPEN: (ClaimStatus.DIAGNOSED,), ClaimStatus.DIAGNOSED: (ClaimStatus.CLOSED,)},
    # a unit ships, comes back, and is restocked, scrapped or repaired; a repaired unit goes back
    # into stock or to its customer (a warranty repair)
    SerialStatus: {SerialStatus.IN_STOCK: (SerialStatus.SHIPPED, SerialStatus.SCRAPPED, SerialStatus.IN_REPAIR),
                   SerialStatus.SHIPPED: (SerialStatus.RETURNED,),
                   SerialStatus.RETURNED: (SerialStatus.IN_STOCK, SerialStatus.SCRAPPED, SerialStatus.IN_REPAIR),
                   SerialStatus.IN_REPAIR: (SerialStatus.IN_STOCK, SerialStatus.SHIPPED, SerialStatus.SCRAPPED)},
    # a sender claims it, hands it over (sent), gives it back (the server refused for now) or
    # fails it for good; `outbox retry` puts a failed (or, forced, a stuck) one back
    EmailStatus: {E.PENDING: (E.SENDING, E.PENDING), E.SENDING: (E.SENT, E.PENDING, E.FAILED),
                  E.FAILED: (E.PENDING,)},
}
del L, D, W, R, OS, IS, H, E

# what each is the state of, as the README's table names it
OF = {LeadStatus: "lead", DealStatus: "deal", WaitStatus: "wait (a human step)", RevisionStatus: "estimate revision",
      OrderStatus: "sales order", InvoiceStatus: "invoice", HoldStatus: "credit hold",
      SerialStatus: "serial number (one unit)",
      ReturnStatus: "return (RMA)", ClaimStatus: "warranty claim", EmailStatus: "email (the outbox)"}


def table() -> str:
    """The README's table of states: each enum's states and where each may go."""
    rows = ["| of | states | moves |", "|---|---|---|"]
    for status, of in OF.items():
        moves = "; ".join(f"{a} → {', '.join(b)}" for a, b in status.moves().items())
        rows.append(f"| {of} | {', '.join(status)} | {moves} |")
    return "\n".join(rows)
