"""The portal's pages: an estimate (read as its document shows it; accept, ask for changes,
decline, or ask for a new one once it expired), an invoice with its balance and payments, a
document's PDF, and a colleague's dated link to a document. Every action works without
JavaScript (plain forms, Post/Redirect/Get); all text is escaped by the templates.
"""

from __future__ import annotations

import hashlib
import logging
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
from services.config import PROJECT_ROOT, Settings, load_settings
from services.db import session_scope
from services.keys import portal_secret
from services.rendering import environment

from ..answers import OpenWait, resume_wait
from ..limits import FailureLimit
from .security import MAX_BODY, Csrf, SecureHeaders, TooLarge, address_key, client_ip

log = logging.getLogger("dealflow.portal")

ANSWER_SETTLE_SECONDS = 20.0  # how long a submit waits for the flow to record the answer
# the documents' own rules for lines and totals, then the portal's: the pages look like the PDFs
CSS = "\n".join((PROJECT_ROOT / "templates" / path).read_text(encoding="utf-8")
                 for path in ("documents/_lines.css", "portal/portal.css"))


def create_app(settings: Settings | None = None, limit: FailureLimit | None = None) -> Starlette:
    settings = settings or load_settings()
    secret = portal_secret(settings)
    limit = limit or FailureLimit()
    env = environment()
    secure = settings.public_url.startswith("https://")
    csrf = Csrf(secret, secure)

    def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(f"portal/{template}").render(company=company_details(settings), **context)
        return HTMLResponse(html, status_code=status)

    def not_found(request: Request) -> Response:
        limit.fail(address_key(request))
        return page("not_found.html", 404)

    def link_of(request: Request, kind: str) -> tuple[str, Link] | Response:
        if (wait := limit.blocked_for(address_key(request))) > 0:
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
        cookie = csrf.cookie_of(request)
        answered = describe_decision(rev) if state.state == "answered" else None
        order = deal.order.number if deal.order is not None and deal.order.estimate_revision_id == rev.id else None
        renewal = renewal_asked(s, rev) if state.state == "expired" else None
        response = page(
            "estimate.html", status, doc=context, state=state.state, latest=state.latest, token=token,
            csrf=csrf.token(cookie, token), answered=answered, error=error, form=form or {}, action=action,
            notice=notice, renewal=renewal, order=order,
            limits={"name": MAX_NAME, "po": MAX_PO, "changes": MAX_CHANGES, "reason": MAX_REASON})
        return csrf.with_cookie(request, response, cookie)

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
        except TooLarge:  # a body sent in chunks, without a length, past the limit
            return PlainTextResponse("Request too large", status_code=413)
        return await run_in_threadpool(_answer_estimate, request, found, {k: str(v) for k, v in form.items()})

    def _answer_estimate(request: Request, found: tuple[str, Link], form: dict[str, str]) -> Response:
        token, link = found
        action = request.path_params["action"]
        if not csrf.holds(request, form.get("csrf", ""), token):
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
            answer = run_input(secret, state, wait, action, form, ip=client_ip(request),
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
        if (wait := limit.blocked_for(address_key(request))) > 0:
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
    return SecureHeaders(app, hsts=secure)


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
