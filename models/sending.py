"""Issuing a document to the customer: the document, its email and the audit record, in one
call, each at most once (the document by its kind and number, the email by its dedupe key), so
a step that runs again sends nothing twice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from . import audit
from .outbox import Document, add_document, queue_email

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from .deal import Deal
    from .portal import Link

SYSTEM = "system"


def issue_document(session: Session, deal: Deal, kind: str, number: str, context: dict[str, Any], subject: str, *,
                   link: Callable[[str], Link | None] | None = None, event: str | None = None,
                   by: str = SYSTEM, **details: Any) -> Document:
    """Render ``documents/KIND.html`` for the deal as ``number``, mail it to the customer with
    ``subject`` (``link`` names the customer's personal link to the portal, signed only when the
    mail is rendered, see ``services.links``), and record ``event`` in the audit log with
    ``details``, if given."""
    doc = add_document(session, deal.id, kind, number, f"documents/{kind}.html", context)
    to = doc.context["customer"]["email"]
    named = link(to) if link else None
    queue_email(session, deal_id=deal.id, dedupe_key=f"{kind}:{number}", kind=kind, to_addr=to, subject=subject,
                template=f"emails/{kind}",
                context={**doc.context, "portal_link": asdict(named)} if named else doc.context, document=doc)
    if event:
        audit.record(session, by, event, deal_id=deal.id, subject=number, **details)
    return doc
