"""What keeps the portal's pages safe: a form's CSRF token, tied to a cookie and to the link;
links that do not verify counted per address (``dealflow.limits``); security headers on every
response, a bound on request bodies, and an access log that never names a link (the link is
the customer's secret: the log names the route only).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time

from starlette.requests import Request
from starlette.responses import Response

from models.portal import ACTIONS

from ..limits import limit_key

log = logging.getLogger("dealflow.portal")

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
CSRF_COOKIE = "dealflow_csrf"
MAX_BODY = 128 * 1024  # a form is a few fields of text


def client_ip(request: Request) -> str:
    """The customer's address, as an acceptance records it."""
    return request.client.host if request.client else "?"


def address_key(request: Request) -> str:
    """Whose failed links count together (``dealflow.limits.limit_key``)."""
    return limit_key(client_ip(request))


class Csrf:
    """A form's token: an HMAC, with the installation's key, of the browser's cookie and the link."""

    def __init__(self, secret: bytes, secure: bool):
        self.secret, self.secure = secret, secure

    def token(self, cookie: str, link_token: str) -> str:
        return hmac.new(self.secret, f"csrf|{cookie}|{link_token}".encode(), hashlib.sha256).hexdigest()

    def cookie_of(self, request: Request) -> str:
        """The browser's cookie, or a new one if it has none (or not one of ours)."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        return cookie if 20 <= len(cookie) <= 100 else secrets.token_urlsafe(24)

    def with_cookie(self, request: Request, response: Response, cookie: str) -> Response:
        if request.cookies.get(CSRF_COOKIE) != cookie:
            # Lax: a click on the email's link (a cross-site navigation) keeps the cookie, so a page
            # opened earlier still submits; a cross-site POST never carries it
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="lax", secure=self.secure, path="/")
        return response

    def holds(self, request: Request, sent: str, link_token: str) -> bool:
        """Whether a form's ``sent`` token is the one its page was given, for this browser and link."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(sent.encode(), self.token(cookie, link_token).encode())


class SecureHeaders:
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
                raise TooLarge
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
        except TooLarge:
            await _too_large(send)


class TooLarge(Exception):
    """A body sent in chunks, without a length, past ``MAX_BODY``."""


async def _too_large(send) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store"),
                            (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": b"Request too large"})
