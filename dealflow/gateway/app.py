"""The gateway as one Starlette app: every request named after its person, then let through to
what ``policy`` allows, a Resume named and sealed, a cancel for a manager; everything else
refused with 403 and written to the audit log. State-changing requests must come from the
gateway's own pages (Origin) and carry a token tied to the session (the UI's CSRF headers);
websockets are refused, request bodies over 1 MiB too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from application import gateway
from application.gateway import ResumeRefused

from ..limits import FailureLimit
from .commands import CommandLine
from .config import GatewayConfig
from .policy import CANCEL, DENY, READ, RESUME, decide
from .proxy import Upstream, client_for
from .sessions import SIGN_IN_REFUSED, Person, SignIn, bearer, load_person, safe_next, same_origin, token_in
from .ui import UI_STYLE_PATH, html_page, ui_style

__all__ = ["MAX_BODY", "SESSION_CHECK_SECONDS", "SIGN_IN_REFUSED", "GatewayConfig", "create_app"]

log = logging.getLogger("dealflow.gateway")

MAX_BODY = 1024 * 1024
SESSION_CHECK_SECONDS = 2.0  # a session's state is read again at most this often (disabled: out within 2 s)


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


# --- the app --------------------------------------------------------------------------------------

def create_app(config: GatewayConfig, transport: httpx.AsyncBaseTransport | None = None,
               limit: FailureLimit | None = None) -> Starlette:
    from services import keys

    limit = limit or FailureLimit("gateway")
    seal_key = keys.seal_key()  # the installation's key, read once
    client = client_for(config, transport)
    upstream = Upstream(config, client)
    sessions: dict[str, tuple[Person, float]] = {}  # token hash -> (person, when looked up)

    async def person_of(request: Request) -> Person | None:
        token = token_in(request)
        if not token:
            return None
        cache_key = hashlib.sha256(token.encode()).hexdigest()
        known, checked = sessions.get(cache_key, (None, 0.0))
        now = time.monotonic()
        if known is not None and now - checked < SESSION_CHECK_SECONDS:
            return known if known.expires_at > _now() else None
        person = await run_in_threadpool(load_person, token)
        if person is None:
            sessions.pop(cache_key, None)
            return None
        if len(sessions) > 10_000:
            sessions.clear()
        sessions[cache_key] = (person, now)  # looked up again after SESSION_CHECK_SECONDS
        return person

    signing_in = SignIn(config, limit, person_of, sessions.clear)
    audited: dict[tuple[str, str, str], None] = {}

    async def refuse(person: Person, request: Request, path: str, reason: str, status: int = 403) -> Response:
        # on the record once per session and request (the UI asks for a refused page's parts
        # again and again; a person trying something is on the record the first time)
        seen = (person.session_id, request.method, path[:300])
        if seen not in audited:
            if len(audited) > 50_000:
                audited.clear()
            audited[seen] = None
            await run_in_threadpool(gateway.record_refused, person.handle, request.method, path, reason)
        log.info("refused %s %s for %s: %s", request.method, path[:120], person.handle, reason)
        return JSONResponse({"detail": f"dealflow's gateway: {reason}"}, status_code=status)

    command_line = CommandLine(client, person_of, refuse, sessions.clear)

    async def health(request: Request) -> Response:
        return JSONResponse({"gateway": "ok"})

    async def through(request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        person = await person_of(request)
        if person is None:
            if path.startswith("/api/") or path == "/api":
                return JSONResponse({"detail": "sign in at /dealflow/sign-in"}, status_code=401,
                                    headers={"cache-control": "no-store"})
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/dealflow/sign-in?next={quote(safe_next(target), safe='')}", status_code=303)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not bearer(request):
            if not same_origin(request, signing_in.public):
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
            return await upstream.admin_settings(request)
        decision = decide(request.method, path)
        if decision.kind == DENY:
            return await refuse(person, request, path, f"{request.method} {path[:100]} is not open to staff "
                                                       f"({decision.reason})")
        body = await request.body() if request.method not in ("GET", "HEAD") else b""  # bounded: _Bounded
        if decision.kind == RESUME:
            outcome = await resume(person, request, path, decision.run_id or "", body)
            if isinstance(outcome, Response):
                return outcome
            return await upstream.forward_resume(request, path, outcome)
        elif decision.kind == CANCEL:
            refused = await cancel(person, request, path, body)
            if refused is not None:
                return refused
        if path.endswith("/ui-settings") and request.method == "GET":
            return await upstream.ui_settings(request, path)
        if decision.kind == READ and request.method == "GET" and "/input/" in path and path.endswith("-description"):
            return await upstream.description(person, request, path)
        if decision.kind == READ and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            if (page := await html_page(client, request, path)) is not None:
                return page
        return await upstream.forward(request, path, body)

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
        try:
            sealed = await run_in_threadpool(gateway.seal_answer, run_id, run_input or {}, person.handle,
                                             person.roles, seal_key)
        except ResumeRefused as exc:
            return await refuse(person, request, path, str(exc), 403 if exc.at_a_wait else 409)
        log.info("resume of %s %s sealed for %s", sealed["deal"], sealed["key"], person.handle)
        return json.dumps({**payload, "run_input": sealed["answer"]}).encode()

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
        await run_in_threadpool(gateway.record_cancelled, person.handle, path)
        return None

    async def websocket_refused(websocket: WebSocket) -> None:
        await websocket.close(code=1008)

    routes = [
        Route("/dealflow/sign-in", signing_in.sign_in_page, methods=["GET", "POST"]),
        Route("/dealflow/sign-out", signing_in.sign_out_page, methods=["GET", "POST"]),
        Route("/dealflow/api/login", signing_in.api_login, methods=["POST"]),
        Route("/dealflow/me", signing_in.me, methods=["GET"]),
        Route("/dealflow/api/logout", command_line.api_logout, methods=["POST"]),
        Route("/dealflow/api/inbox", command_line.api_inbox, methods=["GET"]),
        Route("/dealflow/api/deals/{number}", command_line.api_deal, methods=["GET"]),
        Route("/dealflow/api/deals/{number}/waits/{key}", command_line.api_wait, methods=["GET"]),
        Route("/dealflow/api/answer", command_line.api_answer, methods=["POST"]),
        Route("/dealflow/health", health, methods=["GET"]),
        Route(UI_STYLE_PATH, ui_style, methods=["GET"]),
        Route("/{path:path}", through, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
        WebSocketRoute("/{path:path}", websocket_refused),
    ]

    async def closing():
        yield
        await client.aclose()

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


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
