"""The company as documents and emails show it: its row (``models.company``), read when a document
or an email is rendered, so that `dealflow company edit` takes effect for the next one."""

from __future__ import annotations

from typing import Any

from .config import Settings, load_settings


def details(settings: Settings | None = None) -> dict[str, Any]:
    """The company's details, read beside whatever session the caller holds (it may be rendering
    inside one): a read that takes no lock."""
    from sqlalchemy import select

    from models.company import FIELDS, THE_COMPANY, Company, the_company

    from .db import read_only

    settings = settings or load_settings()
    with read_only(settings.database_url) as conn:
        row = conn.execute(select(*(getattr(Company, f) for f in FIELDS)).where(Company.id == THE_COMPANY)).first()
    if row is None:
        the_company(None)  # the one message: not set up yet, run `dealflow init`
    return dict(zip(FIELDS, row, strict=True))


def sender(settings: Settings | None = None) -> tuple[str, str]:
    """(name, address) every email goes out from: the company's name and its mail sender."""
    company = details(settings)
    return company["name"], company["mail_from"]
