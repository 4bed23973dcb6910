"""Forwarding to the Prefect server, with one pooled httpx client (keep-alive to the loopback
server) that adds Prefect's credential. What the UI asks for goes on as it is, or as the UI behind
the gateway needs it: Prefect's settings with the gateway as the API, a wait's description that
names who answers, a Resume's refusal in the team's words. What it adds to a request is measured
by ``benchmarks/gateway.py``.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from .config import GatewayConfig

if TYPE_CHECKING:
    from .sessions import Person

log = logging.getLogger("dealflow.gateway")

FORWARDED_HEADERS = ("accept", "accept-encoding", "accept-language", "content-type", "if-none-match",
                     "if-modified-since", "cache-control", "x-prefect-ui")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "set-cookie", "server", "date"}
NO_ANSWER = "dealflow's gateway: the Prefect server does not answer"


def no_answer(exc: httpx.HTTPError) -> JSONResponse:
    """502, saying why: no replica ready, a change that broke off (it may have been made), or none."""
    from .replicas import MaybeDone, NoReplicaReady

    said = f"dealflow's gateway: {exc}" if isinstance(exc, (MaybeDone, NoReplicaReady)) else NO_ANSWER
    return JSONResponse({"detail": said}, status_code=502)


def client_for(config: GatewayConfig, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one pooled client to the Prefect server, with its credential. In front of several API
    replicas its requests are spread over the ready ones (``replicas.Spread``; ``transport``,
    if given, is then the one each replica is reached by)."""
    headers = {}
    if config.credential:
        headers["authorization"] = "Basic " + base64.b64encode(config.credential.encode()).decode()
    if len(config.upstreams) > 1:
        from .replicas import Replicas, Spread

        transport = Spread(Replicas(config.upstreams), inner=transport)
    return httpx.AsyncClient(base_url=config.upstream.rstrip("/"), headers=headers, transport=transport,
                             timeout=httpx.Timeout(60.0, connect=5.0),
                             limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))


def _base(config: GatewayConfig, request: Request) -> str:
    """The address people reach the gateway at."""
    return config.public_url.rstrip("/") if config.public_url else \
        f"{request.url.scheme}://{request.headers.get('host', '')}"


class Upstream:
    """The Prefect server behind the gateway."""

    def __init__(self, config: GatewayConfig, client: httpx.AsyncClient):
        self.config, self.client = config, client

    async def forward(self, request: Request, path: str, body: bytes) -> Response:
        sent = {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS}
        if body:
            sent["content-type"] = request.headers.get("content-type", "application/json")
        upstream = self.client.build_request(request.method, path, params=request.url.query or None,
                                             content=body or None, headers=sent)
        try:
            response = await self.client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            log.warning("the Prefect server did not answer %s %s: %s", request.method, path[:120], type(exc).__name__)
            return no_answer(exc)
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in HOP_BY_HOP]
        return StreamingResponse(response.aiter_raw(), status_code=response.status_code,
                                 headers=_merge(kept), background=_Close(response))

    async def forward_resume(self, request: Request, path: str, body: bytes) -> Response:
        """A sealed Resume, sent on; an answer the form's schema refuses comes back in the team's
        words ("Line 3, discount %: must be at most 100"), not the schema's ("Validation failed for
        field 'lines[2].discount_pct'. Failure reason: 150 is greater than the maximum of 100")."""
        from models.text import schema_refusal_words

        sent = {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS and k != "accept-encoding"}
        sent["content-type"] = "application/json"
        try:
            response = await self.client.post(path, content=body, headers=sent)
        except httpx.HTTPError as exc:
            log.warning("the Prefect server did not answer %s: %s", path[:120], type(exc).__name__)
            return no_answer(exc)
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

    async def json_of(self, path: str) -> Any:
        response = await self.client.get(path)
        response.raise_for_status()
        return response.json()

    async def ui_settings(self, request: Request, path: str) -> Response:
        """Prefect's UI settings, as the UI behind the gateway needs them: its API is the
        gateway's, no basic-auth login page (the gateway signs people in), CSRF on."""
        try:
            settings = await self.json_of(path)
        except (httpx.HTTPError, ValueError):
            return JSONResponse({"detail": NO_ANSWER}, status_code=502)
        base = _base(self.config, request)
        settings.update(api_url=f"{base}/api", auth=None, csrf_enabled=True)
        return JSONResponse(settings, headers={"cache-control": "no-store"})

    async def admin_settings(self, request: Request) -> Response:
        """Prefect's settings, as far as the UI needs them (it asks on every page, and shows
        "Oops. Something went wrong." when refused): its own part only; nothing of the server's
        database, credential, paths or services."""
        try:
            settings = await self.json_of("/api/admin/settings")
        except (httpx.HTTPError, ValueError):
            return JSONResponse({"detail": NO_ANSWER}, status_code=502)
        base = _base(self.config, request)
        ui = dict((settings.get("server") or {}).get("ui") or {}) if isinstance(settings, dict) else {}
        ui = {k: v for k, v in ui.items() if k in ("enabled", "v2_enabled", "serve_base", "show_promotional_content")}
        return JSONResponse({"ui_url": base, "server": {"ui": {**ui, "api_url": f"{base}/api"}}},
                            headers={"cache-control": "no-store"})

    async def description(self, person: Person, request: Request, path: str) -> Response:
        """A wait's description, ending with who answers: the form has no handle or code field."""
        try:
            response = await self.client.get(path)
        except httpx.HTTPError as exc:
            return no_answer(exc)
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
