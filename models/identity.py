"""Proof that an answer comes from its person: one-time codes and signed sessions.

A person proves who they are with a one-time code once, when they sign in (``open_session``:
the 6 digits their authenticator app shows, TOTP, RFC 6238, 30 s steps, one step either side;
a code is consumed by its first use, also when two sign-ins race, since the person's row is
locked). Every answer to a wait then names its person (``by``) and carries one of two proofs,
never the code itself (Prefect stores answers where every holder of its credential reads them):

- ``seal``: the gateway's (``dealflow/gateway.py``) HMAC over the deal, the wait's key, the
  answer as sent, the person taken from their signed-in session, the time and a nonce, with a key
  derived from the installation's secret key (Prefect's credential does not give it). A seal is
  good once (its nonce is recorded with the answer).
- ``session`` + ``signature``: the answer signed (HMAC-SHA256) with the key of a session the
  person opened with a code (``dealflow login``), over the deal, the wait's key and the answer;
  what Prefect stores cannot be replayed for another wait or another answer. The key is kept
  encrypted here and in the user's own config file; only the signature travels.

Any other answer (a code in the answer, no proof, a seal or signature that does not match what
is stored) is refused as tampered. Five wrong codes or signatures for one person within ten
minutes lock that person for ten minutes; each lock after that, until a good sign-in or a
manager's ``dealflow staff unlock``, doubles, up to a day.
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

# portal: a customer's signed answer (models.portal); code: never a proof in an answer (refused)
PROOF_FIELDS = ("code", "session", "signature", "seal", "portal")
ISSUER = "dealflow"
STEP_SECONDS = 30
DIGITS = 6
FAILURES_TO_LOCK = 5
FAILURE_WINDOW = timedelta(minutes=10)
LOCK_FOR = timedelta(minutes=10)  # the first lock; each next one doubles, up to LONGEST_LOCK
LONGEST_LOCK = timedelta(days=1)
SEAL_MAX_AGE = timedelta(days=2)  # a sealed answer the flow has not read by then is refused
SESSION_HOURS = 8
MAX_SESSION_HOURS = 24

# How an answer was proven, as recorded on the wait and in the audit log.
BY_CODE, BY_SESSION, UNVERIFIED = "one-time code", "signed session", "unverified"
BY_GATEWAY = "gateway sign-in"  # fits the waits.proof column (20)
TAMPERED = "answer.tampered"  # the audit action of an answer whose proof does not hold


class Cipher(Protocol):
    def encrypt(self, data: bytes) -> bytes: ...
    def decrypt(self, token: bytes) -> bytes: ...


class ProofRefused(DomainError):
    """The answer's proof did not hold; the message says why, never what was typed."""

    def __init__(self, reason: str, *, counts: bool = False, tampered: bool = False):
        self.counts = counts  # a wrong code or signature: counts towards the lock
        self.tampered = tampered  # no door of dealflow's makes it: changed or made on the way
        super().__init__(reason)


