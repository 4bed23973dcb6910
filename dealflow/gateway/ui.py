"""The Prefect UI's pages as the gateway serves them: the newer UI's one HTML file with dealflow's
layout of its Resume form (``dealflow/ui.css``: a page, not a box) added to its head, and the
older UI's run page, which links printed before went to (its form squeezes the description
away), sent on to the newer one.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .proxy import NO_ANSWER

UI_STYLE_PATH = "/dealflow/ui.css"
UI_STYLE = (Path(__file__).parent.parent / "ui.css").read_text(encoding="utf-8")
OLD_RUN_PAGE = "/runs/flow-run/"


async def html_page(client: httpx.AsyncClient, request: Request, path: str) -> Response | None:
    """What a browser's request for a page of the UI gets, or None: forwarded as it is."""
    if path.startswith(OLD_RUN_PAGE):  # a link printed before dealflow linked to the newer UI
        return RedirectResponse("/v2" + path + (f"?{request.url.query}" if request.url.query else ""),
                                status_code=303)
    if path == "/v2" or (path.startswith("/v2/") and not path.startswith("/v2/assets/")):
        return await ui_page(client, request, path)
    return None


async def ui_page(client: httpx.AsyncClient, request: Request, path: str) -> Response:
    """A page of the newer UI (its one HTML file, whatever the route), with dealflow's layout
    of the Resume form (``ui.css``) added to its head."""
    try:
        response = await client.get(path, params=request.url.query or None, headers={"accept": "text/html"})
    except httpx.HTTPError:
        return JSONResponse({"detail": NO_ANSWER}, status_code=502)
    media = response.headers.get("content-type", "")
    if response.status_code != 200 or not media.startswith("text/html") or "</head>" not in response.text:
        return Response(response.content, status_code=response.status_code, media_type=media or None)
    page = response.text.replace("</head>", f'<link rel="stylesheet" href="{UI_STYLE_PATH}"></head>', 1)
    return HTMLResponse(page, headers={"cache-control": "no-cache"})


async def ui_style(request: Request) -> Response:
    return Response(UI_STYLE, media_type="text/css; charset=utf-8", headers={"cache-control": "no-cache"})
