"""Links: the customer's personal links (the portal), made when a mail is rendered. (The team's
links to a deal's run in the Prefect UI are ``services.config.run_page``: a command on a laptop
makes them without importing the models.)

An email row keeps only what its link names (``portal_link``: the deal, the document, the
contact), never the link itself: the link is signed with this installation's key at the moment
the mail is rendered, so no table holds a working link.
"""

from __future__ import annotations

import logging
from typing import Any

from models.errors import ValidationError
from models.portal import Link, document_token, link_token

from .config import Settings, load_settings
from .keys import portal_secret

log = logging.getLogger(__name__)
PATHS = {"estimate": "e", "invoice": "i", "credit_note": "c", "document": "d"}


def url_for(link: Link, settings: Settings | None = None) -> str:
    settings = settings or load_settings()
    return f"{settings.public_url}/{PATHS[link.kind]}/{link_token(portal_secret(settings), link)}"


def url_of(claims: Any, settings: Settings | None = None) -> str | None:
    """The link an email's ``portal_link`` names, or None (an older email, or no key here: the
    mail then goes without a link rather than not at all, and the log says so)."""
    if not isinstance(claims, dict):
        return None
    try:
        return url_for(Link(**claims), settings)
    except ValidationError as exc:
        log.warning("a mail goes without its portal link: %s", exc)
        return None


def document_url(document_id: int, settings: Settings | None = None) -> str | None:
    """A colleague's link to a document's PDF through the portal (short-lived: see
    ``models.portal.DOCUMENT_LINK_DAYS``), or None where this installation has no key."""
    settings = settings or load_settings()
    try:
        return f"{settings.public_url}/{PATHS['document']}/{document_token(portal_secret(settings), document_id)}"
    except ValidationError as exc:
        log.warning("the deal page shows documents without links: %s", exc)
        return None

