"""One-time codes (TOTP, RFC 6238: 30 s steps, 6 digits, one step either side), a person's
enrolment secret kept encrypted, and the lock after wrong codes: five within ten minutes lock the
person for ten minutes, each next lock twice as long, up to a day (``models.identity``).
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pyotp
from sqlalchemy import ForeignKey, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import audit
from .base import Base, utcnow
from .proof import TAMPERED, Cipher, ProofRefused, decrypt, epoch

if TYPE_CHECKING:
    from .staff import StaffUser

ISSUER = "dealflow"
STEP_SECONDS = 30
DIGITS = 6
FAILURES_TO_LOCK = 5
FAILURE_WINDOW = timedelta(minutes=10)
LOCK_FOR = timedelta(minutes=10)  # the first lock; each next one doubles, up to LONGEST_LOCK
LONGEST_LOCK = timedelta(days=1)


class AnswerFailure(Base):
    """A wrong code or signature given for a person (when, not what): what the lock counts."""
    __tablename__ = "answer_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


def provisioning_uri(person: StaffUser, secret: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=person.handle, issuer_name=ISSUER)


def totp(person: StaffUser, cipher: Cipher) -> pyotp.TOTP:
    """The person's TOTP generator (the demo's scripted people compute their codes with it)."""
    if person.totp_secret is None:
        raise ProofRefused(f"by: {person.handle} is not enrolled; a manager runs `dealflow staff enroll "
                           f"{person.handle}`")
    secret = decrypt(cipher, person.totp_secret).decode()
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)


def _time_step(now: datetime) -> int:
    return epoch(now) // STEP_SECONDS


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
        refuse_proof(session, person, exc, now, door, action)


def refuse_proof(session: Session, person: StaffUser, exc: ProofRefused, now: datetime, door: str,
                 action: str | None = None, subject: str | None = None, deal: str | None = None) -> None:
    """Raise ``exc``, first putting it on the record: a tampered proof audited as such, a wrong code
    or signature counted towards the lock (raised as the lock when it locks), ``action`` audited."""
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
