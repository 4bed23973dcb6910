"""Proof that an answer comes from its person: one-time codes and signed sessions.

Every answer to a wait names its person (``by``) and carries one of two proofs:

- ``code``: the 6 digits the person's authenticator app shows now (TOTP, RFC 6238, 30 s steps,
  one step either side accepted). A code is consumed by its first use: the person's last used
  time step is kept, and only a later step is accepted after it. Prefect stores each answer where
  anyone with API access can read it, so a code seen there is already worthless.
- ``session`` + ``signature``: the answer signed (HMAC-SHA256) with the key of a session the
  person opened with a code (``dealflow login``), over the deal, the wait's key and the answer;
  what Prefect stores cannot be replayed for another wait or another answer. The key is kept
  encrypted here and in the user's own config file; only the signature travels.

Five wrong proofs for one person within ten minutes lock that person's answers for ten minutes.
Secrets are encrypted with a ``Cipher`` (Fernet) the caller passes in; this module never reads
keys from the environment. Nothing here writes a code, a secret or a session key in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import pyotp
from sqlalchemy import ForeignKey, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from . import audit
from .base import Base, utcnow
from .errors import DomainError
from .staff import StaffUser, staff_member
from .text import one_line

PROOF_FIELDS = ("code", "session", "signature", "portal")  # portal: a customer's signed answer (models.portal)
ISSUER = "dealflow"
STEP_SECONDS = 30
DIGITS = 6
FAILURES_TO_LOCK = 5
FAILURE_WINDOW = timedelta(minutes=10)
LOCK_FOR = timedelta(minutes=10)
SESSION_HOURS = 8
MAX_SESSION_HOURS = 24

# How an answer was proven, as recorded on the wait and in the audit log.
BY_CODE, BY_SESSION, UNVERIFIED = "one-time code", "signed session", "unverified"


class Cipher(Protocol):
    def encrypt(self, data: bytes) -> bytes: ...
    def decrypt(self, token: bytes) -> bytes: ...


class ProofRefused(DomainError):
    """The answer's proof did not hold; the message says why, never what was typed."""

    def __init__(self, reason: str, *, counts: bool = False):
        self.counts = counts  # a wrong code or signature: counts towards the lock
        super().__init__(reason)


class AnswerFailure(Base):
    """A wrong code or signature given for a person (when, not what): what the lock counts."""
    __tablename__ = "answer_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


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
class Proven:
    person: StaffUser
    kind: str  # BY_CODE, BY_SESSION or UNVERIFIED
    stands_in_for: str | None  # a manager answering for a role they do not hold


@dataclass(frozen=True)
class OpenedSession:
    id: str
    handle: str
    key: str  # base64: for the user's own config file, never for a table or a log
    expires_at: datetime


# --- enrolment and codes ----------------------------------------------------------------------

def enroll(session: Session, person: StaffUser, cipher: Cipher, by: str) -> str:
    """A new secret for ``person`` (any old one stops working); returns its otpauth:// URI, for
    the person's authenticator app. The secret itself is stored encrypted only."""
    secret = pyotp.random_base32()
    close_sessions(session, person, "enrolled again")
    person.totp_secret = cipher.encrypt(secret.encode()).decode()
    person.totp_last_step = None
    person.enrolled_at = utcnow()
    audit.record(session, by, "staff.enrolled", subject=person.handle)
    return provisioning_uri(person, secret)


def provisioning_uri(person: StaffUser, secret: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=person.handle, issuer_name=ISSUER)


def totp(person: StaffUser, cipher: Cipher) -> pyotp.TOTP:
    """The person's TOTP generator (the demo's scripted people compute their codes with it)."""
    if person.totp_secret is None:
        raise ProofRefused(f"by: {person.handle} is not enrolled; a manager runs `dealflow staff enroll "
                           f"{person.handle}`")
    secret = _decrypt(cipher, person.totp_secret).decode()
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)


def _decrypt(cipher: Cipher, token: str) -> bytes:
    try:
        return cipher.decrypt(token.encode())
    except Exception:  # cryptography's InvalidToken: another installation's key
        raise DomainError("DEALFLOW_SECRET_KEY: does not decrypt the staff's secrets; is it the key this "
                          "installation's `dealflow init` made (DATA_DIR/secret.key)?") from None


