"""Sessions a person opens with a one-time code (``dealflow login``, the gateway's sign-in; opened
by ``models.identity.open_session``): the signing key kept encrypted, closed on sign-out and
whenever what it was opened with changes; an answer signed with a session's key
(``models.identity``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from . import audit
from .base import Base, utcnow
from .proof import Cipher, ProofRefused, canonical, decrypt
from .text import one_line

if TYPE_CHECKING:
    from .staff import StaffUser

SESSION_HOURS = 8
MAX_SESSION_HOURS = 24


class StaffSession(Base):
    """A session opened with a code (``dealflow login``). ``key`` is the signing key, encrypted."""
    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # public: names the session
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    key: Mapped[str] = mapped_column(Text)  # Fernet token of the key
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]

    person: Mapped[StaffUser] = relationship()


@dataclass(frozen=True)
class OpenedSession:
    id: str
    handle: str
    key: str  # base64: for the user's own config file, never for a table or a log
    expires_at: datetime


def close_sessions(session: Session, person: StaffUser, why: str) -> int:
    """Close every open session of ``person`` (re-enrolled, disabled, roles changed): a session
    never outlives what it was opened with."""
    now = utcnow()
    rows = list(session.scalars(select(StaffSession).where(StaffSession.staff_id == person.id,
                                                           StaffSession.closed_at.is_(None),
                                                           StaffSession.expires_at > now)))
    for row in rows:
        row.closed_at = now
    if rows:
        audit.record(session, "system", "staff.sessions_closed", subject=person.handle, why=why, sessions=len(rows))
    return len(rows)


def close_session(session: Session, session_id: str, now: datetime | None = None) -> bool:
    row = session.get(StaffSession, one_line(session_id, "session", 40, required=True))
    if row is None or row.closed_at is not None:
        return False
    row.closed_at = now or utcnow()
    audit.record(session, row.person.handle, "staff.logout", subject=row.person.handle, session_id=row.id)
    return True


def sign(key_b64: str, deal_number: str, wait_key: str, answer: dict[str, Any]) -> str:
    return hmac.new(base64.b64decode(key_b64), canonical(deal_number, wait_key, answer), hashlib.sha256).hexdigest()


def check_signature(session: Session, person: StaffUser, proof: dict[str, Any], deal_number: str,
                     wait_key: str, answer: dict[str, Any], cipher: Cipher, now: datetime) -> None:
    sid = str(proof.get("session") or "")[:40]
    row = session.get(StaffSession, sid) if sid else None
    if row is None or row.staff_id != person.id:
        raise ProofRefused(f"session: not a session of {person.handle}; log in again (`dealflow login "
                           f"{person.handle}`) or give a code", counts=True, tampered=True)
    if row.closed_at is not None:
        raise ProofRefused(f"session: {person.handle} logged out of it; log in again or give a code")
    if row.expires_at <= now:
        raise ProofRefused(f"session: expired at {row.expires_at:%Y-%m-%d %H:%M} UTC; log in again "
                           f"(`dealflow login {person.handle}`) or give a code")
    key = decrypt(cipher, row.key)
    expected = hmac.new(key, canonical(deal_number, wait_key, answer), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), str(proof.get("signature") or "").encode()):
        raise ProofRefused("signature: does not match this deal, wait and answer (a signed answer is "
                           "good for the one wait it was made for)", counts=True, tampered=True)
