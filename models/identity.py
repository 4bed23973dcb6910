"""Proof that an answer comes from its person: one-time codes and signed sessions.

A person proves who they are with a one-time code once, when they sign in (``open_session``:
the 6 digits their authenticator app shows, TOTP, RFC 6238, 30 s steps, one step either side;
a code is consumed by its first use, also when two sign-ins race, since the person's row is
locked). Every answer to a wait then names its person (``by``) and carries one of two proofs,
never the code itself (Prefect stores answers where every holder of its credential reads them):

- ``seal``: the gateway's (``dealflow/gateway/``) HMAC over the deal, the wait's key, the
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

Its rooms, lowest first: ``proof`` (what every proof shares: its fields, what is signed, the
refusal), ``one_time_codes`` (codes, the lock), ``staff_sessions`` (sessions and signed answers),
``seals`` (the gateway's seals); here, what uses them: ``enroll``, ``open_session`` and ``prove``.
The names of the rooms are gathered here for the importers that have always used them.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from sqlalchemy.orm import Session

from . import audit
from .base import utcnow
from .errors import DomainError, PermissionDenied
from .one_time_codes import (
    DIGITS,
    FAILURE_WINDOW,
    FAILURES_TO_LOCK,
    ISSUER,
    LOCK_FOR,
    LONGEST_LOCK,
    STEP_SECONDS,
    AnswerFailure,
    check_code,
    check_not_locked,
    lock_length,
    locked,
    note_failure,
    provisioning_uri,
    refuse_proof,
    totp,
    unlock,
    use_code,
)
from .proof import (
    BY_CODE,
    BY_GATEWAY,
    BY_SESSION,
    PROOF_FIELDS,
    TAMPERED,
    UNVERIFIED,
    Cipher,
    ProofRefused,
    canonical,
    split_proof,
)
from .seals import SEAL_MAX_AGE, AnswerSeal, check_seal, make_seal, seal_key_of
from .staff import StaffUser, staff_member
from .staff_sessions import (
    MAX_SESSION_HOURS,
    SESSION_HOURS,
    OpenedSession,
    StaffSession,
    check_signature,
    close_session,
    close_sessions,
    sign,
)

__all__ = [
    "BY_CODE", "BY_GATEWAY", "BY_SESSION", "DIGITS", "FAILURES_TO_LOCK", "FAILURE_WINDOW", "ISSUER", "LOCK_FOR",
    "LONGEST_LOCK", "MAX_SESSION_HOURS", "PROOF_FIELDS", "SEAL_MAX_AGE", "SESSION_HOURS", "STEP_SECONDS",
    "TAMPERED", "UNVERIFIED", "AnswerFailure", "AnswerSeal", "Cipher", "OpenedSession", "ProofRefused", "Proven",
    "StaffSession", "canonical", "check_code", "check_not_locked", "close_session", "close_sessions", "enroll",
    "lock_length", "locked", "make_seal", "new_secret_key", "note_failure", "open_session", "prove",
    "provisioning_uri", "seal_key_of", "sign", "split_proof", "totp", "unlock", "use_code",
]


@dataclass(frozen=True)
class Proven:
    person: StaffUser
    kind: str  # BY_CODE, BY_SESSION or UNVERIFIED
    stands_in_for: str | None  # a manager answering for a role they do not hold


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


def prove(session: Session, person: StaffUser, roles: list[str], step: str, proof: dict[str, Any],
          deal_number: str, wait_key: str, answer: dict[str, Any], *, cipher: Cipher | None,
          codes_required: bool, consume: bool, now: datetime | None = None, door: str = "flow",
          seal_key: bytes | None = None, sent: dict[str, Any] | None = None) -> Proven:
    """Check that ``person`` may answer and that the proof holds, in this order: enabled, has the
    role, enrolled, not locked, then the gateway's seal (used up if ``consume``) or the session
    signature. A code in an answer, or no proof, is refused as tampered: no door of dealflow's
    sends one. A wrong signature is noted (the caller commits it with the refusal)."""
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
            check_seal(session, person, proof["seal"], deal_number, wait_key, sent, seal_key, now, consume)
            kind = BY_GATEWAY
        elif proof.get("session") or proof.get("signature"):
            check_signature(session, person, proof, deal_number, wait_key, answer, cipher, now)
            kind = BY_SESSION
        else:
            raise ProofRefused("proof: none; answer in the Prefect UI through dealflow's gateway (signed in), "
                               "or with `dealflow answer` after `dealflow login`", tampered=True)
    except ProofRefused as exc:
        refuse_proof(session, person, exc, now, door, subject=wait_key, deal=deal_number)
    return Proven(person, kind, stands_in)


def new_secret_key() -> bytes:
    """A Fernet key (urlsafe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32))
