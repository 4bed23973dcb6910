"""The customer's own answers, from the signed link in the estimate email (the portal).

A **customer answer** is made by the portal when the customer presses Accept, Request changes or
Decline: the deal, the wait it answers, the revision, the contact, what they typed, their IP
address and user agent, the SHA-256 of the PDF they were shown, the time and a nonce, signed with
a secret the caller passes in. It travels to the flow inside the resume's input; the flow checks
it after the resume (this deal, this wait, the current revision, not expired, never used) and
records it as the customer's own.

What the customer may type is checked here, once, for the portal (before it resumes the deal)
and for the flow (after): ``check_typed``. A decision is taken once: the revision's own state
makes the first answer win (online or recorded by sales from a phone call), and a revision has
at most one online answer (a unique constraint). A customer may also ask for a new estimate on
an expired one (``ask_for_renewal``).
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from itsdangerous import BadSignature
from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, backref, mapped_column, relationship

from . import audit
from .base import Base, utcnow
from .crm import Contact
from .customer_links import EstimateState, is_decision_on, serializer
from .deal import Deal, Wait
from .errors import InvalidTransition, ValidationError
from .estimates import EstimateRevision
from .outbox import Email, queue_email
from .proof import ProofRefused
from .states import RevisionStatus, WaitStatus
from .text import bounded, one_line, printable

ANSWER_SALT = "dealflow.portal.answer.v1"
ACTIONS = {"accept": "approve", "request_changes": "request_changes", "decline": "decline"}
BY_LINK = "signed link"  # how a customer's answer is proven, as the wait and the audit log record it
RENEWAL = "estimate-renewal"  # the outbox key of a customer's request for a new estimate
DONE = {"accept": "accepted", "request_changes": "asked for changes", "decline": "declined"}  # in words
MAX_NAME, MAX_PO, MAX_CHANGES, MAX_REASON = 120, 60, 4000, 2000


class CustomerAnswer(Base):
    """What the customer answered online, with what proves it was them and what they saw."""

    __tablename__ = "customer_answers"
    __table_args__ = (
        UniqueConstraint("revision_id"),  # one online answer per revision: the first one wins
        UniqueConstraint("nonce"),
        CheckConstraint("action in ('accept','request_changes','decline')", name="action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("estimate_revisions.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    wait_key: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(MAX_NAME))
    po_number: Mapped[str] = mapped_column(String(MAX_PO), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(300))
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    nonce: Mapped[str] = mapped_column(String(40))

    revision: Mapped[EstimateRevision] = relationship(backref=backref("customer_answer", uselist=False))
    contact: Mapped[Contact] = relationship()


# --- an answer refused, a new estimate asked for -------------------------------------------------

def last_refusal(deal: Deal, rev: EstimateRevision) -> str:
    """Why the customer's own last answer to ``rev`` was refused ("" if it was not), in their terms."""
    refused = [w for w in deal.waits if w.status == WaitStatus.REFUSED and is_decision_on(w.key, rev.revision)]
    if not refused or refused[-1].proof != BY_LINK:
        return ""
    return refused[-1].refusal_reason.removeprefix("portal: ")


def ask_for_renewal(session: Session, state: EstimateState) -> Email | None:
    """The customer asks for a new estimate on an expired one: a note to the deal's owner, once
    per revision (also when pressed twice at once: the outbox's unique key). None if asked before."""
    from sqlalchemy.exc import IntegrityError

    rev, deal, contact = state.revision, state.deal, state.contact
    if state.state != "expired":
        raise InvalidTransition(f"estimate {rev.number}", state.state, "ask for a new one")
    key = f"{RENEWAL}:{rev.number}"
    if session.scalars(select(Email.id).where(Email.dedupe_key == key)).first() is not None:
        return None
    owner = deal.owner
    try:
        with session.begin_nested():
            mail = queue_email(
                session, deal_id=deal.id, dedupe_key=key, kind="renewal_request", to_addr=owner.email,
                subject=f"{deal.customer_name} asks for a new estimate: {rev.number} expired",
                template="emails/staff_reminder",
                context={"name": owner.name, "number": rev.number,
                         "title": f"{deal.customer_name} asks for a new estimate ({deal.number})",
                         "lines": [f"{rev.number} expired on {rev.valid_until} without an answer",
                                   f"{contact.name} ({contact.email}) asked for a new one from the link in the "
                                   f"estimate email",
                                   f"the deal still waits for the decision on {rev.number}: record it (decline, "
                                   f"or request_changes for a new revision)"]})
            audit.record(session, customer_actor(contact.name), "estimate.renewal_requested", deal_id=deal.id,
                         subject=rev.number, door="portal")
    except IntegrityError:  # pressed twice at once: the other press asked
        return None
    return mail


