"""The sales manager's reports, built from one consistent read of the database."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from services import reports

from .uow import unit_of_work


def build_report(name: str, as_of: datetime | None = None, within: str | None = None) -> pd.DataFrame:
    """The report ``name`` (one of ``services.reports.REPORTS``) as a table: plain values, to be
    printed or written as CSV, Excel or a chart (``as_of``: naive UTC, where time matters;
    ``within``: the warranty report's period, 30d, 12w, 6m or 1y)."""
    with unit_of_work() as s:
        return reports.build(s, name, as_of, within)
