"""The customer's side, as a program: find the personal link in a received email and answer
from the portal's page as a browser would (open the page, take its form's CSRF token and cookie,
post the form, follow the redirect). Used by the demo and the tests; a person uses a browser.
"""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

import httpx

LINK = re.compile(r"https?://[^\s<>\"']+/(e|i|c)/[A-Za-z0-9_.\-]+")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def link_in(eml: bytes | str | Path, kind: str = "e", base: str | None = None) -> str | None:
    """The portal link (``e`` estimate, ``i`` invoice, ``c`` credit note) in the plain-text part of
    an email: the first that starts with ``base`` (the portal's address; by default
    DEALFLOW_PUBLIC_URL's), so that an address typed into a company name is never taken for it."""
    if base is None:
        from services.config import load_settings

        base = load_settings().public_url
    raw = eml.read_bytes() if isinstance(eml, Path) else eml.encode() if isinstance(eml, str) else eml
    msg = email.message_from_bytes(raw, policy=policy.default)
    body = msg.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return next((m.group(0) for m in LINK.finditer(text)
                 if m.group(1) == kind and m.group(0).startswith(f"{base.rstrip('/')}/{kind}/")), None)


def link_in_mail(mail_dir: Path, subject_contains: str, kind: str = "e", base: str | None = None) -> str | None:
    """The link in the newest email in ``mail_dir`` (the .eml files the embedded default writes)
    whose subject contains ``subject_contains``."""
    for path in sorted(mail_dir.glob("*.eml"), reverse=True):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if subject_contains in str(msg["Subject"]):
            return link_in(path, kind, base)
    return None


class PortalCustomer:
    """One customer's browser, without JavaScript (none is needed): cookies kept between pages."""

    def __init__(self, user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) dealflow-customer/1.0"):
        self.client = httpx.Client(headers={"User-Agent": user_agent}, timeout=60, follow_redirects=True)

    def open(self, url: str) -> httpx.Response:
        return self.client.get(url)

    def answer(self, url: str, action: str, **fields: str) -> httpx.Response:
        """Open the page, then send its ``action`` form (accept, request_changes, decline, renew)
        with ``fields``; the response is the page the customer lands on."""
        page = self.open(url)
        page.raise_for_status()
        token = CSRF.search(page.text)
        data = {**fields, "csrf": token.group(1) if token else ""}
        return self.client.post(f"{url}/{action}", data=data)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> PortalCustomer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