class AnswerFailure(Base):
    """A wrong code or signature given for a person (when, not what): what the lock counts."""
    __tablename__ = "answer_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AnswerSeal(Base):
    """A gateway's seal the flow has accepted: its nonce, so that it is good once."""
    __tablename__ = "answer_seals"

    nonce: Mapped[str] = mapped_column(String(40), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    wait_key: Mapped[str] = mapped_column(String(80))
    sealed_at: Mapped[datetime]
    used_at: Mapped[datetime] = mapped_column(default=utcnow)


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


def _epoch(now: datetime) -> int:
    """Seconds since 1970 (a naive time is UTC, as ``utcnow`` gives)."""
    return int(now.timestamp() if now.tzinfo else (now - datetime(1970, 1, 1)).total_seconds())


def _time_step(now: datetime) -> int:
    return _epoch(now) // STEP_SECONDS


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
        raise ProofRefused(f"by: {person.handle} is locked until {_until(person.locked_until, now)} "
                           f"after {FAILURES_TO_LOCK} wrong codes within {FAILURE_WINDOW.seconds // 60} "
                           f"minutes; a manager may stand in, or unlock with `dealflow staff unlock "
                           f"{person.handle}`")


def _until(when: datetime, now: datetime) -> str:
    return f"{when:%H:%M} UTC" if when - now < timedelta(hours=12) else f"{when:%Y-%m-%d %H:%M} UTC"


def lock_length(locks_before: int) -> timedelta:
    """How long the next lock lasts after ``locks_before`` locks in a row: 10 min, 20, 40, … a day."""
    return min(LOCK_FOR * 2 ** min(max(locks_before, 0), 16), LONGEST_LOCK)


def note_failure(session: Session, person: StaffUser, now: datetime, door: str) -> bool:
    """A wrong code or signature for ``person``; True if that locks them now (audited). Each lock
    after the first, without a good sign-in or an unlock in between, lasts twice as long."""
    session.add(AnswerFailure(staff_id=person.id, at=now))
    session.flush()
    since = max(now - FAILURE_WINDOW, person.locked_until or now - FAILURE_WINDOW)  # a new lock needs new failures
    recent = session.scalar(select(func.count()).select_from(AnswerFailure).where(
        AnswerFailure.staff_id == person.id, AnswerFailure.at > since))
    if recent >= FAILURES_TO_LOCK and not locked(person, now):
        person.locked_until = now + lock_length(person.locks_in_row or 0)
        person.locks_in_row = (person.locks_in_row or 0) + 1
        audit.record(session, "system", "staff.locked", subject=person.handle, door=door,
                     until=person.locked_until.isoformat(timespec="seconds"), wrong_proofs=recent,
                     lock_number=person.locks_in_row)
        return True
    return False


def unlock(session: Session, person: StaffUser, by: str) -> bool:
    """A manager lifts the lock (and the growth of the next one); False if none was in force."""
    was = locked(person, utcnow())
    person.locked_until = None
    person.locks_in_row = 0
    audit.record(session, by, "staff.unlocked", subject=person.handle, was_locked=was)
    return was


def check_code(session: Session, person: StaffUser, code: object, cipher: Cipher, *, door: str,
               now: datetime | None = None, consume: bool = False, field: str = "by",
               action: str | None = None) -> None:
    """What a sign-in with ``code`` checks (enrolled, not locked, the code good now and unused);
    with ``consume`` the code is used up. A wrong code is noted (the caller commits it)."""
    now = now or utcnow()
    if not person.enrolled:
        raise ProofRefused(f"{field}: {person.handle} is not enrolled for one-time codes; a manager runs "
                           f"`dealflow staff enroll {person.handle}`")
    check_not_locked(person, now)
    try:
        use_code(session, person, code, cipher, now, consume=consume)
    except ProofRefused as exc:
        _refused(session, person, exc, now, door, action)


# --- sessions -------------------------------------------------------------------------------------

def open_session(session: Session, handle: str, code: object, cipher: Cipher, *, hours: float = SESSION_HOURS,
                 now: datetime | None = None, door: str = "command line", verify: bool = True) -> OpenedSession:
    """Log ``handle`` in with a code (which is used up). The caller commits, also when this raises
    a ProofRefused that ``counts`` (the wrong code is then noted). ``verify=False``: codes are off
    (DEALFLOW_ANSWER_CODES=off, a one-person trial), the handle is enough."""
    now = now or utcnow()
    if not 0 < hours <= MAX_SESSION_HOURS:
        raise DomainError(f"hours: must be more than 0 and at most {MAX_SESSION_HOURS}")
    # the person's row locked until the caller commits: two sign-ins with one code, at the same
    # moment, are checked one after the other, and the second finds the code used
    person = staff_member(session, handle, "handle", lock=True)
    if not person.active:
        raise ProofRefused(f"handle: {person.handle} is disabled")
    if verify:
        check_code(session, person, code, cipher, door=door, now=now, consume=True, field="handle",
                   action="staff.login_refused")
    person.locks_in_row = 0  # a good code: the next lock is a short one again
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
                           f"{person.handle}`) or give a code", counts=True, tampered=True)
    if row.closed_at is not None:
        raise ProofRefused(f"session: {person.handle} logged out of it; log in again or give a code")
    if row.expires_at <= now:
        raise ProofRefused(f"session: expired at {row.expires_at:%Y-%m-%d %H:%M} UTC; log in again "
                           f"(`dealflow login {person.handle}`) or give a code")
    key = _decrypt(cipher, row.key)
    expected = hmac.new(key, canonical(deal_number, wait_key, answer), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), str(proof.get("signature") or "").encode()):
        raise ProofRefused("signature: does not match this deal, wait and answer (a signed answer is "
                           "good for the one wait it was made for)", counts=True, tampered=True)


