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


def table_artifact(key: str, rows: list[dict[str, Any]], description: str) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(key=key, table=cells(rows), description=escape(description))
