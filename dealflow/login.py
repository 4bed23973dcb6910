"""The CLI's session: `dealflow login` opens one with a code, and every `dealflow answer` made in
it is signed with its key (see ``models.identity``). The key is kept in the user's own config
folder (``$DEALFLOW_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/dealflow``, else ``~/.config/dealflow``),
one file per business database, mode 0600; the database keeps it encrypted. It is never passed
on the command line, in a parameter or a log: only the signature travels with the answer."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command line through the gateway needs no SQLAlchemy: imported where used
    from models import identity


@dataclass(frozen=True)
class Login:
    session: str
    handle: str
    key: str
    expires_at: datetime

    def prove(self, deal_number: str, wait_key: str, answer: dict[str, Any]) -> dict[str, str]:
        """The proof fields for ``answer`` to ``wait_key`` of ``deal_number``."""
        from models import identity

        return {"session": self.session, "signature": identity.sign(self.key, deal_number, wait_key, answer)}

    @classmethod
    def opened(cls, opened: identity.OpenedSession) -> Login:
        return cls(opened.id, opened.handle, opened.key, opened.expires_at)


def config_dir() -> Path:
    if os.environ.get("DEALFLOW_CONFIG_DIR"):
        return Path(os.environ["DEALFLOW_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dealflow"


def session_file(database_url: str | None = None) -> Path:
    from services.config import load_settings

    url = database_url or load_settings().database_url
    return config_dir() / f"session-{hashlib.sha256(url.encode()).hexdigest()[:12]}.json"


def save(login: Login) -> Path:
    return write_private(session_file(), {"session": login.session, "handle": login.handle, "key": login.key,
                                          "expires_at": login.expires_at.isoformat()})


def write_private(path: Path, data: dict[str, Any]) -> Path:
    """``data`` as JSON at ``path``, readable by its owner only, replaced whole (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    return path


def current() -> Login | None:
    """This user's session for this database, if they logged in (expired or not: the check says)."""
    try:
        data = json.loads(session_file().read_text())
        return Login(data["session"], data["handle"], data["key"], datetime.fromisoformat(data["expires_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget() -> Login | None:
    login = current()
    session_file().unlink(missing_ok=True)
    return login
