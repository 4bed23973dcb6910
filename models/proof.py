"""What every proof of an answer shares (``models.identity`` tells the whole story): the fields of
an answer that carry a proof, what a session's signature or a seal covers (``canonical``), how an
answer was proven, the refusal, and the cipher the staff's secrets are kept with.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from .errors import DomainError

# portal: a customer's signed answer (models.portal); code: never a proof in an answer (refused)
PROOF_FIELDS = ("code", "session", "signature", "seal", "portal")

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


def decrypt(cipher: Cipher, token: str) -> bytes:
    try:
        return cipher.decrypt(token.encode())
    except Exception:  # cryptography's InvalidToken: another installation's key
        raise DomainError("DEALFLOW_SECRET_KEY: does not decrypt the staff's secrets; is it the key this "
                          "installation's `dealflow init` made (DATA_DIR/secret.key)?") from None


def epoch(now: datetime) -> int:
    """Seconds since 1970 (a naive time is UTC, as ``utcnow`` gives)."""
    return int(now.timestamp() if now.tzinfo else (now - datetime(1970, 1, 1)).total_seconds())


def canonical(deal_number: str, wait_key: str, answer: dict[str, Any]) -> bytes:
    """What a session signs: the deal, the wait and the answer (without its proof)."""
    body = {k: v for k, v in answer.items() if k not in PROOF_FIELDS}
    return json.dumps({"deal": deal_number, "wait": wait_key, "answer": body}, sort_keys=True,
                      separators=(",", ":"), default=str).encode()


def split_proof(answer: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the proof, the answer without it): only the answer is ever recorded."""
    return ({k: answer[k] for k in PROOF_FIELDS if k in answer},
            {k: v for k, v in answer.items() if k not in PROOF_FIELDS})
