"""Delivering the outbox: yagmail over SMTP when SMTP_HOST is set, else .eml files in data/mail.

Guarantee: a row is claimed (pending -> sending, committed) before it is handed to SMTP and
marked sent after, so no re-run or second sender sends it again. If the sender dies after the
SMTP server accepted the message but before the row was marked, the row stays 'sending' and is
not sent again automatically (at most once); ``stuck`` lists such rows and ``dealflow outbox``
shows them, for a person to check and, if need be, ``retry --force``.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any

import yagmail
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Document, Email, utcnow

from .config import Settings, load_settings
from .rendering import render, render_email, render_pdf

log = logging.getLogger(__name__)

TRANSIENT = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError,
             OSError)


class TransientMailError(RuntimeError):
    """The SMTP server could not take the message now; a later attempt may succeed."""


def write_document(doc: Document, settings: Settings) -> tuple[Path, Path]:
    """The document's HTML and PDF files in data/documents, rendered from its stored snapshot.
    Written again only when missing or when the HTML differs, so a re-run changes nothing."""
    html_path = settings.documents_dir / doc.filename
    pdf_path = settings.documents_dir / doc.pdf_filename
    html = render(doc.template, doc.context, settings)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    changed = not html_path.exists() or html_path.read_text(encoding="utf-8") != html
    if changed:
        _atomic_write(html_path, html.encode("utf-8"))
    if changed or not pdf_path.exists():
        _atomic_write(pdf_path, render_pdf(html))
    return html_path, pdf_path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def header_safe(value: str) -> str:
    """One line: a CR or LF in a customer's name must never start a new mail header."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _client(settings: Settings) -> yagmail.SMTP:
    """yagmail's SMTP connection and login (as SMTP_USER); messages go out From DEALFLOW_MAIL_FROM."""
    sender = {(settings.smtp.user if settings.smtp and settings.smtp.user else settings.mail_from):
              settings.company["name"]}
    smtp = settings.smtp
    if smtp is None:
        return yagmail.SMTP(user=sender, smtp_skip_login=True, soft_email_validation=False)
    return yagmail.SMTP(user=sender, password=smtp.password or None, host=smtp.host, port=smtp.port,
                        smtp_ssl=smtp.security == "ssl", smtp_starttls=smtp.security == "starttls",
                        smtp_skip_login=not smtp.user, soft_email_validation=False, timeout=30)


def message_id(mail: Email, sender: str) -> str:
    """Derived from the row, so a resend of the same email carries the same Message-ID."""
    digest = hashlib.sha256(mail.dedupe_key.encode()).hexdigest()[:16]
    return f"<dealflow.{mail.id}.{mail.kind}.{digest}@{sender.rsplit('@', 1)[-1] or 'localhost'}>"


def compose(mail: Email, text: str, html: str, pdf: Path | None, sender: tuple[str, str]) -> EmailMessage:
    """The message: a plain-text part and an HTML part of the same words, and the document's PDF.

    Built with the standard library rather than yagmail's ``contents``, which would paste the
    plain text unescaped into the HTML part and the HTML into the plain one."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = formataddr(sender)
    msg["To"] = mail.to_addr
    msg["Subject"] = header_safe(mail.subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(mail, sender[1])
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    if pdf is not None:
        msg.add_attachment(pdf.read_bytes(), maintype="application", subtype="pdf", filename=pdf.name)
    return msg


class FateUnknown(RuntimeError):
    """The connection broke while the message was being handed over: it may have arrived."""


@dataclass(frozen=True)
class Outgoing:
    """What one send needs, read before the claim is committed, so no database transaction (and on
    SQLite no write lock) is held while PDFs render and SMTP talks."""
    mail: Email
    document: tuple[str, str, dict[str, Any]] | None  # filename stem, template, context


def _deliver_one(out: Outgoing, settings: Settings) -> str:
    """Hand the message to the SMTP server once, through yagmail's connection and login (its own
    reconnect-and-resend loop is not used: it could deliver an accepted message twice).
    Without SMTP settings the message is written as an .eml file. Returns its Message-ID."""
    mail = out.mail
    text, html = render_email(mail.template, mail.context, settings)
    pdf = None
    if out.document:
        stem, template, context = out.document
        _, pdf = write_document(Document(number=stem, template=template, context=context), settings)
    client = _client(settings)
    msg = compose(mail, text, html, pdf, (settings.company["name"], settings.mail_from))
    if settings.smtp is None:  # the embedded default: the message as it would be sent, as a file
        settings.mail_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(settings.mail_dir / f"{mail.id:05d}-{mail.kind}.eml", msg.as_bytes())
        return msg["Message-ID"]
    try:
        client.login()  # a failure here: nothing was sent, a retry is safe
        try:
            client.smtp.send_message(msg, from_addr=settings.mail_from, to_addrs=[mail.to_addr])
        except smtplib.SMTPResponseException:
            raise  # the server answered no (4xx: later; 5xx: never): it did not take the message
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise FateUnknown(f"{type(exc).__name__} while handing the message over: {exc}") from exc
    finally:
        client.close()
    return msg["Message-ID"]


def _is_permanent(exc: Exception) -> bool:
    """5xx means the server will never take this message; 4xx and dropped connections may pass later."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return not isinstance(exc, TRANSIENT)


def deliver(session: Session, deal_id: int | None = None, settings: Settings | None = None,
            email_ids: list[int] | None = None) -> list[int]:
    """Send every pending email (of one deal, or the ids given, or all). Returns the ids sent.

    Each row is claimed (committed) before it goes out. A transient failure (4xx, connection)
    puts it back to pending and raises TransientMailError, so the task's retry sends it; a
    permanent one (5xx, a broken template) marks it failed for a person to look at
    (``dealflow outbox``) and the others still go out."""
    settings = settings or load_settings()
    query = select(Email.id).where(Email.status == "pending").order_by(Email.id)
    if deal_id is not None:
        query = query.where(Email.deal_id == deal_id)
    if email_ids is not None:
        query = query.where(Email.id.in_(email_ids))
    sent = []
    for email_id in session.scalars(query).all():
        mail = session.scalars(select(Email).where(Email.id == email_id).with_for_update()
                               .execution_options(populate_existing=True)).one()
        if mail.status != "pending":
            session.commit()
            continue  # another sender took it
        mail.claim()
        doc = session.get(Document, mail.document_id) if mail.document_id else None
        out = Outgoing(mail, (doc.number, doc.template, doc.context) if doc else None)
        session.commit()
        try:
            mid = _deliver_one(out, settings)
        except FateUnknown as exc:  # stays 'sending': never sent twice; `dealflow outbox` shows it
            mail.last_error = str(exc)[:2000]
            session.commit()
            log.warning("email %s to %s: %s", mail.id, mail.to_addr, exc)
            continue
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if _is_permanent(exc):
                mail.mark_failed(error)
                session.commit()
                log.warning("email %s to %s failed for good: %s", mail.id, mail.to_addr, error)
                continue
            mail.release(error)
            session.commit()
            raise TransientMailError(f"email {mail.id} to {mail.to_addr}: {error}") from exc
        mail.mark_sent(mid)
        session.commit()
        sent.append(mail.id)
    return sent


def stuck(session: Session, older_than: timedelta = timedelta(minutes=10)) -> list[Email]:
    """Rows claimed but never marked: the sender died mid-way; whether they went out is unknown."""
    cutoff = utcnow() - older_than
    return list(session.scalars(select(Email).where(Email.status == "sending", Email.claimed_at < cutoff)))
