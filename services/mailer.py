"""Delivering the outbox: yagmail over SMTP when SMTP_HOST is set, else .eml files in data/mail.

The guarantee, step by step, for each pending row:

1. the message is rendered (text, HTML, the document's PDF) while the row is still ``pending``:
   a sender that dies here leaves nothing behind but files it will write again;
2. the row is claimed (``sending``, naming this process, with a lease) and committed; then the
   sender connects, logs in, gives sender and recipient and sends the message's content. A
   sender that dies here leaves a claim that was never handed over: the next sender, the outbox
   run or the deal's own flow releases it back to ``pending`` once the claiming process is gone
   (same host) or its lease ran out (any host), and sends it once;
3. just before the line that ends the message in SMTP's ``DATA`` (a server takes a message only
   with that line), it records ``handed_at``, only if the claim is still its own. After the
   server's answer the row is marked ``sent`` (or back to ``pending`` on a 4xx, ``failed`` on a
   5xx). Only a sender that dies, or a connection that breaks, between that last line and the
   mark leaves the message's fate unknown: the row stays ``sending``, is never sent again by
   itself (at most once), and ``dealflow outbox`` shows it for a person to check.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import smtplib
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from pathlib import Path
from typing import Any

import yagmail
from sqlalchemy import exists, select, text
from sqlalchemy.orm import Session

from models import Document, Email, utcnow
from models.outbox import (
    UNKNOWN_AFTER,
    begin_handover,
    claim_email,
    dead_claims,
    mark_failed,
    mark_sent,
    note_fate_unknown,
    release_claim,
    release_dead_claims,
)
from models.states import EmailStatus

from .company import sender as company_sender
from .config import Settings, load_settings
from .rendering import render, render_email, render_pdf

log = logging.getLogger(__name__)

TRANSIENT = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError,
             OSError)
# How long a claim may take to be handed over (connect, TLS, login, sender, recipient, content:
# each with a 30 s timeout). A claim past it is released for another sender; the claimant, if it is
# alive after all, finds the claim gone and sends nothing.
LEASE = timedelta(minutes=3)


class TransientMailError(RuntimeError):
    """The SMTP server could not take the message now; a later attempt may succeed.
    ``sent`` lists what this attempt did send before it stopped."""

    def __init__(self, message: str, sent: list[int] | None = None):
        super().__init__(message)
        self.sent = list(sent or [])


class FateUnknown(RuntimeError):
    """The connection broke while the message was being handed over: it may have arrived."""


class ClaimLost(RuntimeError):
    """The claim was released (its lease ran out) before the hand-over: this sender must not send."""


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is no such process.
    With the pid it tells a live sender from a pid reused by another program."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc (not Linux): whether the pid exists is all we can tell
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def sender_id() -> str:
    """One sending pass of this process, as a claim names it: ``host:pid:start:token``. The
    token tells apart two threads of one process (the executor runs many deals at once)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid()) or ''}:{uuid.uuid4().hex[:12]}"


def sender_alive(owner: str) -> bool:
    """Whether the process named by a claim still runs. Another host's sender cannot be seen from
    here: it counts as alive, and its lease decides."""
    host, pid, start = ([*owner.split(":"), "", "", ""])[:3]
    if host != socket.gethostname():
        return True
    if not pid.isdigit():
        return False
    now = _process_start(int(pid))
    return now is not None and (now == start or "" in (now, start))


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
    """yagmail's SMTP connection and login (as SMTP_USER); messages go out From the company's mail
    sender (`dealflow company edit --mail-from`)."""
    name, address = company_sender(settings)
    sender = {(settings.smtp.user if settings.smtp and settings.smtp.user else address): name}
    smtp = settings.smtp
    if smtp is None:
        return yagmail.SMTP(user=sender, smtp_skip_login=True, soft_email_validation=False)
    return yagmail.SMTP(user=sender, password=smtp.password or None, host=smtp.host, port=smtp.port,
                        smtp_ssl=smtp.security == "ssl", smtp_starttls=smtp.security == "starttls",
                        smtp_skip_login=not smtp.user, soft_email_validation=False, timeout=30)


@dataclass
class Outgoing:
    """One email as read from its row: plain data, so no transaction is held while it renders."""
    id: int
    kind: str
    dedupe_key: str
    to_addr: str
    subject: str
    template: str
    context: dict[str, Any]
    document: tuple[str, str, dict[str, Any]] | None  # filename stem, template, context
    handed_over_at: float = 0.0  # perf_counter when the message's last line went out

    @classmethod
    def of(cls, mail: Email, doc: Document | None) -> Outgoing:
        return cls(mail.id, mail.kind, mail.dedupe_key, mail.to_addr, mail.subject, mail.template, mail.context,
                   (doc.number, doc.template, doc.context) if doc else None)


