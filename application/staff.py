"""Staff accounts (add, roles, discount limits, disable, enable, unlock), their one-time codes
(enrol) and login sessions. Every change is audited with who made it."""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import DomainError, StaffUser, audit, identity, utcnow
from models.staff import add_staff as new_staff
from models.staff import check_roles, disable, enable, set_roles, staff_member
from models.text import shown

from .uow import unit_of_work

Kept = TypeVar("Kept")


def _staff_row(p: StaffUser) -> dict[str, Any]:
    return {"handle": p.handle, "name": p.name, "email": p.email, "roles": p.role_list,
            "enabled": p.active, "enrolled": p.enrolled,
            "locked_until": p.locked_until.isoformat(timespec="seconds")
            if p.locked_until and identity.locked(p, utcnow()) else None}


def add_staff(handle: str, name: str, email: str, roles: str, by: str) -> dict[str, Any]:
    """A new account with ROLE[,ROLE…], not yet enrolled for one-time codes."""
    with unit_of_work() as s:
        person = new_staff(s, handle, name, email, roles)
        audit.record(s, by, "staff.added", subject=person.handle, roles=person.role_list)
        return _staff_row(person)


def list_staff() -> list[dict[str, Any]]:
    """Every account, by handle: roles, enabled, enrolled, locked until."""
    with unit_of_work() as s:
        return [_staff_row(p) for p in s.scalars(select(StaffUser).order_by(StaffUser.handle))]


def _change(handle: str, change: Callable[[Session, StaffUser], object], by: str, action: str,
            **details: Any) -> dict[str, Any]:
    with unit_of_work() as s:
        person = staff_member(s, handle)
        change(s, person)
        audit.record(s, by, action, subject=person.handle, **details)
        return _staff_row(person)


def change_roles(handle: str, roles: list[str], by: str) -> dict[str, Any]:
    """HANDLE's roles become ``roles`` (the last manager stays one); their open sessions close."""
    wanted = check_roles(roles)
    return _change(handle, lambda s, p: set_roles(s, p, wanted), by, "staff.roles_changed", roles=wanted.split(","))


def disable_staff(handle: str, by: str) -> dict[str, Any]:
    """HANDLE can no longer answer or log in (the last enabled manager cannot be disabled)."""
    return _change(handle, disable, by, "staff.disabled")


def enable_staff(handle: str, by: str) -> dict[str, Any]:
    return _change(handle, lambda s, p: enable(p), by, "staff.enabled")


def set_discount_limit(handle: str, discount: str, by: str) -> dict[str, Any]:
    """The largest line discount HANDLE gives without a manager's approval: a percentage,
    'unlimited' or 'default'. Returns the handle and ``discount_limit`` (a Decimal; None: no limit)."""
    with unit_of_work() as s:
        person = staff_member(s, handle)
        person.set_discount_limit(discount)
        limit: Decimal | None = person.discount_limit
        audit.record(s, by, "staff.discount_limit", subject=person.handle,
                     discount_limit=str(limit) if limit is not None else "unlimited")
        return {"handle": person.handle, "discount_limit": limit}


def unlock(handle: str, by: str, session_id: str | None = None) -> bool:
    """Lift HANDLE's lock after wrong codes (the next lock is a short one again); whether one was in
    force. ``by`` with ``session_id``: a person logged in, whose session must be a manager's and
    open; without: the administrator on the server, who holds the installation's secret key."""
    from services import keys

    with unit_of_work() as s:
        if session_id is not None:
            manager = staff_member(s, by)
            row = s.get(identity.StaffSession, session_id)
            if row is None or row.staff_id != manager.id or row.closed_at is not None or row.expires_at <= utcnow() \
                    or not manager.holds("manager") or not manager.active:
                raise DomainError(f"staff unlock: a manager's step, and you are logged in as {by}; "
                                  f"`dealflow logout`, or log in as a manager")
            by = manager.handle
        else:
            keys.cipher()  # the administrator: this machine holds the installation's key
        return identity.unlock(s, staff_member(s, handle), by)


