"""The team's one door to the Prefect UI and API: each person signs in as themselves.

Prefect's open-source server has a single credential and no rights per person; whoever holds it
is an administrator. So people never get it: the Prefect server listens on loopback, its
credential known to the machines (executors, the worker) and to an administrator on its host,
and the team reaches the UI and the API through this gateway, a Starlette app that

- signs a person in with their handle and one-time code (``/dealflow/sign-in``), and keeps them
  signed in with an HttpOnly cookie for 8 hours (a staff session of ``models.identity``: closed
  when they sign out, are disabled, enrolled again or given other roles); ``dealflow login
  --gateway URL`` gets the same session as a bearer token for the command line;
- lets them through only to what ``policy`` allows: everything the UI needs to show,
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

Its rooms: ``app`` (the one Starlette app: who may go where, a Resume sealed, a cancel, refusals
on the record), ``policy`` (the route table), ``sessions`` (signing in and out, the session's
cookie or token), ``proxy`` (forwarding to the Prefect server), ``replicas`` (several API replicas: their
readiness checked, requests spread over the ready ones, a safe read tried again on another),
``door`` (the machines' door: executors and the worker pass through to a ready replica), ``ui`` (the UI's pages with
dealflow's layout, ``dealflow/ui.css``), ``commands`` (the command line's API), ``config`` and
``server``. The names below are the ones its importers have always used.
"""

from __future__ import annotations

from application.gateway import WaitFound

from .app import MAX_BODY, SESSION_CHECK_SECONDS, create_app
from .config import SESSION_HOURS, GatewayConfig, config_from_env
from .proxy import FORWARDED_HEADERS, HOP_BY_HOP
from .server import serve
from .sessions import CSP, SESSION_COOKIE, SIGN_IN_REFUSED, SIGNIN_COOKIE, Person, token_of
from .ui import OLD_RUN_PAGE, UI_STYLE, UI_STYLE_PATH

__all__ = [
    "CSP", "FORWARDED_HEADERS", "HOP_BY_HOP", "MAX_BODY", "OLD_RUN_PAGE", "SESSION_CHECK_SECONDS",
    "SESSION_COOKIE", "SESSION_HOURS", "SIGNIN_COOKIE", "SIGN_IN_REFUSED", "UI_STYLE", "UI_STYLE_PATH",
    "GatewayConfig", "Person", "WaitFound", "config_from_env", "create_app", "serve", "token_of",
]
