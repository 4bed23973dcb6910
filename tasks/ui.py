"""Everything dealflow shows in the Prefect UI as Markdown goes through here: artifacts (pages and
tables) and their descriptions. The UI renders all of them as Markdown, table cells included, so
a page must be ``Markdown`` built with its values escaped (``models.markdown``), and every text
cell and description is escaped here. (A wait's form description is ``Markdown`` built by
``models.prompts.describe``.)"""

from __future__ import annotations

from typing import Any

from models.markdown import Markdown, cells, escape
from services.orchestration import artifacts


def markdown_artifact(key: str, page: Markdown, description: str):
    """A new artifact (a new version under ``key``); returns its id."""
    if not isinstance(page, Markdown):  # a plain str could carry a value nobody escaped
        raise TypeError(f"artifact {key}: the page must be Markdown (models.markdown), not {type(page).__name__}")
    return artifacts.create_markdown(key, str(page), escape(description))


def markdown_page(key: str, page: Markdown, description: str) -> None:
    """A page kept current under ``key``: the latest artifact of that key is updated in place
    (the UI then has one page to open, not a version per change); the first time, it is created."""
    if not isinstance(page, Markdown):
        raise TypeError(f"artifact {key}: the page must be Markdown (models.markdown), not {type(page).__name__}")
    artifacts.keep_page(key, str(page), escape(description))


def table_artifact(key: str, rows: list[dict[str, Any]], description: str) -> None:
    artifacts.create_table(key, cells(rows), escape(description))
