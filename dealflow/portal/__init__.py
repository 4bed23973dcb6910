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

Its rooms: ``app`` (the routes and pages), ``security`` (CSRF, the failed links counted per
address, headers, the body bound, the access log), ``server`` (uvicorn, in a process or a
thread). The names below are the ones its importers have always used.
"""

from __future__ import annotations

from ..limits import FAILURE_WINDOW, FAILURES_ALLOWED, FailureLimit, limit_key
from .app import ANSWER_SETTLE_SECONDS, CSS, create_app
from .security import CSP, CSRF_COOKIE, MAX_BODY
from .server import PortalThread, serve

__all__ = [
    "ANSWER_SETTLE_SECONDS", "CSP", "CSRF_COOKIE", "CSS", "FAILURES_ALLOWED", "FAILURE_WINDOW", "MAX_BODY",
    "FailureLimit", "PortalThread", "create_app", "limit_key", "serve",
]