def renewal_asked(session: Session, rev: EstimateRevision) -> datetime | None:
    mail = session.scalars(select(Email).where(Email.dedupe_key == f"{RENEWAL}:{rev.number}")).one_or_none()
    return mail.created_at if mail else None


def customer_actor(name: str) -> str:
    """How the customer is named as the actor of an answer or a request (40 characters at most)."""
    return printable(f"customer: {name or 'contact'}", 40)


# --- what the customer types ---------------------------------------------------------------------

def check_typed(action: str, fields: dict[str, Any]) -> dict[str, str]:
    """The customer's typed answer, checked: one clear message naming the field and the rule."""
    if action not in ACTIONS:
        raise ValidationError("action", "must be accept, request_changes or decline")
    if action == "accept":
        name = one_line(fields.get("name"), "name", MAX_NAME)
        if len(name) < 2:
            raise ValidationError("name", "type your full name to accept (it is your signature)")
        if not fields.get("terms"):
            raise ValidationError("terms", "tick the box to accept the estimate's terms")
        return {"name": name, "po_number": one_line(fields.get("po_number"), "po_number", MAX_PO), "text": ""}
    name = one_line(fields.get("name"), "name", MAX_NAME)
    if action == "request_changes":
        text = bounded(fields.get("changes"), "changes", MAX_CHANGES)
        if not text:
            raise ValidationError("changes", "say what you would like changed")
    else:
        text = bounded(fields.get("reason"), "reason", MAX_REASON)
        if not text:
            raise ValidationError("reason", "tell us briefly why (it helps us do better)")
    return {"name": name, "po_number": "", "text": text}


@dataclass(frozen=True)
class Signed:
    """A customer's answer as the portal signed it."""
    deal: str
    wait: str
    revision: int
    contact: int
    action: str
    name: str
    po_number: str
    text: str
    ip: str
    user_agent: str
    pdf_sha256: str
    at: str  # ISO time the customer submitted it
    nonce: str

    @property
    def submitted_on(self) -> date:
        return datetime.fromisoformat(self.at).date()


def as_answered(signed: Signed) -> dict[str, Any]:
    """The decision form's fields as the customer's signed answer makes them (the decision in the
    form's words: the form's schema takes those; the flow reads them as it reads a person's)."""
    from .estimates import DECISION_WORDS

    word = next(w for w, code in DECISION_WORDS.items() if code == ACTIONS[signed.action])
    return {"by": "customer", "decision": word, "channel": "portal",
            "changes": signed.text if signed.action == "request_changes" else "",
            "reason": signed.text if signed.action == "decline" else "",
            "po_number": signed.po_number, "note": "", "name": signed.name}


def run_input(secret: bytes, state: EstimateState, wait: Wait, action: str, fields: dict[str, Any], *,
              ip: str, user_agent: str, pdf_sha256: str, now: datetime | None = None) -> dict[str, Any]:
    """The resume input the portal sends for the customer's answer: the decision form's fields
    (what the Prefect UI and the audit log show) and the signed answer the flow checks."""
    typed = check_typed(action, fields)
    signed = Signed(deal=state.deal.number, wait=wait.key, revision=state.revision.revision,
                    contact=state.contact.id, action=action, name=typed["name"] or printable(state.contact.name, MAX_NAME),
                    po_number=typed["po_number"],
                    text=typed["text"], ip=printable(ip, 64), user_agent=printable(user_agent, 300),
                    pdf_sha256=pdf_sha256, at=(now or utcnow()).isoformat(timespec="seconds"),
                    nonce=secrets.token_urlsafe(18))
    fields = {k: v for k, v in as_answered(signed).items() if k != "name"}
    return {**fields, "portal": serializer(secret, ANSWER_SALT).dumps(asdict(signed))}


