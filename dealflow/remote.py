"""The command line through the gateway: for a person without the business database or Prefect's
credential (a laptop, a colleague's machine). `dealflow login HANDLE --gateway URL` signs in
there with a one-time code and keeps the session's bearer token in the user's config folder
(``gateway.json``, mode 0600); `dealflow inbox`, `deal show` and `answer` then ask the gateway,
which checks every request as it checks the UI's (see ``dealflow/gateway.py``), and
`dealflow logout` signs out there. The token is never printed, logged or sent anywhere else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from models.errors import DomainError

from .login import config_dir, write_private


@dataclass(frozen=True)
class GatewayLogin:
    url: str
    token: str
    handle: str
    expires_at: datetime

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        """The gateway's JSON answer; its refusal, or its silence, as one line."""
        import httpx

        try:
            response = httpx.request(method, f"{self.url}{path}", json=body, timeout=timeout,
                                     headers={"authorization": f"Bearer {self.token}"})
        except httpx.HTTPError as exc:
            raise DomainError(f"gateway: {self.url} does not answer ({type(exc).__name__}); is it the right "
                              f"address?") from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code == 401:
            raise DomainError(f"gateway: your session at {self.url} has ended; sign in again: "
                              f"`dealflow login {self.handle} --gateway {self.url}`")
        if response.status_code >= 400:
            detail = data.get("detail") if isinstance(data, dict) else None
            raise DomainError(str(detail or f"gateway: {self.url} answered {response.status_code}"))
        return data


def login_file() -> Path:
    return config_dir() / "gateway.json"


def sign_in(url: str, handle: str, code: str, hours: float) -> GatewayLogin:
    from urllib.parse import urlsplit

    import httpx

    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise DomainError(f"gateway: {url!r} is not an address (http://… or https://…)")
    if url.startswith("http://") and urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise DomainError(f"gateway: {url} is plain http: your code and session would cross the network in "
                          f"the clear; use its https:// address")
    try:
        response = httpx.post(f"{url}/dealflow/api/login", json={"handle": handle, "code": code, "hours": hours},
                              timeout=30)
    except httpx.HTTPError as exc:
        raise DomainError(f"gateway: {url} does not answer ({type(exc).__name__}); is it the right address?") from None
    try:
        data = response.json()
    except ValueError:
        raise DomainError(f"gateway: {url} is not a dealflow gateway (answered {response.status_code})") from None
    if response.status_code != 200:
        raise DomainError(str(data.get("detail") or f"gateway: sign-in refused ({response.status_code})"))
    login = GatewayLogin(url, data["token"], data["handle"], datetime.fromisoformat(data["expires_at"]))
    save(login)
    return login


def save(login: GatewayLogin) -> Path:
    return write_private(login_file(), {"url": login.url, "token": login.token, "handle": login.handle,
                                        "expires_at": login.expires_at.isoformat()})


def current() -> GatewayLogin | None:
    """This user's gateway session, if they signed in at one (expired or not: the gateway says)."""
    try:
        data = json.loads(login_file().read_text())
        return GatewayLogin(data["url"], data["token"], data["handle"], datetime.fromisoformat(data["expires_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget() -> GatewayLogin | None:
    login = current()
    login_file().unlink(missing_ok=True)
    return login
