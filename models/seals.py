"""The gateway's seals (``dealflow/gateway/``): an HMAC over the deal, the wait's key, the answer as
sent, the person taken from their signed-in session, the time and a nonce, with a key derived from
the installation's secret key; good once (``models.identity``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, utcnow
from .proof import PROOF_FIELDS, ProofRefused, canonical, epoch

if TYPE_CHECKING:
    from .staff import StaffUser

SEAL_MAX_AGE = timedelta(days=2)  # a sealed answer the flow has not read by then is refused


class AnswerSeal(Base):
    """A gateway's seal the flow has accepted: its nonce, so that it is good once."""
    __tablename__ = "answer_seals"

    nonce: Mapped[str] = mapped_column(String(40), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    wait_key: Mapped[str] = mapped_column(String(80))
    sealed_at: Mapped[datetime]
    used_at: Mapped[datetime] = mapped_column(default=utcnow)


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
    at = epoch(now)
    nonce = secrets.token_urlsafe(18)
    by = str(answer.get("by", ""))
    mac = hmac.new(seal_key, _sealed(deal_number, wait_key, answer, by, at, nonce), hashlib.sha256).hexdigest()
    return {"v": 1, "by": by, "at": at, "nonce": nonce, "mac": mac}


def check_seal(session: Session, person: StaffUser, seal: object, deal_number: str, wait_key: str,
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
