"""The team's one door to the Prefect UI and API: each person signs in as themselves.

Prefect's open-source server has a single credential and no rights per person; whoever holds it
is an administrator. So people never get it: the Prefect server listens on loopback, its
credential known to the machines (executors, the worker) and to an administrator on its host,
and the team reaches the UI and the API through this gateway, a Starlette app that

- signs a person in with their handle and one-time code (``/dealflow/sign-in``), and keeps them
  signed in with an HttpOnly cookie for 8 hours (a staff session of ``models.identity``: closed
  when they sign out, are disabled, enrolled again or given other roles); ``dealflow login
  --gateway URL`` gets the same session as a bearer token for the command line;
- lets them through only to what ``gateway_policy`` allows: everything the UI needs to show,
  a Resume of a run paused at a wait their role may answer (a manager may stand in), a cancel
  for a manager; everything else is refused with 403 and written to the audit log;
- names the person on every Resume from their session (never from a typed handle) and seals
  the answer: an HMAC, with a key derived from the installation's secret key (Prefect's
  credential does not give it), over the deal, the wait, the answer as sent, the person, the
  time and a nonce. The flow accepts a UI answer only with a good, unused seal;
- protects every state-changing request from other sites: the Origin must be the gateway's own,
  and the request must carry a token tied to the session (the UI's own CSRF headers, which
  Prefect's UI sends once ``/ui-settings`` says CSRF is on; the gateway answers its
  ``/api/csrf-token``);
- refuses websockets (the UI uses none) and request bodies over 1 MiB.

It forwards with one pooled httpx client (keep-alive to the loopback server), adding Prefect's
credential; what it adds to a request is measured by ``benchmarks/gateway.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .gateway_policy import CANCEL, DENY, READ, RESUME, decide
from .limits import FailureLimit, limit_key

log = logging.getLogger("dealflow.gateway")

SESSION_COOKIE = "dealflow_session"
SIGNIN_COOKIE = "dealflow_signin"
SESSION_HOURS = 8
MAX_BODY = 1024 * 1024
SESSION_CHECK_SECONDS = 2.0
# One answer to every failed sign-in: whether the handle exists, is disabled, locked or not
# enrolled is not a stranger's to learn (`dealflow staff list` and the audit log say which)
SIGN_IN_REFUSED = ("handle or code: not accepted. Type the code your authenticator app shows now (a code works once); "
                   "after 5 wrong codes you are locked for a while: a manager can unlock you")  # a session's state is read again at most this often (disabled: out within 2 s)
FORWARDED_HEADERS = ("accept", "accept-encoding", "accept-language", "content-type", "if-none-match",
                     "if-modified-since", "cache-control", "x-prefect-ui")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "set-cookie", "server", "date"}
# dealflow's layout of the newer UI's Resume form (a page, not a box: see ui.css), and the older
# UI's run page, which links printed before went to (its form squeezes the description away)
UI_STYLE_PATH = "/dealflow/ui.css"
UI_STYLE = (Path(__file__).parent / "ui.css").read_text(encoding="utf-8")
OLD_RUN_PAGE = "/runs/flow-run/"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")


@dataclass(frozen=True)
class GatewayConfig:
    upstream: str  # the Prefect server, e.g. http://127.0.0.1:4200 (its API under /api)
    credential: str | None  # Prefect's credential (user:password); None: a server without one
    public_url: str | None = None  # https://prefect.example.com behind a TLS proxy: origin and Secure cookies
    session_hours: float = SESSION_HOURS


@dataclass
class Person:
    handle: str
    name: str
    roles: tuple[str, ...]
    session_id: str
    key: bytes
    expires_at: datetime
    checked: float = field(default=0.0)

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


# --- what the gateway asks of the business database (in a thread: SQLAlchemy is synchronous) ---------

def _load_person(token: str) -> Person | None:
    from models import identity
    from models.base import utcnow
    from services import keys
    from services.db import session_scope

    parts = _split_token(token)
    if parts is None:
        return None
    sid, key = parts
    with session_scope() as s:
        row = s.get(identity.StaffSession, sid)
        if row is None or row.closed_at is not None or row.expires_at <= utcnow() or not row.person.active:
            return None
        try:
            stored = keys.cipher().decrypt(row.key.encode())
        except Exception:  # noqa: BLE001 - another installation's key: not a session of ours
            return None
        if not hmac.compare_digest(stored, key):
            return None
        p = row.person
        return Person(p.handle, p.name, tuple(p.role_list), row.id, key, row.expires_at)


def _sign_in(handle: str, code: str, hours: float, door: str) -> tuple[str, Person]:
    from models import identity
    from services import keys
    from services.config import load_settings
    from services.db import session_scope

    codes = load_settings().answer_codes
    with session_scope() as s:
        try:
            opened = identity.open_session(s, handle, code, keys.cipher(), hours=hours, door=door, verify=codes)
        except Exception:
            s.commit()  # a wrong code counts towards the lock, and the refusal is on the record
            raise
        s.commit()
    key = base64.b64decode(opened.key)
    person = _load_person(token_of(opened.id, key))
    assert person is not None
    return token_of(opened.id, key), person


def _sign_out(session_id: str) -> None:
    from models import identity
    from services.db import session_scope

    with session_scope() as s:
        identity.close_session(s, session_id)
        s.commit()


def _audit(actor: str, action: str, subject: str, **details: Any) -> None:
    from models import audit
    from services.db import session_scope

    with session_scope() as s:
        audit.record(s, actor[:40], action, subject=subject[:60], door="gateway", **details)
        s.commit()


@dataclass(frozen=True)
class WaitFound:
    deal: str
    deal_id: int
    step: str
    key: str
    roles: tuple[str, ...]


def _open_wait_of_run(run_id: str) -> WaitFound | None:
    from sqlalchemy import select

    from models.deal import Deal, Wait
    from services.db import session_scope

    with session_scope() as s:
        row = s.execute(select(Wait, Deal.number).join(Deal, Deal.id == Wait.deal_id).where(
            Wait.flow_run_id == run_id, Wait.status == "open").order_by(Wait.id.desc())).first()
        if row is None:
            return None
        wait, number = row
        return WaitFound(number, wait.deal_id, wait.step, wait.key, tuple(wait.role_list))


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number an answer may hold")


def _not_plain_answer(value: Any, depth: int = 0) -> str | None:
    """Why an answer is not plain data that Prefect stores as sent (and so as sealed): Prefect
    "hydrates" a value written as ``{"__prefect_kind": …}`` (replacing it, or filling in a
    Prefect variable) before it stores the answer; integers past 64 bits it cannot store."""
    if depth > 32:
        return "an answer nested this deep is not one a form makes"
    if isinstance(value, dict):
        if "__prefect_kind" in value:
            return "an answer may not hold Prefect's __prefect_kind values (they are replaced before the answer is stored)"
        return next((r for v in value.values() if (r := _not_plain_answer(v, depth + 1))), None)
    if isinstance(value, list):
        return next((r for v in value if (r := _not_plain_answer(v, depth + 1))), None)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2 ** 63:
        return "a number in the answer is too large to be stored as sent"
    return None


def _inbox(role: str | None, states: dict[str, str] | None) -> list[dict[str, Any]]:
    from services.db import session_scope
    from services.views import inbox

    with session_scope() as s:
        return inbox(s, role, states)


def _deal(number: str) -> dict[str, Any]:
    from models.deal import deal_by_number
    from services.db import session_scope
    from services.views import deal_summary

    with session_scope() as s:
        return deal_summary(s, deal_by_number(s, number))


def _wait_status(number: str, key: str) -> dict[str, Any]:
    from models.errors import NotFound

    from .answers import wait_state

    wait = wait_state(number, key)
    if wait is None:
        raise NotFound("wait", key)
    return {"deal": number.upper(), "key": wait.key, "status": wait.status, "by": wait.answered_by,
            "reason": wait.refusal_reason}


def _answer(number: str, step: str, payload: dict[str, Any], handle: str) -> dict[str, Any]:
    from . import answers

    wait = answers.answer_signed_in(number, step, payload, handle, door="command line via gateway")
    return {"deal": wait.deal, "key": wait.key, "status": "sent"}


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str), status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store"})


# --- the app --------------------------------------------------------------------------------------

def create_app(config: GatewayConfig, transport: httpx.AsyncBaseTransport | None = None,
               limit: FailureLimit | None = None) -> Starlette:
    from models import identity
    from services import keys
    from services.config import load_settings

    limit = limit or FailureLimit()
    seal_key = keys.seal_key()  # the installation's key, read once
    headers = {}
    if config.credential:
        headers["authorization"] = "Basic " + base64.b64encode(config.credential.encode()).decode()
    client = httpx.AsyncClient(base_url=config.upstream.rstrip("/"), headers=headers, transport=transport,
                               timeout=httpx.Timeout(60.0, connect=5.0),
                               limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
    signin_secret = hmac.new(keys.portal_secret(), b"dealflow gateway sign-in v1", hashlib.sha256).digest()
    secure = (config.public_url or "").startswith("https://")
    public = urlsplit(config.public_url) if config.public_url else None
    sessions: dict[str, Person] = {}
    codes_on = load_settings().answer_codes

    async def person_of(request: Request) -> Person | None:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        cache_key = hashlib.sha256(token.encode()).hexdigest()
        known = sessions.get(cache_key)
        now = time.monotonic()
        if known is not None and now - known.checked < SESSION_CHECK_SECONDS:
            return known if known.expires_at > _now() else None
        person = await run_in_threadpool(_load_person, token)
        if person is None:
            sessions.pop(cache_key, None)
            return None
        person.checked = now
        if len(sessions) > 10_000:
            sessions.clear()
        sessions[cache_key] = person
        return person

    def bearer(request: Request) -> bool:
        return request.headers.get("authorization", "")[:7].lower() == "bearer "

    def same_origin(request: Request) -> bool:
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

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        html = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)} · dealflow</title>"
                "<meta name=viewport content='width=device-width, initial-scale=1'>"
                "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}"
                "label{display:block;margin:.8rem 0 .2rem}input{font:inherit;width:100%;padding:.4rem;"
                "box-sizing:border-box}button{font:inherit;margin-top:1rem;padding:.5rem 1.2rem}"
                ".error{color:#a00;font-weight:600}</style></head>"
                f"<body><h1>{escape(title)}</h1>{body}</body></html>")
        return HTMLResponse(html, status_code=status, headers=_page_headers(secure))

    def signin_form(cookie: str, next_path: str, message: str = "", handle: str = "", status: int = 200) -> HTMLResponse:
        token = hmac.new(signin_secret, cookie.encode(), hashlib.sha256).hexdigest()
        code_field = ("<label for=code>One-time code</label><input id=code name=code inputmode=numeric "
                      "autocomplete=one-time-code pattern='[0-9]{6}' maxlength=6 required>"
                      "<p><small>The 6 digits your authenticator app shows now.</small></p>") if codes_on else \
            "<p><small>Answer codes are off (DEALFLOW_ANSWER_CODES=off): your handle is enough.</small></p>"
        body = ((f"<p class=error role=alert>{escape(message)}</p>" if message else "")
                + "<form method=post action='/dealflow/sign-in'>"
                f"<input type=hidden name=csrf value='{token}'><input type=hidden name=next value='{escape(next_path)}'>"
                f"<label for=handle>Your handle</label><input id=handle name=handle autocomplete=username "
                f"value='{escape(handle)}' maxlength=40 required autofocus>{code_field}"
                "<button type=submit>Sign in</button></form>")
        response = page("Sign in to dealflow", body, status)
        response.set_cookie(SIGNIN_COOKIE, cookie, max_age=3600, httponly=True, samesite="strict", secure=secure,
                            path="/dealflow/")
        return response

    async def sign_in_page(request: Request) -> Response:
        if request.method == "GET":
            cookie = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)
            return signin_form(cookie, _safe_next(request.query_params.get("next", "/")))
        form = await request.form(max_files=0, max_fields=8, max_part_size=4096)
        cookie = request.cookies.get(SIGNIN_COOKIE, "")
        next_path = _safe_next(str(form.get("next", "/")))
        handle = str(form.get("handle", "")).strip()[:40]
        expected = hmac.new(signin_secret, cookie.encode(), hashlib.sha256).hexdigest()
        if not cookie or not same_origin(request) or not hmac.compare_digest(expected, str(form.get("csrf", ""))):
            return signin_form(cookie or secrets.token_urlsafe(24), next_path,
                               "This form expired or came from another site; sign in again.", handle, 400)
        where = _limit_key(request)
        if wait := limit.blocked_for(where):
            return signin_form(cookie, next_path, f"Too many failed sign-ins from your address; try again in "
                                                  f"{int(wait // 60) + 1} minutes.", handle, 429)
        try:
            token, person = await run_in_threadpool(_sign_in, handle, str(form.get("code", "")),
                                                    config.session_hours, "gateway")
        except Exception as exc:  # a DomainError: one line naming the field and the rule
            from models.errors import DomainError

            if not isinstance(exc, DomainError):
                raise
            limit.fail(where)
            log.info("sign-in refused for %r: %s", handle[:40], exc)
            return signin_form(cookie, next_path, SIGN_IN_REFUSED, handle, 401)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(SESSION_COOKIE, token, max_age=int(config.session_hours * 3600), httponly=True,
                            samesite="lax", secure=secure, path="/")
        response.delete_cookie(SIGNIN_COOKIE, path="/dealflow/")
        log.info("signed in: %s", person.handle)
        return response

    async def sign_out_page(request: Request) -> Response:
        person = await person_of(request)
        if request.method == "GET":
            if person is None:
                return RedirectResponse("/dealflow/sign-in", status_code=303)
            return page("Sign out", f"<p>Signed in as {escape(person.name)} ({escape(person.handle)}).</p>"
                                    "<form method=post action='/dealflow/sign-out'>"
                                    f"<input type=hidden name=csrf value='{person.csrf('sign-out')}'>"
                                    "<button type=submit>Sign out</button></form>")
        form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
        if person is not None:
            if not same_origin(request) or not hmac.compare_digest(person.csrf("sign-out"), str(form.get("csrf", ""))):
                return page("Sign out", "<p class=error>This form came from another site.</p>", 400)
            await run_in_threadpool(_sign_out, person.session_id)
            sessions.clear()
        response = RedirectResponse("/dealflow/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def api_login(request: Request) -> Response:
        """The command line's sign-in: JSON in, a bearer token out (``dealflow login --gateway``)."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"detail": "send JSON: {\"handle\": ..., \"code\": ...}"}, status_code=415)
        try:
            body = json.loads(await request.body())
            handle, code = str(body.get("handle", ""))[:40], str(body.get("code", ""))[:20]
            hours = min(float(body.get("hours", config.session_hours)), config.session_hours)
            if not hours > 0:
                raise ValueError
        except (ValueError, AttributeError, TypeError):
            return JSONResponse({"detail": "send JSON: {\"handle\": ..., \"code\": ...}"}, status_code=400)
        where = _limit_key(request)
        if limit.blocked_for(where):
            return JSONResponse({"detail": "too many failed sign-ins from this address; try again later"},
                                status_code=429)
        from models.errors import DomainError

        try:
            token, person = await run_in_threadpool(_sign_in, handle, code, hours, "command line via gateway")
        except DomainError as exc:
            limit.fail(where)
            log.info("sign-in refused for %r: %s", handle[:40], exc)
            return JSONResponse({"detail": SIGN_IN_REFUSED}, status_code=401)
        return JSONResponse({"token": token, "handle": person.handle, "session": person.session_id,
                             "expires_at": person.expires_at.isoformat()}, headers={"cache-control": "no-store"})

    async def me(request: Request) -> Response:
        person = await person_of(request)
        if person is None:
            return JSONResponse({"detail": "not signed in"}, status_code=401)
        return JSONResponse({"handle": person.handle, "name": person.name, "roles": list(person.roles),
                             "session": person.session_id, "expires_at": person.expires_at.isoformat()})

    async def signed_in(request: Request) -> Person | Response:
        person = await person_of(request)
        if person is None:
            return JSONResponse({"detail": "gateway: not signed in (or the session ended): "
                                           "`dealflow login HANDLE --gateway URL`"}, status_code=401)
        return person

    async def domain(call, *args) -> Response:
        """A dealflow call for the command line: its answer as JSON, or its refusal as one line."""
        from models.errors import DomainError, NotFound, PermissionDenied

        try:
            return _json(await run_in_threadpool(call, *args))
        except DomainError as exc:
            status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, PermissionDenied) else 422
            return JSONResponse({"detail": str(exc)}, status_code=status)

    async def api_inbox(request: Request) -> Response:
        person = await signed_in(request)
        if isinstance(person, Response):
            return person
        role = request.query_params.get("role") or None
        try:
            runs = (await client.post("/api/flow_runs/filter", json={"limit": 200, "flow_runs": {
                "state": {"type": {"any_": ["PAUSED"]}}, "tags": {"all_": ["dealflow"]}}})).json()
            states = {r["id"]: (r.get("state") or {}).get("name", "") for r in runs}
        except (httpx.HTTPError, ValueError, TypeError, AttributeError):
            states = None
        return await domain(_inbox, role, states)

    async def api_deal(request: Request) -> Response:
        person = await signed_in(request)
        if isinstance(person, Response):
            return person
        return await domain(_deal, request.path_params["number"][:40])

    async def api_wait(request: Request) -> Response:
        person = await signed_in(request)
        if isinstance(person, Response):
            return person
        return await domain(_wait_status, request.path_params["number"][:40], request.path_params["key"][:80])

    async def api_answer(request: Request) -> Response:
        """`dealflow answer` through the gateway: checked as the command line checks it, named
        after the person signed in, sealed and sent. Bearer tokens only (the UI uses Resume)."""
        person = await signed_in(request)
        if isinstance(person, Response):
            return person
        if not bearer(request):
            return await refuse(person, request, "/dealflow/api/answer", "answers from a browser go through the "
                                                                          "run's Resume form")
        try:
            body = json.loads(await request.body())
            number, step, payload = str(body["deal"])[:40], str(body["step"])[:80], body.get("answer") or {}
            if not isinstance(payload, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"detail": "send JSON: {\"deal\": ..., \"step\": ..., \"answer\": {...}}"},
                                status_code=400)
        return await domain(_answer, number, step, payload, person.handle)

    async def api_logout(request: Request) -> Response:
        person = await signed_in(request)
        if isinstance(person, Response):
            return person
        if not bearer(request):
            return JSONResponse({"detail": "sign out at /dealflow/sign-out"}, status_code=403)
        await run_in_threadpool(_sign_out, person.session_id)
        sessions.clear()
        return JSONResponse({"signed_out": person.handle})

    async def health(request: Request) -> Response:
        return JSONResponse({"gateway": "ok"})

    audited: dict[tuple[str, str, str], None] = {}

    async def refuse(person: Person, request: Request, path: str, reason: str, status: int = 403) -> Response:
        # on the record once per session and request (the UI asks for a refused page's parts
        # again and again; a person trying something is on the record the first time)
        seen = (person.session_id, request.method, path[:300])
        if seen not in audited:
            if len(audited) > 50_000:
                audited.clear()
            audited[seen] = None
            await run_in_threadpool(_audit, person.handle, "gateway.refused", f"{request.method} {path}",
                                    method=request.method, path=path[:300], reason=reason)
        log.info("refused %s %s for %s: %s", request.method, path[:120], person.handle, reason)
        return JSONResponse({"detail": f"dealflow's gateway: {reason}"}, status_code=status)

    async def through(request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        person = await person_of(request)
        if person is None:
            if path.startswith("/api/") or path == "/api":
                return JSONResponse({"detail": "sign in at /dealflow/sign-in"}, status_code=401,
                                    headers={"cache-control": "no-store"})
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/dealflow/sign-in?next={quote(_safe_next(target), safe='')}", status_code=303)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not bearer(request):
            if not same_origin(request):
                return await refuse(person, request, path, "a change must come from the gateway's own pages")
            client_id = request.headers.get("prefect-csrf-client", "")
            if not client_id or not hmac.compare_digest(person.csrf(f"api:{client_id}"),
                                                        request.headers.get("prefect-csrf-token", "")):
                return await refuse(person, request, path, "the request carries no valid CSRF token")
        if path == "/api/csrf-token" and request.method == "GET":
            client_id = request.query_params.get("client", "")[:100]
            if not client_id:
                return JSONResponse({"detail": "client: required"}, status_code=422)
            now = datetime.now(UTC)
            return JSONResponse({"id": str(uuid.uuid4()), "created": now.isoformat(), "updated": now.isoformat(),
                                 "token": person.csrf(f"api:{client_id}"), "client": client_id,
                                 "expiration": person.expires_at.replace(tzinfo=UTC).isoformat()},
                                headers={"cache-control": "no-store"})
        if path == "/api/admin/settings" and request.method == "GET":
            return await admin_settings(request)
        decision = decide(request.method, path)
        if decision.kind == DENY:
            return await refuse(person, request, path, f"{request.method} {path[:100]} is not open to staff "
                                                       f"({decision.reason})")
        body = await request.body() if request.method not in ("GET", "HEAD") else b""  # bounded: _Bounded
        if decision.kind == RESUME:
            outcome = await resume(person, request, path, decision.run_id or "", body)
            if isinstance(outcome, Response):
                return outcome
            return await forward_resume(request, path, outcome)
        elif decision.kind == CANCEL:
            refused = await cancel(person, request, path, body)
            if refused is not None:
                return refused
        if path.endswith("/ui-settings") and request.method == "GET":
            return await ui_settings(request, path)
        if decision.kind == READ and request.method == "GET" and "/input/" in path and path.endswith("-description"):
            return await description(person, request, path)
        if decision.kind == READ and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            if path.startswith(OLD_RUN_PAGE):  # a link printed before dealflow linked to the newer UI
                return RedirectResponse("/v2" + path + (f"?{request.url.query}" if request.url.query else ""),
                                        status_code=303)
            if path == "/v2" or (path.startswith("/v2/") and not path.startswith("/v2/assets/")):
                return await ui_page(request, path)
        return await forward(request, path, body)

    async def ui_page(request: Request, path: str) -> Response:
        """A page of the newer UI (its one HTML file, whatever the route), with dealflow's layout
        of the Resume form (``ui.css``) added to its head."""
        try:
            response = await client.get(path, params=request.url.query or None, headers={"accept": "text/html"})
        except httpx.HTTPError:
            return JSONResponse({"detail": "dealflow's gateway: the Prefect server does not answer"}, status_code=502)
        media = response.headers.get("content-type", "")
        if response.status_code != 200 or not media.startswith("text/html") or "</head>" not in response.text:
            return Response(response.content, status_code=response.status_code, media_type=media or None)
        page = response.text.replace("</head>", f'<link rel="stylesheet" href="{UI_STYLE_PATH}"></head>', 1)
        return HTMLResponse(page, headers={"cache-control": "no-cache"})

    async def ui_style(request: Request) -> Response:
        return Response(UI_STYLE, media_type="text/css; charset=utf-8", headers={"cache-control": "no-cache"})

    async def forward(request: Request, path: str, body: bytes) -> Response:
        sent = {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS}
        if body:
            sent["content-type"] = request.headers.get("content-type", "application/json")
        upstream = client.build_request(request.method, path, params=request.url.query or None,
                                        content=body or None, headers=sent)
        try:
            response = await client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            log.warning("the Prefect server did not answer %s %s: %s", request.method, path[:120], type(exc).__name__)
            return JSONResponse({"detail": "dealflow's gateway: the Prefect server does not answer"}, status_code=502)
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in HOP_BY_HOP]
        return StreamingResponse(response.aiter_raw(), status_code=response.status_code,
                                 headers=_merge(kept), background=_Close(response))

    async def forward_resume(request: Request, path: str, body: bytes) -> Response:
        """A sealed Resume, sent on; an answer the form's schema refuses comes back in the team's
        words ("Line 3, discount %: must be at most 100"), not the schema's ("Validation failed for
        field 'lines[2].discount_pct'. Failure reason: 150 is greater than the maximum of 100")."""
        from models.text import schema_refusal_words

        sent = {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS and k != "accept-encoding"}
        sent["content-type"] = "application/json"
        try:
            response = await client.post(path, content=body, headers=sent)
        except httpx.HTTPError as exc:
            log.warning("the Prefect server did not answer %s: %s", path[:120], type(exc).__name__)
            return JSONResponse({"detail": "dealflow's gateway: the Prefect server does not answer"}, status_code=502)
        try:
            result = response.json()
            reason = (result.get("details") or {}).get("reason") if isinstance(result, dict) else None
        except ValueError:
            result, reason = None, None
        if isinstance(reason, str) and (words := schema_refusal_words(reason)):
            result["details"]["reason"] = words
            return JSONResponse(result, status_code=response.status_code)
        return Response(response.content, status_code=response.status_code,
                        media_type=response.headers.get("content-type"))

    async def upstream_json(path: str) -> Any:
        response = await client.get(path)
        response.raise_for_status()
        return response.json()

    async def ui_settings(request: Request, path: str) -> Response:
        """Prefect's UI settings, as the UI behind the gateway needs them: its API is the
        gateway's, no basic-auth login page (the gateway signs people in), CSRF on."""
        try:
            settings = await upstream_json(path)
        except (httpx.HTTPError, ValueError):
            return JSONResponse({"detail": "dealflow's gateway: the Prefect server does not answer"}, status_code=502)
        base = config.public_url.rstrip("/") if config.public_url else f"{request.url.scheme}://{request.headers.get('host', '')}"
        settings.update(api_url=f"{base}/api", auth=None, csrf_enabled=True)
        return JSONResponse(settings, headers={"cache-control": "no-store"})

    async def admin_settings(request: Request) -> Response:
        """Prefect's settings, as far as the UI needs them (it asks on every page, and shows
        "Oops. Something went wrong." when refused): its own part only; nothing of the server's
        database, credential, paths or services."""
        try:
            settings = await upstream_json("/api/admin/settings")
        except (httpx.HTTPError, ValueError):
            return JSONResponse({"detail": "dealflow's gateway: the Prefect server does not answer"}, status_code=502)
        base = config.public_url.rstrip("/") if config.public_url else f"{request.url.scheme}://{request.headers.get('host', '')}"
        ui = dict((settings.get("server") or {}).get("ui") or {}) if isinstance(settings, dict) else {}
        ui = {k: v for k, v in ui.items() if k in ("enabled", "v2_enabled", "serve_base", "show_promotional_content")}
        return JSONResponse({"ui_url": base, "server": {"ui": {**ui, "api_url": f"{base}/api"}}},
                            headers={"cache-control": "no-store"})

    async def description(person: Person, request: Request, path: str) -> Response:
        """A wait's description, ending with who answers: the form has no handle or code field."""
        response = await client.get(path)
        if response.status_code != 200:
            return Response(response.content, status_code=response.status_code,
                            media_type=response.headers.get("content-type"))
        from models.markdown import escape as md

        try:
            text = json.loads(response.text)
        except ValueError:
            text = None
        if not isinstance(text, str):
            return Response(response.content, media_type=response.headers.get("content-type"))
        stand_in = " (a manager may stand in for any step)" if person.is_manager else ""
        text += (f"\n\n---\n\n**You answer as {md(person.name)} ({md(person.handle)})**{stand_in}: "
                 f"signed in, your answer is sealed with your name. Not you? /dealflow/sign-out")
        return Response(json.dumps(text), media_type="text/plain; charset=utf-8",
                        headers={"cache-control": "no-store"})

    async def resume(person: Person, request: Request, path: str, run_id: str, body: bytes) -> bytes | Response:
        """The person's answer, named and sealed; or the refusal."""
        try:
            payload = json.loads(body or b"{}", parse_constant=_no_constant)
            if not isinstance(payload, dict):
                raise ValueError
            run_input = payload.get("run_input")
            if run_input is not None and not isinstance(run_input, dict):
                raise ValueError
        except (ValueError, RecursionError):
            return JSONResponse({"detail": "dealflow's gateway: a resume is JSON with a run_input object"},
                                status_code=422)
        if reason := _not_plain_answer(run_input or {}):
            return await refuse(person, request, path, reason, 422)
        # The wait this run is at, from the business database (not from Prefect, whose stored
        # state anyone with its credential may change). The seal names that wait's key: should
        # Prefect hold the run paused elsewhere, the flow finds the seal is not for its wait and
        # refuses it; a run not paused at all, Prefect refuses to resume.
        wait = await run_in_threadpool(_open_wait_of_run, run_id)
        if wait is None:
            return await refuse(person, request, path, "this run waits at no open wait of a deal", 409)
        if not any(r in person.roles for r in wait.roles) and not person.is_manager:
            return await refuse(person, request, path, f"{person.handle} ({', '.join(person.roles)}) may not answer "
                                                       f"{wait.step} of {wait.deal}: it needs {' or '.join(wait.roles)}")
        answer = {k: v for k, v in (run_input or {}).items() if k not in identity.PROOF_FIELDS}
        answer["by"] = person.handle  # from the session, whatever was typed
        answer["seal"] = identity.make_seal(seal_key, wait.deal, wait.key, answer)
        log.info("resume of %s %s sealed for %s", wait.deal, wait.key, person.handle)
        return json.dumps({**payload, "run_input": answer}).encode()

    async def cancel(person: Person, request: Request, path: str, body: bytes) -> Response | None:
        try:
            payload = json.loads(body or b"{}")
            wanted = (payload.get("state") or {}).get("type") if isinstance(payload, dict) else None
        except (ValueError, AttributeError):
            wanted = None
        if wanted != "CANCELLING":  # (the UI's Cancel sends force: true; it is still only a cancel)
            return await refuse(person, request, path, "a run's state is changed by its flow; the only change open "
                                                       "to people is a manager's cancel")
        if not person.is_manager:
            return await refuse(person, request, path, f"only a manager may cancel a deal's run "
                                                       f"({person.handle} is {', '.join(person.roles)})")
        await run_in_threadpool(_audit, person.handle, "gateway.cancelled", path, path=path[:300])
        return None

    async def websocket_refused(websocket: WebSocket) -> None:
        await websocket.close(code=1008)

    routes = [
        Route("/dealflow/sign-in", sign_in_page, methods=["GET", "POST"]),
        Route("/dealflow/sign-out", sign_out_page, methods=["GET", "POST"]),
        Route("/dealflow/api/login", api_login, methods=["POST"]),
        Route("/dealflow/me", me, methods=["GET"]),
        Route("/dealflow/api/logout", api_logout, methods=["POST"]),
        Route("/dealflow/api/inbox", api_inbox, methods=["GET"]),
        Route("/dealflow/api/deals/{number}", api_deal, methods=["GET"]),
        Route("/dealflow/api/deals/{number}/waits/{key}", api_wait, methods=["GET"]),
        Route("/dealflow/api/answer", api_answer, methods=["POST"]),
        Route("/dealflow/health", health, methods=["GET"]),
        Route(UI_STYLE_PATH, ui_style, methods=["GET"]),
        Route("/{path:path}", through, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
        WebSocketRoute("/{path:path}", websocket_refused),
    ]

    async def closing():
        yield
        await client.aclose()

    from contextlib import asynccontextmanager

    app = Starlette(routes=routes, lifespan=asynccontextmanager(lambda _app: closing()))
    app.state.client = client
    return _Bounded(app, MAX_BODY)


class _Bounded:
    """No request body past ``limit`` bytes is read, announced or not (a chunked body has no
    length to check first): the body is taken in as it arrives, up to the limit (requests to the
    gateway are small JSON and forms), and handed on whole; past it, 413."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def __getattr__(self, name: str):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _too_large(send)
            return
        chunks, received, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.limit:
                await _too_large(send)
                return
            more = message.get("more_body", False)
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # the client's disconnect

        await self.app(scope, replay, send)


async def _too_large(send) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b'{"detail": "request too large"}'})


class _Close:
    def __init__(self, response: httpx.Response):
        self.response = response

    async def __call__(self) -> None:
        await self.response.aclose()


def _merge(headers: list[tuple[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for k, v in headers:
        merged[k] = f"{merged[k]}, {v}" if k in merged else v
    return merged


def _page_headers(secure: bool) -> dict[str, str]:
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a form POST
    headers = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "same-origin",
               "x-frame-options": "DENY", "cache-control": "no-store"}
    if secure:
        headers["strict-transport-security"] = "max-age=31536000"
    return headers


def _safe_next(target: str) -> str:
    """Where to go after signing in: a path of this site only (never //elsewhere or a URL)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or target.startswith("/dealflow/"):
        return "/"
    return target[:2000]


def _limit_key(request: Request) -> str:
    return limit_key(request.client.host if request.client else "?")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def config_from_env(upstream: str | None = None, public_url: str | None = None) -> GatewayConfig:
    """The gateway's settings: the Prefect server it fronts (``--upstream``, else
    DEALFLOW_GATEWAY_UPSTREAM, else PREFECT_API_URL without its /api) and its credential
    (PREFECT_API_AUTH_STRING, or the one `dealflow up` keeps for that address)."""
    import os

    from . import api_credential

    upstream = upstream or os.environ.get("DEALFLOW_GATEWAY_UPSTREAM") or \
        os.environ.get("PREFECT_API_URL", "").rstrip("/").removesuffix("/api")
    if not upstream:
        raise ValueError("the gateway needs the Prefect server's address: --upstream http://127.0.0.1:4200 "
                         "(or PREFECT_API_URL)")
    env = {**os.environ, "PREFECT_API_URL": upstream.rstrip("/") + "/api"}
    api_credential.supply(env)
    return GatewayConfig(upstream=upstream, credential=env.get("PREFECT_API_AUTH_STRING") or None,
                         public_url=public_url or os.environ.get("DEALFLOW_GATEWAY_URL") or None)


def serve(config: GatewayConfig, host: str = "127.0.0.1", port: int = 4300, trusted_proxies: str = "") -> None:
    """Serve the gateway (blocking). Only with ``trusted_proxies`` is X-Forwarded-For believed
    (from those addresses): it is what the failed sign-ins are counted by."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request forwarded
    from .slow_clients import HeadersInTime

    uvicorn.run(create_app(config), host=host, port=port, access_log=False, server_header=False,
                timeout_keep_alive=30, log_level="warning", http=HeadersInTime,
                proxy_headers=bool(trusted_proxies), forwarded_allow_ips=trusted_proxies or None)

