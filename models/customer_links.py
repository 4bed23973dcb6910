"""The signed links in the estimate, invoice and credit note emails, and what a link opens.

A **link** names the deal, the document (an estimate's revision, an invoice or a credit note) and
the contact it was sent to. Its HMAC-SHA256 (with a secret the caller passes in, derived from this
installation's key: ``services.keys.portal_secret``; this module never reads keys itself) makes
it unguessable; it is checked before anything is looked up, and a link that does not verify is
"not found". A colleague's link to a document's PDF is signed and dated. What the customer
answers through a link is ``models.customer_answers``'.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from .base import utcnow
from .billing import Invoice
from .crm import Contact
from .deal import Deal, Wait, deal_by_number
from .errors import NotFound
from .estimates import EstimateRevision
from .states import RevisionStatus

if TYPE_CHECKING:
    from .credit_notes import CreditNote

LINK_SALT = "dealflow.portal.link.v1"
INVOICE_LINK_DAYS = 365  # an invoice's page stays readable this long after its due date
CREDIT_NOTE_LINK_DAYS = 365  # a credit note's page stays readable this long after it was issued
KINDS = ("estimate", "invoice", "credit_note")
DOCUMENT_SALT = "dealflow.portal.document.v1"
DOCUMENT_LINK_DAYS = 7  # a colleague's link to a document (from the deal's page) opens this long


@dataclass(frozen=True)
class Link:
    """What a link names: ``kind`` estimate (``ref`` = the revision number), invoice (``ref`` =
    the invoice number, a deposit invoice's too) or credit_note (``ref`` = its number), the deal
    and the contact it was sent to."""
    kind: str
    deal: str
    ref: str
    contact: int


def serializer(secret: bytes, salt: str) -> URLSafeSerializer:
    """What signs a link, or a customer's answer (each with its own salt): HMAC-SHA256."""
    return URLSafeSerializer(secret, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


def link_token(secret: bytes, link: Link) -> str:
    return serializer(secret, LINK_SALT).dumps([link.kind, link.deal, link.ref, link.contact])


def read_link(secret: bytes, token: str) -> Link | None:
    """The link a token names, or None if it does not verify (tampered, made with another key,
    or not a token at all)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 400:
        return None
    try:
        kind, deal, ref, contact = serializer(secret, LINK_SALT).loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    if kind not in KINDS or not isinstance(contact, int) or not isinstance(ref, str):
        return None
    link = Link(kind, str(deal), ref, contact)
    # only the token as it was made: base64's spare bits would let a changed last character verify
    return link if hmac.compare_digest(link_token(secret, link), token) else None


def _timed(secret: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=DOCUMENT_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def document_token(secret: bytes, document_id: int) -> str:
    """A short-lived link to one document's PDF, for the team (the deal's page in the Prefect UI):
    signed with the installation's key and dated, so it opens for ``DOCUMENT_LINK_DAYS``."""
    return _timed(secret).dumps(document_id)


def read_document_token(secret: bytes, token: str, max_age_days: int = DOCUMENT_LINK_DAYS) -> int | str | None:
    """The document a token names; "expired" for a genuine token past its days; None if it does not
    verify (tampered, another key, not a token)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 200:
        return None
    try:
        document_id = _timed(secret).loads(token, max_age=max_age_days * 86400)
    except SignatureExpired:
        return "expired"
    except (BadSignature, ValueError, TypeError):
        return None
    # (a token whose signature differs in base64's spare bits opens the same document, as long)
    return document_id if isinstance(document_id, int) and not isinstance(document_id, bool) else None


def contact_for(deal: Deal, email: str) -> Contact | None:
    """The customer's contact a mail to ``email`` went to (the primary one if none matches)."""
    customer = deal.customer
    if customer is None or not customer.contacts:
        return None
    wanted = email.strip().lower()
    return next((c for c in customer.contacts if c.email.strip().lower() == wanted), customer.primary_contact)


def estimate_link(rev: EstimateRevision, email: str) -> Link | None:
    contact = contact_for(rev.estimate.deal, email)
    return Link("estimate", rev.estimate.deal.number, str(rev.revision), contact.id) if contact else None


def invoice_link(invoice: Invoice, email: str) -> Link | None:
    contact = contact_for(invoice.deal, email)
    return Link("invoice", invoice.deal.number, invoice.number, contact.id) if contact else None


def credit_note_link(note: CreditNote, email: str) -> Link | None:
    contact = contact_for(note.deal, email)
    return Link("credit_note", note.deal.number, note.number, contact.id) if contact else None


def _linked_deal(session: Session, link: Link) -> tuple[Deal, Contact]:
    """The deal and contact a verified link names; NotFound if either is gone or they do not
    belong together (a link never shows another customer's deal)."""
    deal = deal_by_number(session, link.deal)
    contact = session.get(Contact, link.contact)
    if contact is None or deal.customer_id is None or contact.customer_id != deal.customer_id:
        raise NotFound("link", "?")
    return deal, contact


@dataclass(frozen=True)
class EstimateState:
    """Where the revision a link names stands, for the page the customer sees.

    ``state``: open (the customer may answer), answered, superseded (a newer revision was sent),
    expired (past its validity, unanswered), closed (the deal ended otherwise)."""
    state: str
    deal: Deal
    revision: EstimateRevision
    contact: Contact
    latest: int

    @property
    def is_open(self) -> bool:
        return self.state == "open"


def estimate_state(session: Session, link: Link, today: date | None = None) -> EstimateState:
    if link.kind != "estimate" or not link.ref.isdigit():
        raise NotFound("link", "?")
    deal, contact = _linked_deal(session, link)
    estimate = deal.estimate
    revs = {r.revision: r for r in estimate.revisions} if estimate else {}
    rev = revs.get(int(link.ref))
    if rev is None or rev.sent_at is None:  # a draft, or one a manager sent back: never the customer's
        raise NotFound("link", "?")
    latest = max(r for r, x in revs.items() if x.sent_at is not None)
    today = today or utcnow().date()
    if rev.revision < latest:
        state = "superseded"
    elif rev.status != RevisionStatus.SENT:
        state = "answered"
    elif not deal.is_open:
        state = "closed"
    elif rev.is_expired(today):
        state = "expired"
    else:
        state = "open"
    return EstimateState(state, deal, rev, contact, latest)


def linked_invoice(session: Session, link: Link, today: date | None = None) -> Invoice:
    """The invoice a link names: the deal's final invoice or its deposit invoice, by number (only
    one of that deal's own)."""
    if link.kind != "invoice":
        raise NotFound("link", "?")
    deal, _ = _linked_deal(session, link)
    invoice = next((inv for inv in deal.invoices if inv.number == link.ref), None)
    if invoice is None:
        raise NotFound("link", "?")
    if (today or utcnow().date()) > invoice.due_date + timedelta(days=INVOICE_LINK_DAYS):
        raise NotFound("link", "?")
    return invoice


def linked_credit_note(session: Session, link: Link, today: date | None = None) -> CreditNote:
    """The credit note a link names, by number (only one of that deal's own), for
    ``CREDIT_NOTE_LINK_DAYS`` after it was issued."""
    if link.kind != "credit_note":
        raise NotFound("link", "?")
    deal, _ = _linked_deal(session, link)
    note = next((n for n in deal.credit_notes if n.number == link.ref), None)
    if note is None or (today or utcnow().date()) > note.at.date() + timedelta(days=CREDIT_NOTE_LINK_DAYS):
        raise NotFound("link", "?")
    return note


def decision_key(revision: int) -> str:
    """The key of the wait for the customer's decision on a revision (then -retry-N after refusals)."""
    return f"decision-rev-{revision}"


def is_decision_on(key: str, revision: int) -> bool:
    return re.fullmatch(rf"{decision_key(revision)}(-retry-\d+)?", key) is not None


def decision_wait(deal: Deal, rev: EstimateRevision) -> Wait | None:
    """The deal's open wait for the customer's decision on ``rev``, if it waits for it now."""
    wait = deal.open_wait
    if wait is None or wait.step != "decision" or not is_decision_on(wait.key, rev.revision):
        return None
    return wait
