"""Everything dealflow shows in the Prefect UI as Markdown goes through here: artifacts (pages and
tables) and their descriptions. The UI renders all of them as Markdown, table cells included, so
a page must be ``Markdown`` built with its values escaped (``models.markdown``), and every text
cell and description is escaped here. (A wait's form description is ``Markdown`` built by
``models.prompts.describe``.)"""

from __future__ import annotations

from typing import Any

from models.markdown import Markdown, cells, escape


def markdown_artifact(key: str, page: Markdown, description: str):
    """A new artifact (a new version under ``key``); returns its id."""
    from prefect.artifacts import create_markdown_artifact

    if not isinstance(page, Markdown):  # a plain str could carry a value nobody escaped
        raise TypeError(f"artifact {key}: the page must be Markdown (models.markdown), not {type(page).__name__}")
    return create_markdown_artifact(key=key, markdown=str(page), description=escape(description))


# (API, key) -> id of the artifact a page of this process last wrote under it: the next update
# of the page goes straight to it (a deal's page changes at every wait) instead of looking it up
_page_ids: dict[tuple[str, str], object] = {}


def markdown_page(key: str, page: Markdown, description: str) -> None:
    """A page kept current under ``key``: the latest artifact of that key is updated in place
    (the UI then has one page to open, not a version per change); the first time, it is created.
    Prefect updates the key's "latest" entry with it."""
    from httpx import HTTPStatusError
    from prefect import get_client
    from prefect.client.schemas.actions import ArtifactUpdate
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    if not isinstance(page, Markdown):
        raise TypeError(f"artifact {key}: the page must be Markdown (models.markdown), not {type(page).__name__}")
    update = ArtifactUpdate(data=str(page), description=escape(description))
    with get_client(sync_client=True) as client:
        cached = (str(client.api_url), key)
        known = _page_ids.get(cached)
        if known is not None:
            try:
                client.update_artifact(known, update)
                return
            except HTTPStatusError as exc:
                if exc.response.status_code != 404:
                    raise
                _page_ids.pop(cached, None)  # deleted meanwhile: look for the latest again
        latest = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(
            key=ArtifactCollectionFilterKey(any_=[key])), limit=1)
        if latest:
            client.update_artifact(latest[0].latest_id, update)
            _page_ids[cached] = latest[0].latest_id
            return
    _page_ids[cached] = markdown_artifact(key, page, description)


def table_artifact(key: str, rows: list[dict[str, Any]], description: str) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(key=key, table=cells(rows), description=escape(description))
