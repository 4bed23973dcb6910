"""Everything dealflow shows in the Prefect UI as Markdown goes through here: artifacts (pages and
tables) and their descriptions. The UI renders all of them as Markdown, table cells included, so
a page must be ``Markdown`` built with its values escaped (``models.markdown``), and every text
cell and description is escaped here. (A wait's form description is ``Markdown`` built by
``models.prompts.describe``.)"""

from __future__ import annotations

from typing import Any

from models.markdown import Markdown, cells, escape


def markdown_artifact(key: str, page: Markdown, description: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    if not isinstance(page, Markdown):  # a plain str could carry a value nobody escaped
        raise TypeError(f"artifact {key}: the page must be Markdown (models.markdown), not {type(page).__name__}")
    create_markdown_artifact(key=key, markdown=str(page), description=escape(description))


def markdown_page(key: str, page: Markdown, description: str) -> None:
    """A page kept current under ``key``: the latest artifact of that key is updated in place
    (the UI then has one page to open, not a version per change); the first time, it is created.
    Prefect updates the key's "latest" entry with it."""
    from prefect import get_client
    from prefect.client.schemas.actions import ArtifactUpdate
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    if not isinstance(page, Markdown):
        raise TypeError(f"artifact {key}: the page must be Markdown (models.markdown), not {type(page).__name__}")
    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(
            key=ArtifactCollectionFilterKey(any_=[key])), limit=1)
        if latest:
            client.update_artifact(latest[0].latest_id, ArtifactUpdate(data=str(page), description=escape(description)))
            return
    markdown_artifact(key, page, description)


def table_artifact(key: str, rows: list[dict[str, Any]], description: str) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(key=key, table=cells(rows), description=escape(description))