def _time_step(now: datetime) -> int:
    return int(now.timestamp() if now.tzinfo else (now - datetime(1970, 1, 1)).total_seconds()) // STEP_SECONDS


def use_code(session: Session, person: StaffUser, code: object, cipher: Cipher, now: datetime,
             consume: bool) -> None:
    """Check ``code`` for ``person``: valid now (one step either side) and of a later step than
    the last code they used. With ``consume``, it is used up."""
    typed = "".join(str(code or "").split())
    if not typed:
        raise ProofRefused("code: missing; type the 6 digits your authenticator app shows now")
    if not re.fullmatch(rf"[0-9]{{{DIGITS}}}", typed):  # ASCII digits only (not "１２３４５６")
        raise ProofRefused(f"code: wrong code (a code is the {DIGITS} digits your authenticator app shows)",
                           counts=True)
    generator = totp(person, cipher)
    now_step = _time_step(now)
    matched = next((step for step in (now_step, now_step - 1, now_step + 1)
                    if hmac.compare_digest(generator.generate_otp(step).encode(), typed.encode())), None)
    if matched is None:
        raise ProofRefused("code: wrong or expired code; type the code your authenticator app shows now",
                           counts=True)
    if person.totp_last_step is not None and matched <= person.totp_last_step:
        raise ProofRefused("code: already used (a code works once); wait for the next code your "
                           "authenticator app shows and answer again")
    if consume:
        person.totp_last_step = matched


# --- the lock after wrong codes -----------------------------------------------------------------

def locked(person: StaffUser, now: datetime) -> bool:
    return person.locked_until is not None and person.locked_until > now


def check_not_locked(person: StaffUser, now: datetime) -> None:
    if locked(person, now):
        raise ProofRefused(f"by: {person.handle}'s answers are locked until "
                           f"{person.locked_until:%H:%M} UTC after {FAILURES_TO_LOCK} wrong codes "
                           f"within {FAILURE_WINDOW.seconds // 60} minutes")


def note_failure(session: Session, person: StaffUser, now: datetime, door: str) -> bool:
    """A wrong code or signature for ``person``; True if that locks them now (audited)."""
    session.add(AnswerFailure(staff_id=person.id, at=now))
    session.flush()
    recent = session.scalar(select(func.count()).select_from(AnswerFailure).where(
        AnswerFailure.staff_id == person.id, AnswerFailure.at > now - FAILURE_WINDOW))
    if recent >= FAILURES_TO_LOCK and not locked(person, now):
        person.locked_until = now + LOCK_FOR
        audit.record(session, "system", "staff.locked", subject=person.handle, door=door,
                     until=person.locked_until.isoformat(timespec="seconds"), wrong_proofs=recent)
        return True
    return False


# --- sessions -------------------------------------------------------------------------------------

def open_session(session: Session, handle: str, code: object, cipher: Cipher, *, hours: float = SESSION_HOURS,
                 now: datetime | None = None, door: str = "command line") -> OpenedSession:
    """Log ``handle`` in with a code (which is used up). The caller commits, also when this raises
    a ProofRefused that ``counts`` (the wrong code is then noted)."""
    now = now or utcnow()
    if not 0 < hours <= MAX_SESSION_HOURS:
        raise DomainError(f"hours: must be more than 0 and at most {MAX_SESSION_HOURS}")
    person = staff_member(session, handle, "handle")
    if not person.active:
        raise ProofRefused(f"handle: {person.handle} is disabled")
    check_not_locked(person, now)
    try:
        use_code(session, person, code, cipher, now, consume=True)
    except ProofRefused as exc:
        _refused(session, person, exc, now, door, "staff.login_refused")
    key = secrets.token_bytes(32)
    row = StaffSession(id=secrets.token_urlsafe(18), person=person, key=cipher.encrypt(key).decode(),
                       opened_at=now, expires_at=now + timedelta(hours=hours))
    session.add(row)
    session.flush()
    audit.record(session, person.handle, "staff.login", subject=person.handle, session_id=row.id, door=door,
                 expires=row.expires_at.isoformat(timespec="seconds"))
    return OpenedSession(row.id, person.handle, base64.b64encode(key).decode(), row.expires_at)


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


