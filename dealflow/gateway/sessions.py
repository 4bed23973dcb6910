"""Signing in at the gateway: who a request comes from, and the pages that sign people in and out.

A person signs in with their handle and one-time code (``/dealflow/sign-in``) and stays signed
in with an HttpOnly cookie for 8 hours: a staff session of ``models.identity``, closed when they
sign out, are disabled, enrolled again or given other roles. ``dealflow login --gateway URL``
gets the same session as a bearer token for the command line (``/dealflow/api/login``). The
token is the session's id and key, never logged or stored. The sign-in form, which has no
session to tie a token to yet, carries an HMAC of its own cookie; failed sign-ins are counted per
address (``dealflow.limits``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from html import escape
from urllib.parse import SplitResult, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from application import gateway
from application.gateway import SignedIn

from ..limits import FailureLimit, limit_key
from .config import GatewayConfig

log = logging.getLogger("dealflow.gateway")

SESSION_COOKIE = "dealflow_session"
SIGNIN_COOKIE = "dealflow_signin"
# One answer to every failed sign-in: whether the handle exists, is disabled, locked or not
# enrolled is not a stranger's to learn (`dealflow staff list` and the audit log say which)
SIGN_IN_REFUSED = ("handle or code: not accepted. Type the code your authenticator app shows now (a code works once); "
                   "after 5 wrong codes you are locked for a while: a manager can unlock you")
CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")


@dataclass(frozen=True)
class Person(SignedIn):
    """A person signed in at the gateway: the application's ``SignedIn``, with what the door asks of it."""

    @property
    def is_manager(self) -> bool:
        return "manager" in self.roles

    def csrf(self, purpose: str) -> str:
        return hmac.new(self.key, f"csrf:{purpose}".encode(), hashlib.sha256).hexdigest()


def token_of(session_id: str, key: bytes) -> str:
    """The session's bearer token (and cookie): its id and key. Never logged or stored."""
    return f"{session_id}.{base64.urlsafe_b64encode(key).decode().rstrip('=')}"


def _split_token(token: str) -> tuple[str, bytes] | None:
    sid, dot, key = token.partition(".")
    if not dot or not sid or len(sid) > 40 or len(key) > 64:
        return None
    try:
        return sid, base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    except (ValueError, TypeError):
        return None


# --- what signing in asks of the business (in a thread: SQLAlchemy is synchronous) ----------------

def _person(found: SignedIn) -> Person:
    return Person(**{f.name: getattr(found, f.name) for f in fields(found)})


def load_person(token: str) -> Person | None:
    """The person whose open session ``token`` is, or None (unknown, closed, expired, disabled)."""
    parts = _split_token(token)
    if parts is None:
        return None
    found = gateway.signed_in(*parts)
    return _person(found) if found is not None else None


def _sign_in(handle: str, code: str, hours: float, door: str) -> tuple[str, Person]:
    found = gateway.sign_in(handle, code, hours, door)
    return token_of(found.session_id, found.key), _person(found)


def sign_out(session_id: str) -> None:
    gateway.sign_out(session_id)


# --- reading a request ------------------------------------------------------------------------------

def token_in(request: Request) -> str:
    """The session token a request carries: its bearer token, else its cookie ("" if neither)."""
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else request.cookies.get(SESSION_COOKIE, "")


def bearer(request: Request) -> bool:
    return request.headers.get("authorization", "")[:7].lower() == "bearer "


def same_origin(request: Request, public: SplitResult | None) -> bool:
    """The request comes from a page of the gateway itself (never from another site's)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return False
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(referer))
    seen = urlsplit(origin)
    if public is not None:
        return (seen.scheme, seen.netloc) == (public.scheme, public.netloc)
    return seen.netloc == request.headers.get("host", "")


def safe_next(target: str) -> str:
    """Where to go after signing in: a path of this site only (never //elsewhere or a URL)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or target.startswith("/dealflow/"):
        return "/"
    return target[:2000]


def _limit_key(request: Request) -> str:
    return limit_key(request.client.host if request.client else "?")


def _page_headers(secure: bool) -> dict[str, str]:
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a form POST
    headers = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "same-origin",
               "x-frame-options": "DENY", "cache-control": "no-store"}
    if secure:
        headers["strict-transport-security"] = "max-age=31536000"
    return headers


