"""What the team's gateway asks of the business: signing a person in and out, who the session a
request carries belongs to, a Resume named and sealed for the wait its run is at, the refusals
and cancels on the record. What the command line reads through it is ``inbox``'s and ``deals``'.

The session's token, its cookie, the cache of sessions, the rate limit on failed sign-ins and
the HTTP answers stay in the door (``dealflow.gateway``); the limit's count is ``throttle``'s, in
the database, so that the gateway's replicas share it.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import DomainError, audit, identity
from models.base import utcnow
from models.deal import Deal, Wait
from models.states import WaitStatus
from services import keys
from services.config import load_settings

from . import staff
from .uow import unit_of_work

# --- signing in ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignedIn:
    """A person signed in: their open session (``session_id``, its ``key``) and until when."""
    handle: str
    name: str
    roles: tuple[str, ...]
    session_id: str
    key: bytes
    expires_at: datetime


def sign_in(handle: str, code: str, hours: float, door: str) -> SignedIn:
    """Open a staff session for ``hours`` with a one-time code (used up; with answer codes off, the
    handle is enough). A refusal is on the record, and a wrong code counts towards a lock."""
    codes = load_settings().answer_codes
    with unit_of_work() as s:
        try:
            opened = identity.open_session(s, handle, code, keys.cipher(), hours=hours, door=door, verify=codes)
        except Exception:
            s.commit()  # a wrong code counts towards the lock, and the refusal is on the record
            raise
        s.commit()
        person = _signed_in(s, opened.id, base64.b64decode(opened.key))
    assert person is not None
    return person


def signed_in(session_id: str, key: bytes) -> SignedIn | None:
    """The person whose open session this is, if ``key`` is its key; None if it is unknown,
    closed, expired, its person disabled, or it is another installation's."""
    with unit_of_work() as s:
        return _signed_in(s, session_id, key)


def sign_out(session_id: str) -> bool:
    """Close the session (signed out at the gateway, or `dealflow logout` through it); whether it
    was open."""
    return staff.log_out(session_id)


def _signed_in(s: Session, session_id: str, key: bytes) -> SignedIn | None:
    row = s.get(identity.StaffSession, session_id)
    if row is None or row.closed_at is not None or row.expires_at <= utcnow() or not row.person.active:
        return None
    try:
        stored = keys.cipher().decrypt(row.key.encode())
    except Exception:  # noqa: BLE001 - another installation's key: not a session of ours
        return None
    if not hmac.compare_digest(stored, key):
        return None
    p = row.person
    return SignedIn(p.handle, p.name, tuple(p.role_list), row.id, key, row.expires_at)


# --- a Resume sealed ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class WaitFound:
    deal: str
    deal_id: int
    step: str
    key: str
    roles: tuple[str, ...]


class ResumeRefused(DomainError):
    """A Resume the gateway does not seal: the run waits at no open wait of a deal (``at_a_wait``
    False), or the person's roles may not answer the one it waits at."""

    def __init__(self, reason: str, at_a_wait: bool):
        self.at_a_wait = at_a_wait
        super().__init__(reason)


def open_wait_of_run(run_id: str) -> WaitFound | None:
    """The open wait of a deal that the flow run ``run_id`` waits at, as the business database
    says (not Prefect, whose stored state anyone with its credential may change)."""
    with unit_of_work() as s:
        row = s.execute(select(Wait, Deal.number).join(Deal, Deal.id == Wait.deal_id).where(
            Wait.flow_run_id == run_id, Wait.status == WaitStatus.OPEN).order_by(Wait.id.desc())).first()
        if row is None:
            return None
        wait, number = row
        return WaitFound(number, wait.deal_id, wait.step, wait.key, tuple(wait.role_list))


def seal_answer(run_id: str, answer: dict[str, Any], handle: str, roles: Sequence[str],
                seal_key: bytes) -> dict[str, Any]:
    """``handle``'s answer to the wait the run ``run_id`` is at, named after them (whatever was
    typed), without any proof typed into it, and sealed to that wait's key: should Prefect hold
    the run paused elsewhere, the flow finds the seal is not for its wait and refuses it. Returns
    the ``deal``, the wait's ``key`` and the ``answer`` to send. ResumeRefused: the run waits at
    no open wait, or ``roles`` may not answer it (a manager may stand in)."""
    wait = open_wait_of_run(run_id)
    if wait is None:
        raise ResumeRefused("this run waits at no open wait of a deal", at_a_wait=False)
    if not any(r in roles for r in wait.roles) and "manager" not in roles:
        raise ResumeRefused(f"{handle} ({', '.join(roles)}) may not answer {wait.step} of {wait.deal}: it needs "
                            f"{' or '.join(wait.roles)}", at_a_wait=True)
    sealed = {k: v for k, v in answer.items() if k not in identity.PROOF_FIELDS}
    sealed["by"] = handle  # from the session, whatever was typed
    sealed["seal"] = identity.make_seal(seal_key, wait.deal, wait.key, sealed)
    return {"deal": wait.deal, "key": wait.key, "answer": sealed}


# --- on the record ------------------------------------------------------------------------------------

def record_refused(by: str, method: str, path: str, reason: str) -> None:
    """A request the gateway refused ``by`` (a staff handle), on the record."""
    _record(by, "gateway.refused", f"{method} {path}", method=method, path=path[:300], reason=reason)


def record_cancelled(by: str, path: str) -> None:
    """A manager's cancel of a deal's run, let through to Prefect, on the record."""
    _record(by, "gateway.cancelled", path, path=path[:300])


def _record(by: str, action: str, subject: str, **details: Any) -> None:
    with unit_of_work() as s:
        audit.record(s, by[:40], action, subject=subject[:60], door="gateway", **details)