def message_id(mail: Outgoing | Email, sender: str) -> str:
    """Derived from the row, so a resend of the same email carries the same Message-ID."""
    digest = hashlib.sha256(mail.dedupe_key.encode()).hexdigest()[:16]
    return f"<dealflow.{mail.id}.{mail.kind}.{digest}@{sender.rsplit('@', 1)[-1] or 'localhost'}>"


def compose(mail: Outgoing, text: str, html: str, pdf: Path | None, sender: tuple[str, str]) -> EmailMessage:
    """The message: a plain-text part and an HTML part of the same words, and the document's PDF.

    Built with the standard library rather than yagmail's ``contents``, which would paste the
    plain text unescaped into the HTML part and the HTML into the plain one."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = formataddr(sender)
    msg["To"] = mail.to_addr
    msg["Subject"] = header_safe(mail.subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(mail, sender[1])
    msg.set_content(text, cte=text_encoding(text))
    msg.add_alternative(html, subtype="html")
    if pdf is not None:
        msg.add_attachment(pdf.read_bytes(), maintype="application", subtype="pdf", filename=pdf.name)
    return msg


def text_encoding(text: str) -> str:
    """How the plain-text part goes: as it is written (7bit, or 8bit for accents and '·'), so that
    a link in the raw message is one unbroken line a person can copy; quoted-printable (which
    breaks long lines with '=') only for a line too long for SMTP (998 bytes), e.g. a long note."""
    if any(len(line.encode()) > 990 for line in text.splitlines()):
        return "quoted-printable"
    return "7bit" if text.isascii() else "8bit"


def render_message(out: Outgoing, settings: Settings) -> EmailMessage:
    """Everything that can fail slowly or for good (templates, the PDF) happens before the claim."""
    from .links import url_of

    text, html = render_email(out.template, out.context, settings, url_of(out.context.get("portal_link"), settings))
    pdf = None
    if out.document:
        stem, template, context = out.document
        _, pdf = write_document(Document(number=stem, template=template, context=context), settings)
    return compose(out, text, html, pdf, company_sender(settings))


def hand_over(out: Outgoing, msg: EmailMessage, settings: Settings, data_step: Callable[[], bool]) -> str:
    """Give the message to the SMTP server once, through yagmail's connection and login (its own
    reconnect-and-resend loop is not used: it could deliver an accepted message twice).

    The message's content goes over first; ``data_step`` is called just before the line that
    ends it (the server takes a message only with that line) and must say whether this sender
    may go on. So the window whose outcome a crash leaves unknown is only: that last line, the
    server's answer, and marking the row. Without SMTP settings the message is written as an
    .eml file (writing it again writes the same file). Returns its Message-ID."""
    if settings.smtp is None:  # the embedded default: the message as it would be sent, as a file
        settings.mail_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(settings.mail_dir / f"{out.id:05d}-{out.kind}.eml", msg.as_bytes())
        return msg["Message-ID"]
    client = _client(settings)
    try:
        client.login()  # a failure before the end of DATA: the server has no message, a retry is safe
        smtp = client.smtp
        smtp.ehlo_or_helo_if_needed()
        eight_bit = any(part.get("content-transfer-encoding") == "8bit" for part in msg.walk())
        envelope_from = parseaddr(msg["From"])[1]
        code, reply = smtp.mail(envelope_from, ["BODY=8BITMIME"] if eight_bit and smtp.has_extn("8bitmime") else [])
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, envelope_from)
        code, reply = smtp.rcpt(out.to_addr)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({out.to_addr: (code, reply)})
        smtp.putcmd("data")
        code, reply = smtp.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        content = re.sub(rb"(?m)^\.", b"..", msg.as_bytes())  # a line starting with "." is doubled
        smtp.send(content if content.endswith(b"\r\n") else content + b"\r\n")
        if not data_step():  # the claim is gone: end the connection without the final line
            smtp.close()
            raise ClaimLost(f"email {out.id}: its claim was released before it was handed over")
        out.handed_over_at = time.perf_counter()
        try:
            smtp.send(b".\r\n")
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise FateUnknown(f"{type(exc).__name__} while handing the message over: {exc}") from exc
        if 400 <= code < 600:
            raise smtplib.SMTPDataError(code, reply)  # the server said no to the message: it did not take it
        if not 200 <= code < 300:  # a garbled answer (-1): the server may have taken it
            raise FateUnknown(f"an answer that cannot be read after the message: {code} {reply[:200]!r}")
    finally:
        client.close()
    return msg["Message-ID"]


def _is_permanent(exc: Exception) -> bool:
    """5xx means the server will never take this message; 4xx, dropped connections and a database
    that did not answer (a lock, a lost connection) may pass later."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        return False
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return not isinstance(exc, TRANSIENT)


