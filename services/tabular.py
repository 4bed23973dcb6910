"""Files a person keeps data in: CSV and Excel (.xlsx), read and written with pandas (openpyxl).

Every cell is read as the text it shows, never guessed into a number or a date: a SKU "00123"
stays "00123", and the domain's rules check each value (``models.catalog.import_products``). Rows
are numbered as the spreadsheet numbers them (the header is row 1). A cell written out that a
spreadsheet would run as a formula (it starts with = + - @, a tab or a carriage return) is
written with a leading apostrophe, and reading such a cell back drops it again.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from models import FileRefused

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SUFFIXES = (".csv", ".xlsx")
MAX_ROWS = 100_000


def column_name(header: object) -> str:
    """" Unit price " and "unit-price" are the column unit_price."""
    return re.sub(r"[\s-]+", "_", str(header).strip().lower())


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith("'") and text[1:2] and text[1] in FORMULA_START:
        return text[1:]
    return text.strip()


def read_rows(path: Path, columns: tuple[str, ...], required: tuple[str, ...],
              aliases: dict[str, str] | None = None) -> list[tuple[int, dict[str, str]]]:
    """The file's rows as (row number, {column: text}), blank rows left out. Refused as a whole
    (``FileRefused``) if it cannot be read, a required column is missing or one is not known."""
    import pandas as pd

    name = path.name
    if path.suffix.lower() not in SUFFIXES:
        raise FileRefused(name, [(0, "file", "must be a .csv or .xlsx file")], 0)
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        else:
            frame = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
    except FileNotFoundError:
        raise FileRefused(name, [(0, "file", f"{path} does not exist")], 0) from None
    except Exception as exc:  # pandas and openpyxl raise many kinds for a file that is not what it says
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise FileRefused(name, [(0, "file", f"cannot be read as {path.suffix.lower()[1:].upper()} ({first})")],
                          0) from None
    aliases = aliases or {}
    headers = [aliases.get(column_name(h), column_name(h)) for h in frame.columns]
    problems: list[tuple[int, str, str]] = []
    unknown = [h for h in headers if h not in columns]
    if unknown:
        problems.append((0, ", ".join(unknown), f"unknown column(s); the columns are: {', '.join(columns)}"))
    doubled = sorted({h for h in headers if headers.count(h) > 1})
    if doubled:
        problems.append((0, ", ".join(doubled), "appears twice in the header"))
    missing = [c for c in required if c not in headers]
    if missing:
        problems.append((0, ", ".join(missing), "missing: the file needs these columns"))
    if len(frame) > MAX_ROWS:
        problems.append((0, "file", f"has {len(frame)} rows; at most {MAX_ROWS} at once"))
    if problems:
        raise FileRefused(name, problems, len(frame))
    rows = []
    for number, values in enumerate(frame.itertuples(index=False, name=None), start=2):
        row = {h: _cell(v) for h, v in zip(headers, values, strict=True)}
        if any(row.values()):
            rows.append((number, row))
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...], sheet: str = "data") -> None:
    """Rows to a .csv or .xlsx file (by its suffix), cells a spreadsheet would run as formulas
    made plain text. Written to a temporary file first, so a failure leaves no half file."""
    import pandas as pd

    if path.suffix.lower() not in SUFFIXES:
        raise FileRefused(path.name, [(0, "file", "must be a .csv or .xlsx file")], 0)

    xlsx = path.suffix.lower() == ".xlsx"

    def safe(value: Any) -> Any:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, Decimal) and xlsx:  # a number the sheet can sort and sum; at most 15
            return float(value)  # digits, so it reads back as written
        if isinstance(value, str) and value.startswith(FORMULA_START):
            return "'" + value
        return value

    frame = pd.DataFrame([{c: safe(r.get(c)) for c in columns} for r in rows], columns=list(columns))
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        if not xlsx:
            frame.to_csv(partial, index=False)
        else:
            frame.to_excel(partial, index=False, sheet_name=sheet, engine="openpyxl")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
