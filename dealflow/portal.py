"""The customer's portal: the page behind the personal link in an estimate or invoice email.

No login and no account: the signed link is the customer's proof (``models.portal``). On an
estimate's page the customer reads the estimate as the document shows it and accepts it (typing
their name as a signature), asks for changes or declines; the portal signs that answer and
resumes the deal's flow run through the Prefect API, and the flow checks it and records it as
the customer's own. An invoice's page shows the invoice, its balance and the payments received.

Every action works without JavaScript (plain forms, Post/Redirect/Get). Every POST carries a
CSRF token tied to a cookie and to the link; links that do not verify are counted per address
and refused for a while after too many; pages send a strict Content-Security-Policy and load
nothing from elsewhere; all text is escaped by the templates. The link is a secret: it is never
logged (the access log names the route only).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from models import Document
from models.base import utcnow
from models.deal import Wait
from models.documents import invoice_balance
from models.errors import NotFound, ValidationError
from models.portal import (
    ACTIONS,
    DOCUMENT_LINK_DAYS,
    MAX_CHANGES,
    MAX_NAME,
    MAX_PO,
    MAX_REASON,
    EstimateState,
    Link,
    ask_for_renewal,
    check_typed,
    decision_wait,
    describe_decision,
    estimate_state,
    last_refusal,
    linked_invoice,
    read_document_token,
    read_link,
    renewal_asked,
    run_input,
)
from services.company import details as company_details
from services.config import PORTAL_PORT, PROJECT_ROOT, Settings, load_settings
from services.db import session_scope
from services.keys import portal_secret
from services.rendering import environment

from .answers import OpenWait, resume_wait
from .limits import FAILURE_WINDOW, FAILURES_ALLOWED, FailureLimit, limit_key  # noqa: F401 - the portal's own

log = logging.getLogger("dealflow.portal")

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
CSRF_COOKIE = "dealflow_csrf"
MAX_BODY = 128 * 1024  # a form is a few fields of text
ANSWER_SETTLE_SECONDS = 20.0  # how long a submit waits for the flow to record the answer
# the documents' own rules for lines and totals, then the portal's: the pages look like the PDFs
CSS = "\n".join((PROJECT_ROOT / "templates" / path).read_text(encoding="utf-8")
                 for path in ("documents/_lines.css", "portal/portal.css"))


def _client_ip(request: Request) -> str:
    """The customer's address, as an acceptance records it."""
    return request.client.host if request.client else "?"


def _limit_key(request: Request) -> str:
    return limit_key(_client_ip(request))