def has_mail_to_send(session: Session, deal_id: int) -> bool:
    """Whether the deal has mail pending, or claimed by a sender that died before handing it over."""
    pending = session.scalar(select(exists().where(Email.deal_id == deal_id, Email.status == EmailStatus.PENDING)))
    return bool(pending) or bool(dead_claims(session, sender_alive, deal_id))


def release_orphans(session: Session, deal_id: int | None = None) -> list[int]:
    """Release (and commit) the claims of senders that died before handing their message over."""
    released = release_dead_claims(session, sender_alive, deal_id)
    session.commit()
    for email_id in released:
        log.warning("email %s: its sender stopped before handing it over; it goes out again", email_id)
    return released


def deliver(session: Session, deal_id: int | None = None, settings: Settings | None = None,
            email_ids: list[int] | None = None) -> list[int]:
    """Send every pending email (of one deal, or the ids given, or all). Returns the ids sent.

    Claims left by dead senders are released first. A transient failure (4xx, no connection)
    puts the row back to pending and raises TransientMailError, so the task's retry (or the next
    outbox run) sends it; a permanent one (5xx, a broken template) marks it failed for a person
    to look at (``dealflow outbox``) and the others still go out."""
    settings = settings or load_settings()
    me = sender_id()
    release_orphans(session, deal_id)
    query = select(Email.id).where(Email.status == EmailStatus.PENDING).order_by(Email.id)
    if deal_id is not None:
        query = query.where(Email.deal_id == deal_id)
    if email_ids is not None:
        query = query.where(Email.id.in_(email_ids))
    candidates = session.scalars(query).all()
    session.commit()  # end the read: on SQLite every transaction holds the write lock
    sent = []
    for email_id in candidates:
        mail = session.get(Email, email_id, populate_existing=True)
        if mail is None or mail.status != EmailStatus.PENDING:
            session.commit()
            continue  # another sender took it
        out = Outgoing.of(mail, session.get(Document, mail.document_id) if mail.document_id else None)
        session.commit()
        try:
            msg: EmailMessage | None = render_message(out, settings)
            render_error = None
        except Exception as exc:  # noqa: BLE001 - judged below, after the claim
            msg, render_error = None, exc
        if not claim_email(session, email_id, me, LEASE):
            session.commit()
            continue
        session.commit()
        try:
            if render_error is not None:
                raise render_error
            mid = hand_over(out, msg, settings, data_step=lambda i=email_id: _commit(session, begin_handover(
                session, i, me)))
        except ClaimLost as exc:  # its lease ran out before the hand-over (a very slow server)
            log.warning("%s", exc)
            release_claim(session, email_id, me, str(exc))  # only if still ours; else another sender has it
            session.commit()
            continue
        except FateUnknown as exc:  # stays 'sending': never sent twice; `dealflow outbox` shows it
            note_fate_unknown(session, email_id, me, str(exc))
            session.commit()
            log.warning("email %s to %s: %s", email_id, out.to_addr, exc)
            continue
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
            session.rollback()  # a database error on the way leaves the session to be reset first
            if _is_permanent(exc):
                mark_failed(session, email_id, me, error)
                session.commit()
                log.warning("email %s to %s failed for good: %s", email_id, out.to_addr, error)
                continue
            release_claim(session, email_id, me, error)  # nothing was handed over: the last line never went
            session.commit()
            session.expire_all()
            raise TransientMailError(f"email {email_id} to {out.to_addr}: {error}", sent) from exc
        _without_waiting_for_the_disk(session)  # the window a crash leaves unknown ends here: keep it short
        if not mark_sent(session, email_id, me, mid):
            log.warning("email %s was sent, but its row had been taken back meanwhile", email_id)
        session.commit()
        if out.handed_over_at:
            log.info("email %s (%s) sent; %.1f ms from its last line to marked sent", email_id, out.kind,
                     (time.perf_counter() - out.handed_over_at) * 1000)
        sent.append(email_id)
    session.expire_all()  # the rows changed by statements, not through these objects
    return sent


def _without_waiting_for_the_disk(session: Session) -> None:
    """Mark an email sent without waiting for PostgreSQL to flush its log to disk (5 to 50 ms
    here, inside the window that a crash leaves unknown). If the database itself crashed in
    that moment, the row would be back at 'handed over' and shown as of unknown fate: never
    sent twice. SQLite has no such setting."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def _commit(session: Session, ok: bool) -> bool:
    session.commit()
    return ok


def stuck(session: Session, older_than: timedelta = UNKNOWN_AFTER) -> list[Email]:
    """Rows whose fate is unknown: handed to SMTP, never marked (the sender died, or the
    connection broke, during the SMTP conversation). A person checks whether they arrived."""
    cutoff = utcnow() - older_than
    return list(session.scalars(select(Email).where(Email.status == EmailStatus.SENDING, Email.handed_at.is_not(None),
                                                    Email.handed_at < cutoff)))
