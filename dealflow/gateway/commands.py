"""The command line through the gateway: after ``dealflow login --gateway URL``, `dealflow inbox`,
`deal show` and `answer` ask ``/dealflow/api/…`` with the session's bearer token. Each call is
checked as the command line checks it and answered as JSON, or refused in one line; an answer
is named after the person signed in (never a typed handle), as ``dealflow.answers`` records it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from application import deals, inbox
from application.answers import wait_state

from .sessions import Person, bearer, sign_out

Refuse = Callable[[Person, Request, str, str], Awaitable[Response]]


# --- what the command line asks of dealflow (in a thread: SQLAlchemy is synchronous) ----------------

def _wait_status(number: str, key: str) -> dict[str, Any]:
    from models.errors import NotFound

    wait = wait_state(number, key)
    if wait is None:
        raise NotFound("wait", key)
    return {"deal": number.upper(), "key": wait.key, "status": wait.status, "by": wait.answered_by,
            "reason": wait.refusal_reason}


def _answer(number: str, step: str, payload: dict[str, Any], handle: str) -> dict[str, Any]:
    from .. import answers

    wait = answers.answer_signed_in(number, step, payload, handle, door="command line via gateway")
    return {"deal": wait.deal, "key": wait.key, "status": "sent"}


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str), status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store"})


async def _domain(call, *args) -> Response:
    """A dealflow call for the command line: its answer as JSON, or its refusal as one line."""
    from models.errors import DomainError, NotFound, PermissionDenied

    try:
        return _json(await run_in_threadpool(call, *args))
    except DomainError as exc:
        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, PermissionDenied) else 422
        return JSONResponse({"detail": str(exc)}, status_code=status)


class CommandLine:
    """``/dealflow/api/inbox``, ``deals/{number}``, ``deals/{number}/waits/{key}``, ``answer`` and
    ``logout``. ``person_of`` names a request's person, ``refuse`` refuses it on the record,
    ``forget`` empties the gateway's cache of sessions when one is closed here."""

    def __init__(self, client: httpx.AsyncClient, person_of: Callable[[Request], Awaitable[Person | None]],
                 refuse: Refuse, forget: Callable[[], None]):
        self.client, self.person_of, self.refuse, self.forget = client, person_of, refuse, forget

    async def signed_in(self, request: Request) -> Person | Response:
        person = await self.person_of(request)
        if person is None:
            return JSONResponse({"detail": "gateway: not signed in (or the session ended): "
                                           "`dealflow login HANDLE --gateway URL`"}, status_code=401)
        return person

    async def api_inbox(self, request: Request) -> Response:
        person = await self.signed_in(request)
        if isinstance(person, Response):
            return person
        role = request.query_params.get("role") or None
        limit = request.query_params.get("limit", "")
        limit = int(limit) if limit.isdigit() and int(limit) > 0 else None
        rows = await run_in_threadpool(inbox.open_waits, role, None, limit)
        ids = sorted({r["flow_run_id"] for r in rows if r["flow_run_id"]})
        try:  # the state of each shown row's run, however many runs the server holds
            states = {}
            for start in range(0, len(ids), 200):
                chunk = ids[start:start + 200]
                runs = (await self.client.post("/api/flow_runs/filter", json={"limit": len(chunk), "flow_runs": {
                    "id": {"any_": chunk}}})).json()
                states.update({r["id"]: (r.get("state") or {}).get("name", "") for r in runs})
        except (httpx.HTTPError, ValueError, TypeError, AttributeError):
            states = None
        if states is not None:
            for r in rows:
                r["run"] = states.get(r["flow_run_id"] or "", "not on this server")
        return _json(rows)

    async def api_deal(self, request: Request) -> Response:
        person = await self.signed_in(request)
        if isinstance(person, Response):
            return person
        return await _domain(deals.deal_summary, request.path_params["number"][:40],
                             request.query_params.get("history") == "1")

    async def api_wait(self, request: Request) -> Response:
        person = await self.signed_in(request)
        if isinstance(person, Response):
            return person
        return await _domain(_wait_status, request.path_params["number"][:40], request.path_params["key"][:80])

    async def api_answer(self, request: Request) -> Response:
        """`dealflow answer` through the gateway: checked as the command line checks it, named
        after the person signed in, sealed and sent. Bearer tokens only (the UI uses Resume)."""
        person = await self.signed_in(request)
        if isinstance(person, Response):
            return person
        if not bearer(request):
            return await self.refuse(person, request, "/dealflow/api/answer", "answers from a browser go through "
                                                                               "the run's Resume form")
        try:
            body = json.loads(await request.body())
            number, step, payload = str(body["deal"])[:40], str(body["step"])[:80], body.get("answer") or {}
            if not isinstance(payload, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"detail": "send JSON: {\"deal\": ..., \"step\": ..., \"answer\": {...}}"},
                                status_code=400)
        return await _domain(_answer, number, step, payload, person.handle)

    async def api_logout(self, request: Request) -> Response:
        person = await self.signed_in(request)
        if isinstance(person, Response):
            return person
        if not bearer(request):
            return JSONResponse({"detail": "sign out at /dealflow/sign-out"}, status_code=403)
        await run_in_threadpool(sign_out, person.session_id)
        self.forget()
        return JSONResponse({"signed_out": person.handle})
