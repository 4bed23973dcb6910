"""A file of rows imported all or none (products, customers, prices): the file read and checked
as a whole, its rows handed to the domain in one unit of work, the import audited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from models import audit
from services.tabular import read_rows

from .uow import unit_of_work

# the domain's loader: (session, the file's name, its rows) -> the keys added, changed and unchanged
Load = Callable[[Session, str, list[tuple[int, dict[str, Any]]]], dict[str, list[str]]]


@dataclass(frozen=True)
class Imported:
    """What an import did: how many rows the file had, and the keys (SKUs, e-mails, "SKU CUR")
    added, changed and unchanged."""

    rows: int
    result: dict[str, list[str]]


def import_file(path: Path, kind: str, load: Load, by: str, columns: tuple[str, ...], required: tuple[str, ...],
                aliases: dict[str, str]) -> Imported:
    """Read the file, load its rows (a ``FileRefused`` names every bad row, column and rule, and
    nothing is written), record ``KIND.imported``."""
    rows = read_rows(path, columns, required, aliases=aliases)
    with unit_of_work() as s:
        result = load(s, path.name, rows)
        audit.record(s, by, f"{kind}.imported", subject=path.name, rows=len(rows),
                     added=len(result["added"]), changed=result["changed"][:200])
    return Imported(len(rows), result)