def prove_customer(session: Session, deal: Deal, wait: Wait, answer: dict[str, Any], blob: object,
                   secret: bytes | None, today: date | None = None) -> Signed:
    """Check a customer's signed answer after the resume: it verifies, it was made for this deal,
    this wait and the revision that waits now, that revision has not expired, the answer sent
    is the one signed, and it was never used. ProofRefused says which failed."""
    if secret is None:
        raise ProofRefused("portal: the customer's answer cannot be checked: no secret key is set up here")
    try:
        data = serializer(secret, ANSWER_SALT).loads(str(blob)[:20000])
        signed = Signed(**data)
    except (BadSignature, TypeError, ValueError):
        raise ProofRefused("portal: the customer's signed answer does not verify", counts=False) from None
    if signed.deal != deal.number or signed.wait != wait.key:
        raise ProofRefused("portal: the signed answer was made for another deal or wait")
    rev = deal.estimate.latest if deal.estimate else None
    if rev is None or rev.revision != signed.revision or rev.status != RevisionStatus.SENT:
        raise ProofRefused(f"portal: revision {signed.revision} is no longer waiting for an answer")
    if rev.is_expired(min(today or utcnow().date(), signed.submitted_on)):  # sent in time counts
        raise ProofRefused(f"portal: estimate {rev.number} expired on {rev.valid_until}")
    if session.scalar(select(CustomerAnswer.id).where(CustomerAnswer.nonce == signed.nonce)) is not None:
        raise ProofRefused("portal: this signed answer was already used")
    expected = {k: v for k, v in as_answered(signed).items() if k != "name"}
    expected["decision"] = ACTIONS[signed.action]  # the answer is read as the flow reads it (models.process)
    if any(str(answer.get(k) or "") != str(v) for k, v in expected.items()):
        raise ProofRefused("portal: the answer sent is not the one the customer signed")
    check_typed(signed.action, {"name": signed.name, "po_number": signed.po_number, "terms": True,
                                "changes": signed.text, "reason": signed.text})
    return signed


def record_customer_answer(session: Session, deal: Deal, wait: Wait, signed: Signed) -> CustomerAnswer:
    row = CustomerAnswer(deal_id=deal.id, revision_id=deal.estimate.latest.id, contact_id=signed.contact,
                         wait_key=wait.key, action=signed.action, name=signed.name, po_number=signed.po_number,
                         text=signed.text, ip=signed.ip, user_agent=signed.user_agent,
                         pdf_sha256=signed.pdf_sha256, submitted_at=datetime.fromisoformat(signed.at),
                         nonce=signed.nonce)
    session.add(row)
    session.flush()
    return row


def answered_by_customer(signed: Signed) -> str:
    """How a customer's answer names its person on the wait."""
    return customer_actor(signed.name)


def describe_decision(rev: EstimateRevision) -> dict[str, Any]:
    """What the customer is told about a decision already taken (what, when, by whom): the
    customer's own name for an online answer, never a staff member's."""
    online = rev.customer_answer
    what = {RevisionStatus.APPROVED: "accepted", RevisionStatus.CHANGES_REQUESTED: "changes requested",
            RevisionStatus.DECLINED: "declined"}.get(rev.status, rev.status)
    if online is not None:
        return {"what": what, "when": online.submitted_at, "by": online.name or "you", "online": True,
                "po_number": online.po_number, "text": online.text}
    how = {"phone": " by phone", "email": " by email", "meeting": " in a meeting",
           "signed_document": " on a signed document"}.get(rev.decision_channel or "", "")
    # what sales typed (a reason, a note) is theirs, not shown to the customer
    return {"what": what, "when": rev.decided_at, "by": f"your answer{how}, recorded by our sales team",
            "online": False, "po_number": "", "text": ""}
