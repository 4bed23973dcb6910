"""The portal's pages: an estimate (read as its document shows it; accept, ask for changes,
decline, or ask for a new one once it expired), an invoice (the final one with the deposit it
deducts, or the deposit invoice) with its balance and payments, a credit note (a return's: the
goods received with their serial numbers, the restocking fee, the amount credited and what became
of it), a document's PDF, and a colleague's dated link to a document. Every action works without
JavaScript (plain forms, Post/Redirect/Get); all text is escaped by the templates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from application import portal
from models.errors import NotFound
from models.portal import (
    ACTIONS,
    DOCUMENT_LINK_DAYS,
    MAX_CHANGES,
    MAX_NAME,
    MAX_PO,
    MAX_REASON,
    Link,
    read_document_token,
    read_link,
)
from models.states import WaitStatus
from services.company import details as company_details
from services.config import PROJECT_ROOT, Settings, load_settings
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
    limit = limit or FailureLimit("portal")
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

    def linked(request: Request, kind: str, respond: Callable[[str, Link], Response]) -> Response:
        """A page of what a link names: the link and the address checked, then ``respond(token,
        link)``; its NotFound (the link names nothing the customer may see) is "not found"."""
        found = link_of(request, kind)
        if isinstance(found, Response):
            return found
        token, link = found
        try:
            return respond(token, link)
        except NotFound:
            return not_found(request)

    def pdf(found: dict[str, Any]) -> Response:
        """A document's PDF, as attached to its email."""
        number = found["number"]
        return Response(found["pdf"], media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{number}.pdf"'})

    # --- the estimate -----------------------------------------------------------------------------

    def estimate_page(request: Request, token: str, shown: dict[str, Any], *, status: int = 200,
                      error: str = "", form: dict[str, str] | None = None, action: str = "") -> Response:
        cookie = csrf.cookie_of(request)
        response = page(
            "estimate.html", status, doc=shown["doc"], state=shown["state"], latest=shown["latest"], token=token,
            csrf=csrf.token(cookie, token), answered=shown["answered"], error=error, form=form or {},
            action=action, notice=shown["notice"], renewal=shown["renewal"], order=shown["order"],
            limits={"name": MAX_NAME, "po": MAX_PO, "changes": MAX_CHANGES, "reason": MAX_REASON})
        return csrf.with_cookie(request, response, cookie)

    def show_estimate(request: Request) -> Response:
        return linked(request, "estimate", lambda token, link: estimate_page(
            request, token, portal.estimate_page(link, request.query_params.get("done", ""))))

    def estimate_pdf(request: Request) -> Response:
        return linked(request, "estimate", lambda token, link: pdf(portal.linked_pdf(link, settings)))

    async def answer_estimate(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        # the link and the address first: no body read for strangers (the count is a database query)
        found = await run_in_threadpool(link_of, request, "estimate")
        if isinstance(found, Response):
            return found
        if request.path_params["action"] not in (*ACTIONS, "renew"):
            return await run_in_threadpool(not_found, request)
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
        try:
            if action == "renew":
                asked = portal.ask_for_renewal(link, settings)
                if asked["error"] is not None:  # the outbox sends it later
                    log.warning("the renewal request %s waits in the outbox: %s", asked["mail"], asked["error"])
                return RedirectResponse(f"/e/{token}", status_code=303)
            answer = portal.answer_estimate(link, action, form, secret=secret, ip=client_ip(request),
                                            user_agent=request.headers.get("user-agent", ""), settings=settings)
        except NotFound:
            return not_found(request)
        if answer.outcome == "not_open":  # answered meanwhile, replaced, expired: the page says which
            return RedirectResponse(f"/e/{token}", status_code=303)
        if answer.outcome == "invalid":
            return estimate_page(request, token, answer.page, status=400, error=answer.error, form=form, action=action)
        if answer.outcome != "ready":
            return page("busy.html", 503, back=f"/e/{token}")
        try:
            resume_wait(OpenWait(answer.deal, answer.key, answer.step, answer.flow_run_id), answer.run_input,
                        settle_timeout=10)
        except Exception as exc:  # noqa: BLE001 - the Prefect API down, or another answer first
            if _settled(answer.wait_id, 3) != WaitStatus.OPEN:  # answered meanwhile (a second press of the
                return RedirectResponse(f"/e/{token}", status_code=303)  # button): the page says by whom
            log.warning("a customer's answer could not be handed to the deal's run: %s", type(exc).__name__)
            return page("busy.html", 503, back=f"/e/{token}")
        status = _settled(answer.wait_id, ANSWER_SETTLE_SECONDS)
        done = {WaitStatus.ANSWERED: action, WaitStatus.REFUSED: "refused"}.get(status, "pending")
        return RedirectResponse(f"/e/{token}?done={done}", status_code=303)

    # --- the invoice ------------------------------------------------------------------------------

    def show_invoice(request: Request) -> Response:
        def respond(token: str, link: Link) -> Response:
            shown = portal.invoice_page(link, secret)
            return page("invoice.html", doc=shown["doc"], token=token, balance=shown["balance"],
                        payments=shown["payments"], credit_note=shown["credit_note"],
                        credit_notes=shown["credit_notes"], credited=shown["credited"])

        return linked(request, "invoice", respond)

    def invoice_pdf(request: Request) -> Response:
        return linked(request, "invoice", lambda token, link: pdf(portal.linked_pdf(link, settings)))

    # --- the credit note ---------------------------------------------------------------------------

    def show_credit_note(request: Request) -> Response:
        def respond(token: str, link: Link) -> Response:
            shown = portal.credit_note_page(link)
            return page("credit_note.html", doc=shown["doc"], token=token,
                        credit_on_account=shown["credit_on_account"])

        return linked(request, "credit_note", respond)

    def credit_note_pdf(request: Request) -> Response:
        return linked(request, "credit_note", lambda token, link: pdf(portal.linked_pdf(link, settings)))

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
        try:
            return pdf(portal.document_pdf(found, settings))
        except NotFound:
            return not_found(request)

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
        Route("/c/{token}", show_credit_note), Route("/c/{token}/pdf", credit_note_pdf),
        Route("/d/{token}", document_pdf),
    ], exception_handlers={404: lambda r, e: unknown(r), 405: lambda r, e: unknown(r)})
    return SecureHeaders(app, hsts=secure)


# --- what the portal does outside the page ------------------------------------------------------

def _settled(wait_id: int | None, timeout: float) -> str:
    """The wait's status once the flow has recorded the answer ("open" if not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        status = portal.wait_status(wait_id)
        if status != WaitStatus.OPEN or time.monotonic() > deadline:
            return status
        time.sleep(0.2)
