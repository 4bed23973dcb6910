"""The sales manager's ``report``s, and ``remind`` (the reminder rules, run now)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import click

from models import DomainError

from ..prefect_api import ensure_api
from .common import DealflowCommand, FilePath, emit, naive_utc, reads_and_ends, table


def _as_of(value: str | None) -> datetime | None:
    """An --as-of time: ISO, with or without an offset; returned as naive UTC like the database."""
    return naive_utc(value, "as-of") if value else None


# services.reports.REPORTS, written out so that the CLI starts without pandas (a test keeps them equal)
REPORT_NAMES = ("pipeline", "funnel", "stage-times", "sales", "stock", "aging", "discounts", "cash", "returns",
                "warranty")


@click.command(cls=DealflowCommand)
@click.argument("name", type=click.Choice(REPORT_NAMES))
@click.option("--csv", "csv_path", type=FilePath(dir_okay=False, path_type=Path), help="Also write a CSV file.")
@click.option("--xlsx", "xlsx_path", type=FilePath(dir_okay=False, path_type=Path), help="Also write an Excel file.")
@click.option("--png", "png_path", type=FilePath(dir_okay=False, path_type=Path),
              help="Also draw a chart (funnel, pipeline, aging, returns).")
@click.option("--as-of", help="Report as of this time (ISO, UTC) where time matters (aging, cash, stage-times, "
                              "warranty).")
@click.option("--within", help="warranty: units whose warranty ends within this time from today: 30d (the "
                               "default), 12w, 6m, 1y.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@reads_and_ends  # pandas, SQLAlchemy and the models: a few hundred thousand objects (~0.5 s of a 2 s report)
def report(name: str, csv_path: Path | None, xlsx_path: Path | None, png_path: Path | None, as_of: str | None,
           within: str | None, as_json: bool) -> None:
    """A report for the sales manager: pipeline (weighted forecast), funnel, stage-times (where deals
    get stuck), sales (by product and month), stock, aging (receivables, deposit invoices included), cash
    (money received per month: payments, deposits and refunds), discounts (given per person), returns
    (returns and warranty claims per product and month), warranty (units whose warranty ends soon)."""
    from application.reports import build_report
    from services import reports

    when = _as_of(as_of)
    if png_path and name not in reports.CHARTS:
        raise DomainError(f"png: charts exist for {', '.join(reports.CHARTS)}")
    if within is not None and name != "warranty":
        raise DomainError("--within: only the warranty report has a period")
    df = build_report(name, when, within)
    written = []
    writers = [("csv", csv_path, lambda p: df.to_csv(p, index=False)),
               ("xlsx", xlsx_path, lambda p: df.to_excel(p, index=False, sheet_name=name)),
               ("png", png_path, lambda p: reports.chart(name, df, p))]
    for option, path, write in writers:
        if path is None:
            continue
        try:
            write(path)
        except OSError as exc:
            raise DomainError(f"{option}: cannot write {path} ({exc.strerror or exc})") from None
        written.append(str(path))
    if as_json:
        click.echo(json.dumps(reports.records(df), indent=2, default=str))
    else:
        click.echo(df.to_string(index=False, na_rep="") if not df.empty else "(no data)")
    for column in ("net_company", "amount_due_company", "discount_company"):
        if column in df and not df.empty and (df["currency"] != df["company_currency"]).any():
            click.echo("note: " + reports.CONVERTED_NOTE.format(column=column, currency=df["company_currency"].iloc[0]),
                       err=True)
    for path in written:
        click.echo(f"wrote {path}", err=True)


@click.command(cls=DealflowCommand)
@click.option("--as-of", help="Run as if it were this time (ISO, UTC); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print what was queued as JSON.")
def remind(as_of: str | None, as_json: bool) -> None:
    """Run the reminder rules now (what the scheduled `reminders` deployment does)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    when = _as_of(as_of)
    ensure_api()
    from flows.reminders import reminders_flow

    queued = reminders_flow(as_of=when.isoformat(timespec="seconds") if when else None)
    emit(queued, as_json, table(queued, ["rule", "about", "to", "subject"]))