# --- proving an answer ------------------------------------------------------------------------------

def split_proof(answer: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the proof, the answer without it): only the answer is ever recorded."""
    return ({k: answer[k] for k in PROOF_FIELDS if k in answer},
            {k: v for k, v in answer.items() if k not in PROOF_FIELDS})


def seal_key_of(secret_key: bytes | str) -> bytes:
    """The key of the gateway's seals, derived from the installation's secret key (never the key
    itself): the gateway and every process that checks answers have it; Prefect's credential
    does not give it."""
    key = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return hmac.new(key, b"dealflow gateway seals v1", hashlib.sha256).digest()


def _sealed(deal_number: str, wait_key: str, answer: dict[str, Any], by: str, at: int, nonce: str) -> bytes:
    return b"seal v1\n" + canonical(deal_number, wait_key, answer) + json.dumps(
        {"by": by, "at": at, "nonce": nonce}, sort_keys=True, separators=(",", ":")).encode()


def make_seal(seal_key: bytes, deal_number: str, wait_key: str, answer: dict[str, Any],
              now: datetime | None = None) -> dict[str, Any]:
    """The gateway's seal of ``answer`` (its ``by`` the signed-in person) to ``wait_key``."""
    now = now or utcnow()
    at = _epoch(now)
    nonce = secrets.token_urlsafe(18)
    by = str(answer.get("by", ""))
    mac = hmac.new(seal_key, _sealed(deal_number, wait_key, answer, by, at, nonce), hashlib.sha256).hexdigest()
    return {"v": 1, "by": by, "at": at, "nonce": nonce, "mac": mac}


def _check_seal(session: Session, person: StaffUser, seal: object, deal_number: str, wait_key: str,
                sent: dict[str, Any] | None, seal_key: bytes | None, now: datetime, consume: bool) -> None:
    """``sent``: the answer exactly as Prefect stored it (the seal covers that, not a reading of it)."""
    if sent is None:
        raise ProofRefused("seal: the answer as stored could not be read to check its seal; answer again")
    answer = {k: v for k, v in sent.items() if k not in PROOF_FIELDS}
    if seal_key is None:
        raise ProofRefused("seal: cannot be checked here: no secret key is set up (DEALFLOW_SECRET_KEY)")
    if not (isinstance(seal, dict) and seal.get("v") == 1 and isinstance(seal.get("at"), int)
            and isinstance(seal.get("nonce"), str) and isinstance(seal.get("mac"), str)
            and isinstance(seal.get("by"), str) and 0 < len(seal["nonce"]) <= 40):
        raise ProofRefused("seal: not a seal the gateway makes", tampered=True)
    expected = hmac.new(seal_key, _sealed(deal_number, wait_key, answer, seal["by"], seal["at"], seal["nonce"]),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), seal["mac"].encode()) or seal["by"] != person.handle:
        raise ProofRefused("seal: does not match this deal, wait, person and answer (the answer was changed "
                           "after it was sent)", tampered=True)
    sealed_at = datetime(1970, 1, 1) + timedelta(seconds=seal["at"])
    now_naive = now.replace(tzinfo=None) if now.tzinfo else now
    if sealed_at > now_naive + timedelta(minutes=5):
        raise ProofRefused("seal: made in the future", tampered=True)
    if now_naive - sealed_at > SEAL_MAX_AGE:
        raise ProofRefused(f"seal: the answer was sent on {sealed_at:%Y-%m-%d %H:%M} UTC and not read "
                           f"within {SEAL_MAX_AGE.days} days; answer again")
    if session.get(AnswerSeal, seal["nonce"]) is not None:
        raise ProofRefused("seal: used before (a sealed answer is good once)", tampered=True)
    if consume:
        session.add(AnswerSeal(nonce=seal["nonce"], staff_id=person.id, wait_key=wait_key[:80],
                               sealed_at=sealed_at, used_at=now_naive))