def create_app(settings: Settings | None = None, limit: FailureLimit | None = None) -> Starlette:
    settings = settings or load_settings()
    secret = portal_secret(settings)
    limit = limit or FailureLimit()
    env = environment()
    secure = settings.public_url.startswith("https://")

    def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(f"portal/{template}").render(company=company_details(settings), **context)
        return HTMLResponse(html, status_code=status)

    def not_found(request: Request) -> Response:
        limit.fail(_limit_key(request))
        return page("not_found.html", 404)

    def csrf_for(cookie: str, token: str) -> str:
        return hmac.new(secret, f"csrf|{cookie}|{token}".encode(), hashlib.sha256).hexdigest()

    def with_cookie(request: Request, response: Response, cookie: str) -> Response:
        if request.cookies.get(CSRF_COOKIE) != cookie:
            # Lax: a click on the email's link (a cross-site navigation) keeps the cookie, so a page
            # opened earlier still submits; a cross-site POST never carries it
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="lax", secure=secure, path="/")
        return response

    def csrf_cookie(request: Request) -> str:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        return cookie if 20 <= len(cookie) <= 100 else secrets.token_urlsafe(24)

    def link_of(request: Request, kind: str) -> tuple[str, Link] | Response:
        if (wait := limit.blocked_for(_limit_key(request))) > 0:
            return page("too_many.html", 429, minutes=max(1, round(wait / 60)))
        token = request.path_params["token"]
        link = read_link(secret, token)
        if link is None or link.kind != kind:
            return not_found(request)
        return token, link

    def linked(request: Request, kind: str, lookup: Callable[[Any, Link], Any],
               respond: Callable[[Any, str, Any], Response]) -> Response:
        """A page of what a link names: the link and the address checked, the thing looked up
        (NotFound: the link's page does not exist), then ``respond(session, token, thing)``."""
        found = link_of(request, kind)
        if isinstance(found, Response):
            return found
        token, link = found
        with session_scope() as s:
            try:
                thing = lookup(s, link)
            except NotFound:
                return not_found(request)
            return respond(s, token, thing)

    # --- the estimate -----------------------------------------------------------------------------

    def estimate_page(request: Request, s, token: str, state: EstimateState, *, status: int = 200,
                      error: ValidationError | None = None, form: dict[str, str] | None = None,
                      action: str = "", notice: str = "") -> Response:
        rev, deal = state.revision, state.deal
        doc = s.scalars(select(Document).where(Document.kind == "estimate",
                                               Document.number == rev.number)).one_or_none()
        if doc is None:
            return not_found(request)
        context = dict(doc.context)
        cookie = csrf_cookie(request)
        answered = describe_decision(rev) if state.state == "answered" else None
        order = deal.order.number if deal.order is not None and deal.order.estimate_revision_id == rev.id else None
        renewal = renewal_asked(s, rev) if state.state == "expired" else None
        response = page(
            "estimate.html", status, doc=context, state=state.state, latest=state.latest, token=token,
            csrf=csrf_for(cookie, token), answered=answered, error=error, form=form or {}, action=action,
            notice=notice, renewal=renewal, order=order,
            limits={"name": MAX_NAME, "po": MAX_PO, "changes": MAX_CHANGES, "reason": MAX_REASON})
        return with_cookie(request, response, cookie)

    def show_estimate(request: Request) -> Response:
        return linked(request, "estimate", estimate_state, lambda s, token, state: estimate_page(
            request, s, token, state, notice=_notice(s, state, request.query_params.get("done", ""))))

    def estimate_pdf(request: Request) -> Response:
        return pdf_of(request, "estimate", lambda s, link: estimate_state(s, link).revision.number)

    def pdf_of(request: Request, kind: str, number_of: Callable[[Any, Link], str]) -> Response:
        """The PDF of the document a link names, as attached to its email."""
        def respond(s, token: str, number: str) -> Response:
            pdf = _document_pdf(s, kind, number, settings)
            if pdf is None:
                return not_found(request)
            return Response(pdf, media_type="application/pdf",
                            headers={"Content-Disposition": f'inline; filename="{number}.pdf"'})

        return linked(request, kind, number_of, respond)

    async def answer_estimate(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        found = link_of(request, "estimate")  # the link and the address first: no body read for strangers
        if isinstance(found, Response):
            return found
        if request.path_params["action"] not in (*ACTIONS, "renew"):
            return not_found(request)
        try:
            form = await request.form(max_files=0, max_fields=20, max_part_size=MAX_BODY)
        except _TooLarge:  # a body sent in chunks, without a length, past the limit
            return PlainTextResponse("Request too large", status_code=413)
        return await run_in_threadpool(_answer_estimate, request, found, {k: str(v) for k, v in form.items()})

    def _answer_estimate(request: Request, found: tuple[str, Link], form: dict[str, str]) -> Response:
        token, link = found
        action = request.path_params["action"]
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(form.get("csrf", "").encode(), csrf_for(cookie, token).encode()):
            return page("csrf.html", 403, back=f"/e/{token}")  # the link verified: not a guess, not counted
        with session_scope() as s:
            try:
                state = estimate_state(s, link)
            except NotFound:
                return not_found(request)
            if action == "renew":
                return _renew(request, s, token, state)
            if not state.is_open:  # answered meanwhile, replaced, expired: the page says which
                return RedirectResponse(f"/e/{token}", status_code=303)
            try:
                check_typed(action, form)  # what the customer can correct is said first
            except ValidationError as exc:
                return estimate_page(request, s, token, state, status=400, error=exc, form=form, action=action)
            wait = decision_wait(state.deal, state.revision)
            if wait is None or not wait.flow_run_id:
                return page("busy.html", 503, back=f"/e/{token}")
            pdf = _document_pdf(s, "estimate", state.revision.number, settings) or b""
            answer = run_input(secret, state, wait, action, form, ip=_client_ip(request),
                               user_agent=request.headers.get("user-agent", ""),
                               pdf_sha256=hashlib.sha256(pdf).hexdigest())
            wait_id = wait.id
            open_wait = OpenWait(state.deal.number, wait.key, wait.step, wait.flow_run_id)
        try:
            resume_wait(open_wait, answer, settle_timeout=10)
        except Exception as exc:  # noqa: BLE001 - the Prefect API down, or another answer first
            if _settled(wait_id, 3) != "open":  # answered meanwhile (a second press of the button):
                return RedirectResponse(f"/e/{token}", status_code=303)  # the page says by whom
            log.warning("a customer's answer could not be handed to the deal's run: %s", type(exc).__name__)
            return page("busy.html", 503, back=f"/e/{token}")
        status = _settled(wait_id, ANSWER_SETTLE_SECONDS)
        done = {"answered": action, "refused": "refused"}.get(status, "pending")
        return RedirectResponse(f"/e/{token}?done={done}", status_code=303)

    def _renew(request: Request, s, token: str, state: EstimateState) -> Response:
        if state.state == "expired":
            mail = ask_for_renewal(s, state)
            s.commit()
            if mail is not None:
                _send_now(mail.id, settings)
        return RedirectResponse(f"/e/{token}", status_code=303)

    # --- the invoice ------------------------------------------------------------------------------

    def show_invoice(request: Request) -> Response:
        def respond(s, token: str, invoice) -> Response:
            doc = s.scalars(select(Document).where(Document.kind == "invoice",
                                                   Document.number == invoice.number)).one_or_none()
            if doc is None:
                return not_found(request)
            return page("invoice.html", doc=dict(doc.context), token=token,
                        **invoice_balance(invoice, utcnow().date()))

        return linked(request, "invoice", linked_invoice, respond)

    def invoice_pdf(request: Request) -> Response:
        return pdf_of(request, "invoice", lambda s, link: linked_invoice(s, link).number)

    # --- a colleague's document link (the deal's page in the Prefect UI) ----------------------------

    def document_pdf(request: Request) -> Response:
        """A document's PDF for the team: the link is signed and dated (``DOCUMENT_LINK_DAYS``); an
        expired one says where a fresh one is."""
        if (wait := limit.blocked_for(_limit_key(request))) > 0:
            return page("too_many.html", 429, minutes=max(1, round(wait / 60)))
        found = read_document_token(secret, request.path_params["token"])
        if found == "expired":
            return page("expired_link.html", 410, days=DOCUMENT_LINK_DAYS)
        if found is None:
            return not_found(request)
        with session_scope() as s:
            doc = s.get(Document, found)
            pdf = _document_pdf(s, doc.kind, doc.number, settings) if doc is not None else None
            if pdf is None:
                return not_found(request)
            return Response(pdf, media_type="application/pdf",
                            headers={"Content-Disposition": f'inline; filename="{doc.number}.pdf"'})

    # --- the rest ---------------------------------------------------------------------------------

    def home(request: Request) -> Response:
        return page("home.html")

    def css(request: Request) -> Response:
        return Response(CSS, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    def unknown(request: Request) -> Response:
        return page("not_found.html", 404)

    app = Starlette(routes=[
        Route("/", home), Route("/healthz", health), Route("/static/portal.css", css),
        Route("/e/{token}", show_estimate), Route("/e/{token}/pdf", estimate_pdf),
        Route("/e/{token}/{action}", answer_estimate, methods=["POST"]),
        Route("/i/{token}", show_invoice), Route("/i/{token}/pdf", invoice_pdf),
        Route("/d/{token}", document_pdf),
    ], exception_handlers={404: lambda r, e: unknown(r), 405: lambda r, e: unknown(r)})
    return _Headers(app, hsts=secure)


class _Headers:
    """Security headers on every response, and an access log that never names a link."""

    def __init__(self, app, hsts: bool):
        self.app, self.hsts = app, hsts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        length = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY:
            return await _too_large(send)
        received = 0

        async def receiving():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY:  # a body sent in chunks, without a length
                raise _TooLarge
            return message

        async def sending(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                            (b"cross-origin-opener-policy", b"same-origin")]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                if self.hsts:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
                parts = scope["path"].split("/")
                route = {"e": "estimate", "i": "invoice", "d": "document", "static": "static", "healthz": "health", "": "home"}.get(
                    parts[1] if len(parts) > 1 else "", "other")
                if route in ("estimate", "invoice") and len(parts) > 3:
                    route += " " + (parts[3] if parts[3] in ("pdf", *ACTIONS, "renew") else "other")
                log.info("%s %s %s %.0f ms", scope["method"], route, message["status"],
                         (time.perf_counter() - started) * 1000)
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except _TooLarge:
            await _too_large(send)


class _TooLarge(Exception):
    pass


async def _too_large(send) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store"),
                            (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": b"Request too large"})


# --- what the portal does outside the page ------------------------------------------------------

def _document_pdf(session, kind: str, number: str, settings: Settings) -> bytes | None:
    """The document's PDF, as attached to its email (the same file: its SHA-256 is what the
    customer's acceptance records)."""
    from services.mailer import write_document

    doc = session.scalars(select(Document).where(Document.kind == kind, Document.number == number)).one_or_none()
    if doc is None:
        return None
    _, pdf = write_document(doc, settings)
    return pdf.read_bytes()


def _settled(wait_id: int, timeout: float) -> str:
    """The wait's status once the flow has recorded the answer ("open" if not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as s:
            status = s.get(Wait, wait_id).status
        if status != "open" or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def _notice(session, state: EstimateState, done: str) -> str:
    """What the page says after a submit (``?done=``), only if it is still true: a thank-you
    for an answer the revision really has, "being recorded" while it waits, why it was refused."""
    status = state.revision.status
    if done == "accept" and status == "approved" or done == "request_changes" and status == "changes_requested" \
            or done == "decline" and status == "declined":
        return {"accept": "accepted", "request_changes": "changes", "decline": "declined"}[done]
    if done == "pending" and state.is_open:
        return "pending"
    if done == "refused" and state.is_open:
        return "refused:" + last_refusal(state.deal, state.revision)
    return ""


def _send_now(mail_id: int, settings: Settings) -> None:
    """Send the note now; if the mail server is down it stays in the outbox for the outbox run."""
    from services.mailer import deliver

    try:
        with session_scope() as s:
            deliver(s, email_ids=[mail_id], settings=settings)
    except Exception as exc:  # noqa: BLE001 - the outbox sends it later
        log.warning("the renewal request %s waits in the outbox: %s", mail_id, exc)


def serve(host: str = "127.0.0.1", port: int = PORTAL_PORT, settings: Settings | None = None,
          trusted_proxies: str = "") -> None:
    """Serve the portal (blocking) with uvicorn; its own access log (no links in it). Only with
    ``trusted_proxies`` is X-Forwarded-For believed (from those addresses)."""
    import uvicorn

    from .slow_clients import HeadersInTime

    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, server_header=False,
                proxy_headers=bool(trusted_proxies), forwarded_allow_ips=trusted_proxies or None,
                log_level="warning", http=HeadersInTime)


class PortalThread:
    """The portal served from a thread of this process (the demo, the tests): ``url`` once started."""

    def __init__(self, settings: Settings | None = None, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        from .slow_clients import HeadersInTime

        self.config = uvicorn.Config(create_app(settings), host=host, port=port, access_log=False,
                                     log_level="warning", server_header=False, proxy_headers=False,
                                     http=HeadersInTime)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="dealflow-portal", daemon=True)
        self.url = ""

    def __enter__(self) -> PortalThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the portal did not start")
            time.sleep(0.05)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

