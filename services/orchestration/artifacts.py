"""Pages and tables in the Prefect UI (artifacts). What they say, and its escaping, is
``tasks.ui``'s: these take text that is ready to show."""

from __future__ import annotations

from typing import Any

# (API, key) -> id of the artifact a page of this process last wrote under it: the next update
# of the page goes straight to it (a deal's page changes at every wait) instead of looking it up
_page_ids: dict[tuple[str, str], object] = {}


def create_markdown(key: str, markdown: str, description: str):
    """A new Markdown artifact (a new version under ``key``); returns its id."""
    from prefect.artifacts import create_markdown_artifact

    return create_markdown_artifact(key=key, markdown=markdown, description=description)


def keep_page(key: str, markdown: str, description: str) -> None:
    """A page kept current under ``key``: the latest artifact of that key is updated in place
    (the UI then has one page to open, not a version per change); the first time, it is created.
    Prefect updates the key's "latest" entry with it."""
    from httpx import HTTPStatusError
    from prefect import get_client
    from prefect.client.schemas.actions import ArtifactUpdate
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    update = ArtifactUpdate(data=markdown, description=description)
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
    _page_ids[cached] = create_markdown(key, markdown, description)


def create_table(key: str, table: list[dict[str, Any]], description: str) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(key=key, table=table, description=description)