def prove(session: Session, person: StaffUser, roles: list[str], step: str, proof: dict[str, Any],
          deal_number: str, wait_key: str, answer: dict[str, Any], *, cipher: Cipher | None,
          codes_required: bool, consume: bool, now: datetime | None = None, door: str = "flow",
          seal_key: bytes | None = None, sent: dict[str, Any] | None = None) -> Proven:
    """Check that ``person`` may answer and that the proof holds, in this order: enabled, has the
    role, enrolled, not locked, then the gateway's seal (used up if ``consume``) or the session
    signature. A code in an answer, or no proof, is refused as tampered: no door of dealflow's
    sends one. A wrong signature is noted (the caller commits it with the refusal)."""
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
        raise ProofRefused("proof: answers need proof but no secret key is set up (DEALFLOW_SECRET_KEY)")
    if not person.enrolled:
        raise ProofRefused(f"by: {person.handle} is not enrolled for one-time codes; a manager runs "
                           f"`dealflow staff enroll {person.handle}`")
    check_not_locked(person, now)
    try:
        if proof.get("code") not in (None, ""):
            raise ProofRefused("code: a one-time code is never part of an answer (Prefect keeps answers "
                               "where others read them); sign in at the gateway, or `dealflow login`",
                               tampered=True)
        if proof.get("seal") not in (None, ""):
            _check_seal(session, person, proof["seal"], deal_number, wait_key, sent, seal_key, now, consume)
            kind = BY_GATEWAY
        elif proof.get("session") or proof.get("signature"):
            _check_signature(session, person, proof, deal_number, wait_key, answer, cipher, now)
            kind = BY_SESSION
        else:
            raise ProofRefused("proof: none; answer in the Prefect UI through dealflow's gateway (signed in), "
                               "or with `dealflow answer` after `dealflow login`", tampered=True)
    except ProofRefused as exc:
        _refused(session, person, exc, now, door, subject=wait_key, deal=deal_number)
    return Proven(person, kind, stands_in)


def _refused(session: Session, person: StaffUser, exc: ProofRefused, now: datetime, door: str,
             action: str | None = None, subject: str | None = None, deal: str | None = None) -> None:
    if exc.tampered:  # on the record as such, whatever else follows
        audit.record(session, person.handle, TAMPERED, subject=(subject or person.handle)[:60], deal=deal,
                     reason=str(exc), door=door)
    if exc.counts and note_failure(session, person, now, door):
        raise ProofRefused(f"{exc}; {person.handle} is now locked until {_until(person.locked_until, now)} "
                           f"after {FAILURES_TO_LOCK} wrong codes within "
                           f"{FAILURE_WINDOW.seconds // 60} minutes; a manager may stand in, or unlock with "
                           f"`dealflow staff unlock {person.handle}`") from None
    if action:
        audit.record(session, person.handle, action, subject=person.handle, reason=str(exc), door=door)
    raise exc


def new_secret_key() -> bytes:
    """A Fernet key (urlsafe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32))