def page(title: str, body: str, secure: bool, status: int = 200) -> HTMLResponse:
    html = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)} · dealflow</title>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}"
            "label{display:block;margin:.8rem 0 .2rem}input{font:inherit;width:100%;padding:.4rem;"
            "box-sizing:border-box}button{font:inherit;margin-top:1rem;padding:.5rem 1.2rem}"
            ".error{color:#a00;font-weight:600}</style></head>"
            f"<body><h1>{escape(title)}</h1>{body}</body></html>")
    return HTMLResponse(html, status_code=status, headers=_page_headers(secure))


# --- the pages --------------------------------------------------------------------------------------

class SignIn:
    """``/dealflow/sign-in``, ``/dealflow/sign-out``, ``/dealflow/api/login`` and ``/dealflow/me``.
    ``person_of`` names a request's person (the gateway's cache of sessions); ``forget`` empties
    that cache when a session is closed here."""

    def __init__(self, config: GatewayConfig, limit: FailureLimit,
                 person_of: Callable[[Request], Awaitable[Person | None]], forget: Callable[[], None]):
        from services import keys
        from services.config import load_settings

        self.config, self.limit, self.person_of, self.forget = config, limit, person_of, forget
        self.secret = hmac.new(keys.portal_secret(), b"dealflow gateway sign-in v1", hashlib.sha256).digest()
        self.secure = (config.public_url or "").startswith("https://")
        self.public = urlsplit(config.public_url) if config.public_url else None
        self.codes_on = load_settings().answer_codes

    def form(self, cookie: str, next_path: str, message: str = "", handle: str = "", status: int = 200) -> HTMLResponse:
        token = hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()
        code_field = ("<label for=code>One-time code</label><input id=code name=code inputmode=numeric "
                      "autocomplete=one-time-code pattern='[0-9]{6}' maxlength=6 required>"
                      "<p><small>The 6 digits your authenticator app shows now.</small></p>") if self.codes_on else \
            "<p><small>Answer codes are off (DEALFLOW_ANSWER_CODES=off): your handle is enough.</small></p>"
        body = ((f"<p class=error role=alert>{escape(message)}</p>" if message else "")
                + "<form method=post action='/dealflow/sign-in'>"
                f"<input type=hidden name=csrf value='{token}'><input type=hidden name=next value='{escape(next_path)}'>"
                f"<label for=handle>Your handle</label><input id=handle name=handle autocomplete=username "
                f"value='{escape(handle)}' maxlength=40 required autofocus>{code_field}"
                "<button type=submit>Sign in</button></form>")
        response = page("Sign in to dealflow", body, self.secure, status)
        response.set_cookie(SIGNIN_COOKIE, cookie, max_age=3600, httponly=True, samesite="strict", secure=self.secure,
                            path="/dealflow/")
        return response

    async def sign_in_page(self, request: Request) -> Response:
        if request.method == "GET":
            cookie = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)
            return self.form(cookie, safe_next(request.query_params.get("next", "/")))
        form = await request.form(max_files=0, max_fields=8, max_part_size=4096)
        cookie = request.cookies.get(SIGNIN_COOKIE, "")
        next_path = safe_next(str(form.get("next", "/")))
        handle = str(form.get("handle", "")).strip()[:40]
        expected = hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()
        if not cookie or not same_origin(request, self.public) \
                or not hmac.compare_digest(expected, str(form.get("csrf", ""))):
            return self.form(cookie or secrets.token_urlsafe(24), next_path,
                             "This form expired or came from another site; sign in again.", handle, 400)
        where = _limit_key(request)
        if wait := await run_in_threadpool(self.limit.blocked_for, where):  # the count is in the database
            return self.form(cookie, next_path, f"Too many failed sign-ins from your address; try again in "
                                                f"{int(wait // 60) + 1} minutes.", handle, 429)
        try:
            token, person = await run_in_threadpool(_sign_in, handle, str(form.get("code", "")),
                                                    self.config.session_hours, "gateway")
        except Exception as exc:  # a DomainError: one line naming the field and the rule
            from models.errors import DomainError

            if not isinstance(exc, DomainError):
                raise
            await run_in_threadpool(self.limit.fail, where)
            log.info("sign-in refused for %r: %s", handle[:40], exc)
            return self.form(cookie, next_path, SIGN_IN_REFUSED, handle, 401)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(SESSION_COOKIE, token, max_age=int(self.config.session_hours * 3600), httponly=True,
                            samesite="lax", secure=self.secure, path="/")
        response.delete_cookie(SIGNIN_COOKIE, path="/dealflow/")
        log.info("signed in: %s", person.handle)
        return response

    async def sign_out_page(self, request: Request) -> Response:
        person = await self.person_of(request)
        if request.method == "GET":
            if person is None:
                return RedirectResponse("/dealflow/sign-in", status_code=303)
            return page("Sign out", f"<p>Signed in as {escape(person.name)} ({escape(person.handle)}).</p>"
                                    "<form method=post action='/dealflow/sign-out'>"
                                    f"<input type=hidden name=csrf value='{person.csrf('sign-out')}'>"
                                    "<button type=submit>Sign out</button></form>", self.secure)
        form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
        if person is not None:
            if not same_origin(request, self.public) \
                    or not hmac.compare_digest(person.csrf("sign-out"), str(form.get("csrf", ""))):
                return page("Sign out", "<p class=error>This form came from another site.</p>", self.secure, 400)
            await run_in_threadpool(sign_out, person.session_id)
            self.forget()
        response = RedirectResponse("/dealflow/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def api_login(self, request: Request) -> Response:
        """The command line's sign-in: JSON in, a bearer token out (``dealflow login --gateway``)."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"detail": "send JSON: {\"handle\": ..., \"code\": ...}"}, status_code=415)
        try:
            body = json.loads(await request.body())
            handle, code = str(body.get("handle", ""))[:40], str(body.get("code", ""))[:20]
            hours = min(float(body.get("hours", self.config.session_hours)), self.config.session_hours)
            if not hours > 0:
                raise ValueError
        except (ValueError, AttributeError, TypeError):
            return JSONResponse({"detail": "send JSON: {\"handle\": ..., \"code\": ...}"}, status_code=400)
        where = _limit_key(request)
        if await run_in_threadpool(self.limit.blocked_for, where):
            return JSONResponse({"detail": "too many failed sign-ins from this address; try again later"},
                                status_code=429)
        from models.errors import DomainError

        try:
            token, person = await run_in_threadpool(_sign_in, handle, code, hours, "command line via gateway")
        except DomainError as exc:
            await run_in_threadpool(self.limit.fail, where)
            log.info("sign-in refused for %r: %s", handle[:40], exc)
            return JSONResponse({"detail": SIGN_IN_REFUSED}, status_code=401)
        return JSONResponse({"token": token, "handle": person.handle, "session": person.session_id,
                             "expires_at": person.expires_at.isoformat()}, headers={"cache-control": "no-store"})

    async def me(self, request: Request) -> Response:
        person = await self.person_of(request)
        if person is None:
            return JSONResponse({"detail": "not signed in"}, status_code=401)
        return JSONResponse({"handle": person.handle, "name": person.name, "roles": list(person.roles),
                             "session": person.session_id, "expires_at": person.expires_at.isoformat()})
