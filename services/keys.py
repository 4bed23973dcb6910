"""The secret key that encrypts what must not be stored in clear (TOTP secrets, session keys).

Where it comes from, in this order: ``DEALFLOW_SECRET_KEY`` (a Fernet key), or the key file
``dealflow init`` creates in the data folder (``secret.key``, mode 0600). Never a Prefect Secret
block: whoever holds Prefect's credential reads blocks, and this key derives the gateway's seals. Every process that checks an
answer (the executor, a worker, the CLI) needs the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet

from models.errors import ValidationError

from .config import Settings, load_settings

KEY_FILE = "secret.key"


def key_file(settings: Settings | None = None) -> Path:
    return (settings or load_settings()).data_dir / KEY_FILE


def _key_text(settings: Settings) -> tuple[str, str]:
    """(the key, where it came from)"""
    if os.environ.get("DEALFLOW_SECRET_KEY"):
        return os.environ["DEALFLOW_SECRET_KEY"].strip(), "DEALFLOW_SECRET_KEY"
    if os.environ.get("DEALFLOW_SECRET_KEY_BLOCK"):
        # A Prefect Secret block is read by whoever holds Prefect's credential; the key derives
        # the gateway's seals, which that credential must not be able to make.
        raise ValidationError("DEALFLOW_SECRET_KEY_BLOCK", "no longer taken: a key in a Prefect Secret block is "
                                                           "readable with Prefect's credential, and it makes the "
                                                           "gateway's seals; give it as DEALFLOW_SECRET_KEY (from "
                                                           "your services' secret store) or the key file")
    path = key_file(settings)
    try:
        return path.read_text().strip(), str(path)
    except FileNotFoundError:
        raise ValidationError("DEALFLOW_SECRET_KEY", f"no secret key: set DEALFLOW_SECRET_KEY, or run "
                                                     f"`dealflow init` (it creates {path})") from None


@lru_cache(maxsize=8)
def _fernet(key: str, where: str) -> Fernet:
    try:
        return Fernet(key.encode())
    except (ValueError, TypeError):
        raise ValidationError("DEALFLOW_SECRET_KEY", f"the key from {where} is not a Fernet key (44 characters "
                                                     f"of url-safe base64; `dealflow init` makes one)") from None


def cipher(settings: Settings | None = None) -> Fernet:
    """The Fernet cipher of this installation's secret key."""
    return _fernet(*_key_text(settings or load_settings()))


def portal_secret(settings: Settings | None = None) -> bytes:
    """The secret that signs the customer's links and answers (the portal): derived from this
    installation's key, so that it is never the key itself and changes with it."""
    key, _ = _key_text(settings or load_settings())
    cipher(settings)  # a malformed key is said as such, once
    return hmac.new(key.encode(), b"dealflow portal links v1", hashlib.sha256).digest()


def seal_key(settings: Settings | None = None) -> bytes:
    """The key of the gateway's seals on answers (see ``models.identity.make_seal``)."""
    from models.identity import seal_key_of

    key, _ = _key_text(settings or load_settings())
    cipher(settings)
    return seal_key_of(key)


def has_key(settings: Settings | None = None) -> bool:
    settings = settings or load_settings()
    return bool(os.environ.get("DEALFLOW_SECRET_KEY") or os.environ.get("DEALFLOW_SECRET_KEY_BLOCK")
                or key_file(settings).exists())


def ensure_key_file(settings: Settings | None = None) -> Path | None:
    """Create the data folder's key file (mode 0600) unless a key is configured or the file exists;
    returns its path when it was created now."""
    settings = settings or load_settings()
    if has_key(settings):
        return None
    path = key_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(Fernet.generate_key().decode() + "\n")
    return path


def answer_check(door: str = "flow", settings: Settings | None = None):
    """How answers are proven in this process: codes required unless DEALFLOW_ANSWER_CODES=off,
    with this installation's cipher (None when no key is found: every answer is then refused,
    saying so, rather than the run failing)."""
    from models.process import AnswerCheck

    settings = settings or load_settings()
    if not settings.answer_codes:  # staff need no code; a customer's answer is still checked
        try:
            return AnswerCheck(None, codes_required=False, door=door, link_secret=portal_secret(settings))
        except ValidationError:
            return AnswerCheck(None, codes_required=False, door=door)
    try:
        return AnswerCheck(cipher(settings), codes_required=True, door=door, link_secret=portal_secret(settings),
                           seal_key=seal_key(settings))
    except ValidationError:
        return AnswerCheck(None, codes_required=True, door=door)