def enroll(handle: str, by: str, png: Path | None = None) -> dict[str, str]:
    """A new one-time-code secret for HANDLE (the old one stops working): its otpauth:// URI, and
    its QR code written as a PNG only they may read (``png``, or DATA_DIR/enroll/HANDLE.png, which
    replaces our own earlier one; a path given is never overwritten). A PNG that cannot be written
    enrols no one."""
    import segno

    from services import keys
    from services.config import load_settings

    settings = load_settings()
    cipher = keys.cipher(settings)
    with unit_of_work() as s:
        person = staff_member(s, handle)
        uri = identity.enroll(s, person, cipher, by=by)
        qr = segno.make(uri, error="m")
        path = png or settings.data_dir / "enroll" / f"{person.handle}.png"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if png is None:
                path.unlink(missing_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                qr.save(f, kind="png", scale=6)
        except OSError as exc:
            raise DomainError(f"png: cannot write {shown(str(path), 200)} ({exc.strerror}); "
                              f"choose another path") from None
        return {"handle": person.handle, "uri": uri, "png": str(path)}


def log_in(handle: str, code: str, hours: float, keep: Callable[[identity.OpenedSession], Kept]
           ) -> tuple[identity.OpenedSession, Kept]:
    """Open a login session with a one-time code (used up), and ``keep`` it where the door keeps
    it (the command line: a file of the user's); returns the session and what ``keep`` returned.
    A refused login is on the record (a wrong code counts towards a lock); one that cannot be
    kept (``keep`` raises) is not opened."""
    from services import keys

    cipher = keys.cipher()
    with unit_of_work() as s:
        try:
            opened = identity.open_session(s, handle, code, cipher, hours=hours)
        except DomainError:
            s.commit()  # the refusal and a wrong code are on the record
            raise
        return opened, keep(opened)


def log_out(session_id: str) -> bool:
    """Close a login session; whether it was open."""
    with unit_of_work() as s:
        return identity.close_session(s, session_id)


def acting_manager(s: Session, handle: str, proof: dict[str, Any], *, subject: str, action: str, what: str,
                   payload: dict[str, Any], door: str = "command line") -> tuple[StaffUser, str]:
    """The manager ``handle`` who does ``action`` to ``subject``, and how that is proven (see ``acting_person``)."""
    from models import Role

    return acting_person(s, handle, Role.MANAGER, proof, subject=subject, action=action, what=what, payload=payload,
                         door=door)


def acting_person(s: Session, handle: str, role: str, proof: dict[str, Any], *, subject: str, action: str,
                  what: str, payload: dict[str, Any], door: str = "command line") -> tuple[StaffUser, str]:
    """The person ``handle`` holding ``role`` (a manager stands in for any) who does ``action``
    (e.g. "cancel") to ``subject`` (a deal's or invoice's number as given; ``what``: the step in
    words, "cancel an order"), and how that is proven: (the person, ``identity.BY_CODE``,
    ``BY_SESSION`` or ``UNVERIFIED``). The proof is a one-time code (``{"code": …}``, used up with
    the caller's commit), or the signature of a session of theirs (``dealflow login``) over the
    subject, the action and ``payload``; with DEALFLOW_ANSWER_CODES=off the handle is enough. A
    person who is not enabled or without the role is refused before any proof is looked at; a
    wrong code or signature is committed (it counts towards a lock) and raised."""
    from models import Role, ValidationError
    from models.staff_sessions import check_signature
    from services import keys

    person = staff_member(s, handle, "by", lock=True)  # a code is used up once, also in a race
    if not person.active:
        raise ValidationError("by", f"{person.handle} is disabled")
    manager = role == Role.MANAGER
    if not person.holds(role):
        raise ValidationError("by", f"{person.handle} ({person.role}) is not {'a manager' if manager else role}: "
                                    f"only {'a manager' if manager else role + ' (or a manager)'} may {what}")
    check = keys.answer_check(door)
    if not check.codes_required:
        return person, identity.UNVERIFIED
    if check.cipher is None:
        raise DomainError(f"proof: a {'manager' if manager else role}'s step needs a code, but no secret key is set "
                          f"up (DEALFLOW_SECRET_KEY)")
    now = utcnow()
    try:
        if proof.get("code") not in (None, ""):
            identity.check_code(s, person, proof["code"], check.cipher, door=door, now=now, consume=True,
                                field="by")
            return person, identity.BY_CODE
        if proof.get("session") or proof.get("signature"):
            identity.check_not_locked(person, now)
            try:
                check_signature(s, person, proof, subject, action, payload, check.cipher, now)
            except identity.ProofRefused as exc:
                identity.refuse_proof(s, person, exc, now, door, subject=action, deal=subject)
            return person, identity.BY_SESSION
    except DomainError:
        s.commit()  # a wrong code or signature is on the record, and counts; nothing else was written
        raise
    raise DomainError(f"code: {action} is a {'manager' if manager else role}'s step and needs proof: --code NNNNNN "
                      f"(the 6 digits your authenticator app shows), or `dealflow login {person.handle}` once")

