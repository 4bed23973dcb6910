"""What a customer does through the personal link in an estimate, invoice or credit note email:
read the estimate, the invoice or the credit note, download its PDF, answer the estimate, ask for
a new one once it expired; and a colleague's dated link to a document's PDF.

The customer is named by the link (``models.customer_links.Link``: the deal, the document and
the contact it was sent to), which the door has verified with the installation's secret before
anything is looked up. A link that names nothing the customer may see raises ``NotFound``. The
answer is not recorded here: it is signed and handed to the deal's run (by the door, through
Prefect), and the flow checks it and records it as the customer's own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Document
from models.base import utcnow
from models.customer_answers import ask_for_renewal as ask_owner_for_renewal
from models.customer_answers import check_typed, describe_decision, last_refusal, renewal_asked, run_input
from models.customer_links import (
    EstimateState,
    Link,
    decision_wait,
    estimate_state,
    link_token,
    linked_credit_note,
    linked_invoice,
)
from models.deal import Wait
from models.documents import invoice_balance
from models.errors import NotFound, ValidationError
from models.states import RevisionStatus
from services.config import Settings, load_settings

from .uow import unit_of_work

# what a page says after a submit (``?done=``), if the revision really has that answer
THANKS = {"accept": (RevisionStatus.APPROVED, "accepted"), "request_changes": (RevisionStatus.CHANGES_REQUESTED, "changes"),
          "decline": (RevisionStatus.DECLINED, "declined")}


# --- reading ------------------------------------------------------------------------------------------

def estimate_page(link: Link, done: str = "") -> dict[str, Any]:
    """What the estimate's page shows: the document as sent (``doc``), where it stands (``state``:
    open, answered, superseded, expired, closed; ``latest`` revision), the decision taken
    (``answered``), the order it became (``order``), when a new one was asked for (``renewal``)
    and what to say after a submit (``notice``, from ``done``)."""
    with unit_of_work() as s:
        return _estimate_page(s, estimate_state(s, link), done)


def invoice_page(link: Link, secret: bytes | None = None) -> dict[str, Any]:
    """What the page of an invoice (final or deposit) shows: the document as sent (``doc``; a
    final invoice's names the deposit it deducts), its ``balance`` today, the ``payments``
    received, once it is cancelled the ``credit_note`` that did it, and the other
    ``credit_notes`` issued against it (a return's) with their sum ``credited``. With the
    portal's ``secret``, each of those carries ``token``: its own page's link, for the contact
    the invoice's link is for (the page links to it as ``/c/<token>``)."""
    with unit_of_work() as s:
        invoice = linked_invoice(s, link)
        shown = {"doc": _context(s, _invoice_kind(invoice), invoice.number), **invoice_balance(invoice, utcnow().date())}
        for note in shown["credit_notes"]:
            note["token"] = (link_token(secret, Link("credit_note", link.deal, note["number"], link.contact))
                             if secret else "")
        return shown


def credit_note_page(link: Link) -> dict[str, Any]:
    """What the page of a credit note shows: the document as sent (``doc``: a return's names the
    goods received with their serial numbers, the restocking fee and the amount credited; a
    cancel's, the invoice it reverses) and, when its money was kept as credit, what is on the
    customer's account in its currency today (``credit_on_account``, None otherwise)."""
    from models.credit_notes import credit_balance

    with unit_of_work() as s:
        note = linked_credit_note(s, link)
        on_account = credit_balance(s, note.customer, note.deal.currency) if note.kept_as_credit > 0 else None
        return {"doc": _context(s, "credit_note", note.number),
                "credit_on_account": str(on_account) if on_account is not None else None}


def linked_pdf(link: Link, settings: Settings | None = None) -> dict[str, Any]:
    """The PDF of the estimate, invoice or credit note a link names, as attached to its email:
    ``number``, ``pdf``."""
    with unit_of_work() as s:
        if link.kind == "invoice":
            invoice = linked_invoice(s, link)
            kind, number = _invoice_kind(invoice), invoice.number
        elif link.kind == "credit_note":
            kind, number = "credit_note", linked_credit_note(s, link).number
        else:
            kind, number = "estimate", estimate_state(s, link).revision.number
        pdf = _pdf(s, kind, number, settings)
        if pdf is None:
            raise NotFound("document", number)
        return {"number": number, "pdf": pdf}


def document_pdf(document_id: int, settings: Settings | None = None) -> dict[str, Any]:
    """A document's PDF for a colleague's dated link (checked by the door): ``number``, ``pdf``."""
    with unit_of_work() as s:
        doc = s.get(Document, document_id)
        pdf = _pdf(s, doc.kind, doc.number, settings) if doc is not None else None
        if pdf is None:
            raise NotFound("document", document_id)
        return {"number": doc.number, "pdf": pdf}


def wait_status(wait_id: int) -> str:
    """Where the wait for the customer's answer stands: open (the flow has not recorded the answer
    yet), answered or refused."""
    with unit_of_work() as s:
        return s.get(Wait, wait_id).status


# --- acting -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """A customer's answer to an estimate, made ready for the deal's run, or why not.

    ``outcome``: "ready" (``run_input``, signed, for the run ``flow_run_id`` waiting at the wait
    ``key``/``wait_id`` of ``deal``); "not_open" (answered meanwhile, replaced, expired: the page
    says which); "invalid" (what they typed breaks a rule: ``error``, said on the ``page`` as it
    stands); "not_waiting" (the deal's run does not wait for this answer now)."""
    outcome: str
    deal: str = ""
    key: str = ""
    step: str = ""
    flow_run_id: str | None = None
    wait_id: int | None = None
    run_input: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    page: dict[str, Any] = field(default_factory=dict)


def answer_estimate(link: Link, action: str, typed: dict[str, str], *, secret: bytes, ip: str, user_agent: str,
                    settings: Settings | None = None) -> Answer:
    """The customer's ``action`` (accept, request_changes, decline) with what they typed, checked
    and signed (with their address, browser and the SHA-256 of the PDF they were shown) for the
    deal's run; nothing is written."""
    with unit_of_work() as s:
        state = estimate_state(s, link)
        if not state.is_open:
            return Answer("not_open")
        try:
            check_typed(action, typed)  # what the customer can correct is said first
        except ValidationError as exc:
            return Answer("invalid", error=str(exc), page=_estimate_page(s, state))
        wait = decision_wait(state.deal, state.revision)
        if wait is None or not wait.flow_run_id:
            return Answer("not_waiting")
        pdf = _pdf(s, "estimate", state.revision.number, settings) or b""
        signed = run_input(secret, state, wait, action, typed, ip=ip, user_agent=user_agent,
                           pdf_sha256=hashlib.sha256(pdf).hexdigest())
        return Answer("ready", state.deal.number, wait.key, wait.step, wait.flow_run_id, wait.id, signed)


def ask_for_renewal(link: Link, settings: Settings | None = None) -> dict[str, Any]:
    """The customer asks for a new estimate on an expired one: a note to the deal's owner, once per
    revision (on the record as the customer's), sent at once; if the mail server cannot take it,
    it waits in the outbox for the outbox run. Asked of an estimate that is not expired, or a
    second time: nothing. Returns ``mail`` (the note's id, None if none was written now) and
    ``error`` (why it was not sent now, or None)."""
    from services.mailer import deliver

    with unit_of_work() as s:
        state = estimate_state(s, link)
        mail = ask_owner_for_renewal(s, state) if state.state == "expired" else None
        if mail is None:
            return {"mail": None, "error": None}
        mail_id = mail.id
        s.commit()  # the note is in the outbox before it is sent
        try:
            deliver(s, email_ids=[mail_id], settings=settings)
        except Exception as exc:  # noqa: BLE001 - the outbox run sends it later
            s.rollback()
            return {"mail": mail_id, "error": str(exc)}
        return {"mail": mail_id, "error": None}


# --- what the pages share -----------------------------------------------------------------------------

def _estimate_page(s: Session, state: EstimateState, done: str = "") -> dict[str, Any]:
    rev, deal = state.revision, state.deal
    order = deal.order
    return {"doc": _context(s, "estimate", rev.number), "state": state.state, "latest": state.latest,
            "answered": describe_decision(rev) if state.state == "answered" else None,
            "order": order.number if order is not None and order.estimate_revision_id == rev.id else None,
            "renewal": renewal_asked(s, rev) if state.state == "expired" else None,
            "notice": _notice(state, done)}


def _notice(state: EstimateState, done: str) -> str:
    """What the page says after a submit (``?done=``), only if it is still true: a thank-you for an
    answer the revision really has, "being recorded" while it waits, why it was refused."""
    if done in THANKS and state.revision.status == THANKS[done][0]:
        return THANKS[done][1]
    if done == "pending" and state.is_open:
        return "pending"
    if done == "refused" and state.is_open:
        return "refused:" + last_refusal(state.deal, state.revision)
    return ""


def _invoice_kind(invoice) -> str:
    """The kind of document an invoice was issued as: its deposit invoice, or the invoice."""
    return "deposit_invoice" if invoice.is_deposit else "invoice"


def _document(s: Session, kind: str, number: str) -> Document | None:
    return s.scalars(select(Document).where(Document.kind == kind, Document.number == number)).one_or_none()


def _context(s: Session, kind: str, number: str) -> dict[str, Any]:
    """The document as it was sent (its stored context); NotFound if it was never made."""
    doc = _document(s, kind, number)
    if doc is None:
        raise NotFound("document", number)
    return dict(doc.context)


def _pdf(s: Session, kind: str, number: str, settings: Settings | None) -> bytes | None:
    """The document's PDF, as attached to its email (the same file: its SHA-256 is what the
    customer's acceptance records); None if it was never made."""
    from services.mailer import write_document

    doc = _document(s, kind, number)
    if doc is None:
        return None
    _, pdf = write_document(doc, settings or load_settings())
    return pdf.read_bytes()

