"""Delivering the outbox: yagmail over SMTP when SMTP_HOST is set, else .eml files in data/mail.

Guarantee: a row is claimed (pending -> sending, committed) before it is handed to SMTP and
marked sent after, so no re-run or second sender sends it again. If the sender dies after the
SMTP server accepted the message but before the row was marked, the row stays 'sending' and is
not sent again automatically (at most once); ``deliver`` reports such rows as stuck.
"""

from __future__ import annotations

import smtplib
from pathlib import Path

import yagmail
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Document, Email, utcnow

from .config import Settings, load_settings
from .rendering import render, render_email

TRANSIENT = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError,
             OSError)


class TransientMailError(RuntimeError):
    """The SMTP server could not take the message now; a later attempt may succeed."""


def write_document(doc: Document, settings: Settings) -> Path:
    """The document's HTML file in data/documents; writing it again writes the same bytes."""
    path = settings.documents_dir / doc.filename
    html = render(doc.template, doc.context, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != html:
        path.write_text(html, encoding="utf-8")
    return path


def _client(settings: Settings) -> yagmail.SMTP:
    smtp = settings.smtp
    if smtp is None:
        return yagmail.SMTP(user=settings.mail_from, smtp_skip_login=True, soft_email_validation=False)
    return yagmail.SMTP(user={smtp.user or smtp.sender: smtp.sender} if smtp.user else smtp.sender,
                        password=smtp.password or None, host=smtp.host, port=smtp.port,
                        smtp_ssl=smtp.security == "ssl", smtp_starttls=smtp.security == "starttls",
                        smtp_skip_login=not smtp.user, soft_email_validation=False)


def message_id(mail: Email) -> str:
    return f"<dealflow.{mail.id}.{mail.dedupe_key.replace(':', '.')}@{mail.to_addr.split('@')[-1] or 'local'}>"


def _deliver_one(session: Session, mail: Email, settings: Settings) -> None:
    text, html = render_email(mail.template, mail.context, settings)
    attachments = []
    if mail.document_id:
        attachments.append(str(write_document(session.get(Document, mail.document_id), settings)))
    client = _client(settings)
    mid = message_id(mail)
    message = {"to": mail.to_addr, "subject": mail.subject, "contents": [text, html],
               "attachments": attachments or None, "prettify_html": False, "message_id": mid}
    if settings.smtp is None:  # the embedded default: the message as it would be sent, as a file
        _, raw = client.prepare_send(**message)
        settings.mail_dir.mkdir(parents=True, exist_ok=True)
        (settings.mail_dir / f"{mail.id:05d}-{mail.kind}.eml").write_text(raw, encoding="utf-8")
    else:
        try:
            result = client.send(**message)
        finally:
            client.close()
        if result is False:
            raise TransientMailError(f"SMTP server {settings.smtp.host} dropped the connection")
    mail.message_id = mid


def _is_permanent(exc: Exception) -> bool:
    """5xx means the server will never take this message; 4xx and dropped connections may pass later."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return False


def deliver(session: Session, deal_id: int | None = None, settings: Settings | None = None) -> list[int]:
    """Send every pending email (of one deal, or all). Returns the ids sent.
    Raises TransientMailError after putting the failed row back to pending, so a retry sends it."""
    settings = settings or load_settings()
    query = select(Email.id).where(Email.status == "pending").order_by(Email.id)
    if deal_id is not None:
        query = query.where(Email.deal_id == deal_id)
    sent = []
    for email_id in session.scalars(query).all():
        mail = session.get(Email, email_id, with_for_update=True)
        if mail is None or mail.status != "pending":
            session.commit()
            continue  # another sender took it
        mail.status = "sending"
        mail.attempts += 1
        session.commit()
        try:
            _deliver_one(session, mail, settings)
        except (smtplib.SMTPException, *TRANSIENT, TransientMailError) as exc:
            permanent = _is_permanent(exc)
            mail.status = "failed" if permanent else "pending"
            mail.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            session.commit()
            if permanent:
                continue
            raise TransientMailError(f"email {mail.id} to {mail.to_addr}: {mail.last_error}") from exc
        mail.status = "sent"
        mail.sent_at = utcnow()
        mail.last_error = ""
        session.commit()
        sent.append(mail.id)
    return sent