def canonical(deal_number: str, wait_key: str, answer: dict[str, Any]) -> bytes:
    """What a session signs: the deal, the wait and the answer (without its proof)."""
    body = {k: v for k, v in answer.items() if k not in PROOF_FIELDS}
    return json.dumps({"deal": deal_number, "wait": wait_key, "answer": body}, sort_keys=True,
                      separators=(",", ":"), default=str).encode()


def sign(key_b64: str, deal_number: str, wait_key: str, answer: dict[str, Any]) -> str:
    return hmac.new(base64.b64decode(key_b64), canonical(deal_number, wait_key, answer), hashlib.sha256).hexdigest()


def _check_signature(session: Session, person: StaffUser, proof: dict[str, Any], deal_number: str,
                     wait_key: str, answer: dict[str, Any], cipher: Cipher, now: datetime) -> None:
    sid = str(proof.get("session") or "")[:40]
    row = session.get(StaffSession, sid) if sid else None
    if row is None or row.staff_id != person.id:
        raise ProofRefused(f"session: not a session of {person.handle}; log in again (`dealflow login "
                           f"{person.handle}`) or give a code", counts=True)
    if row.closed_at is not None:
        raise ProofRefused(f"session: {person.handle} logged out of it; log in again or give a code")
    if row.expires_at <= now:
        raise ProofRefused(f"session: expired at {row.expires_at:%Y-%m-%d %H:%M} UTC; log in again "
                           f"(`dealflow login {person.handle}`) or give a code")
    key = _decrypt(cipher, row.key)
    expected = hmac.new(key, canonical(deal_number, wait_key, answer), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), str(proof.get("signature") or "").encode()):
        raise ProofRefused("signature: does not match this deal, wait and answer (a signed answer is "
                           "good for the one wait it was made for)", counts=True)


# --- proving an answer ------------------------------------------------------------------------------

def split_proof(answer: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the proof, the answer without it): only the answer is ever recorded."""
    return ({k: answer[k] for k in PROOF_FIELDS if k in answer},
            {k: v for k, v in answer.items() if k not in PROOF_FIELDS})


def prove(session: Session, person: StaffUser, roles: list[str], step: str, proof: dict[str, Any],
          deal_number: str, wait_key: str, answer: dict[str, Any], *, cipher: Cipher | None,
          codes_required: bool, consume: bool, now: datetime | None = None, door: str = "flow") -> Proven:
    """Check that ``person`` may answer and that the proof holds, in this order: enabled, has the
    role, enrolled, not locked, then the code (used up if ``consume``) or the session signature.
    A wrong code or signature is noted (the caller commits it with the refusal)."""
    from .errors import PermissionDenied

    now = now or utcnow()
    if not person.active:
        raise ProofRefused(f"by: {person.handle} is disabled and may not answer")
    if not any(person.has_role(r) for r in roles):
        raise PermissionDenied(person.handle, " or ".join(roles), step, has=person.role)
    stands_in = person.stands_in_for(roles)
    if not codes_required:
        return Proven(person, UNVERIFIED, stands_in)
    if cipher is None:
        raise ProofRefused("code: answers need a code but no secret key is set up (DEALFLOW_SECRET_KEY)")
    if not person.enrolled:
        raise ProofRefused(f"by: {person.handle} is not enrolled for one-time codes; a manager runs "
                           f"`dealflow staff enroll {person.handle}`")
    check_not_locked(person, now)
    try:
        if proof.get("session") or proof.get("signature"):
            _check_signature(session, person, proof, deal_number, wait_key, answer, cipher, now)
            kind = BY_SESSION
        else:
            use_code(session, person, proof.get("code"), cipher, now, consume)
            kind = BY_CODE
    except ProofRefused as exc:
        _refused(session, person, exc, now, door)
    return Proven(person, kind, stands_in)


def _refused(session: Session, person: StaffUser, exc: ProofRefused, now: datetime, door: str,
             action: str | None = None) -> None:
    if exc.counts and note_failure(session, person, now, door):
        raise ProofRefused(f"{exc}; {person.handle}'s answers are now locked until {person.locked_until:%H:%M} "
                           f"UTC after {FAILURES_TO_LOCK} wrong codes within "
                           f"{FAILURE_WINDOW.seconds // 60} minutes") from None
    if action:
        audit.record(session, person.handle, action, subject=person.handle, reason=str(exc), door=door)
    raise exc


def new_secret_key() -> bytes:
    """A Fernet key (urlsafe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32))
