"""The scheduled reports run: every report as a table artifact the sales manager opens in the UI."""

from __future__ import annotations

from prefect import flow, task

from application.reports import build_report
from services import reports


@task(task_run_name="report-{name}")
def publish_report(name: str) -> int:
    from tasks.ui import table_artifact

    df = build_report(name)
    rows = [{k: (str(v) if v is not None else "") for k, v in row.items()} for row in reports.records(df)]
    table_artifact(f"report-{name}", rows or [{"report": name, "rows": "no data"}], f"dealflow report: {name}")
    return len(rows)


@flow(name="reports", persist_result=False)
def reports_flow() -> dict[str, int]:
    """Refresh the report artifacts: every report in ``services.reports.REPORTS`` (the warranty report
    over its default 30 days)."""
    return {name: publish_report(name) for name in reports.REPORTS}
