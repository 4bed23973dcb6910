"""Each report's figures against hand-computed values on a small fixed data set."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dealflow.cli import main
from dealflow.scenario import LEAD, SCRIPT, Move, play_direct
from models import Invoice, pipeline, process, utcnow
from models.deal import deal_by_number
from models.pipeline import add_lead
from services import reports
from services.db import session_scope

from .conftest import PG_URL

D = Decimal
# the scenario for a customer whose terms ask for no deposit (only the seeded Riverside's do)
NO_DEPOSIT = [m for m in SCRIPT if m.step != "deposit"]


def _deal(company: str) -> str:
    with session_scope() as s:
        lead = add_lead(s, **(LEAD | {"company": company}))
        number = process.start_deal(s, lead.id).number
        s.commit()
        return number


@pytest.fixture
def book(db) -> dict[str, str]:
    """A: the Glocial sale, won (budget 150,000). B: qualified with budget 90,000, moved to proposal
    by Sofia, waiting for the hand-off. C: a new lead."""
    a, b, c = _deal("A Works"), _deal("B Works"), _deal("C Works")
    play_direct(a, script=NO_DEPOSIT)
    b_script = [Move("qualify", "sofia", {"qualified": True, "budget": "90000"}, "")]
    play_direct(b, script=b_script, until="handoff")
    with session_scope() as s:
        pipeline.move_stage(s, deal_by_number(s, b), by="sofia", stage="proposal")
        s.commit()
    play_direct(c, until="qualify")
    return {"a": a, "b": b, "c": c}


def test_pipeline_funnel_sales_and_stock_match_the_book(book):
    with session_scope() as s:
        pipe = reports.pipeline(s)
        fun = reports.funnel(s)
        sal = reports.sales(s)
        stk = reports.stock(s).set_index("sku")
    # the open pipeline only: B at proposal (60 %) with its budget; A is won, not pipeline
    assert pipe.to_dict(orient="records") == [
        {"stage": "proposal", "owner": "sofia", "currency": "USD", "opportunities": 1, "amount": D("90000.00"), "weighted": D("54000.00")}]
    assert fun[["step", "deals"]].values.tolist() == [["leads", 3], ["opportunities", 2], ["estimates sent", 1],
                                                       ["orders", 1], ["paid", 1]]
    assert fun["conversion_pct"].tolist()[1:] == [66.7, 50.0, 100.0, 100.0]
    month = datetime.now().strftime("%Y-%m")
    assert sal.drop(columns=["net_company", "company_currency"]).to_dict(orient="records") == [
        {"month": month, "sku": "CHUCK-3J-250", "currency": "USD", "quantity": 3, "net": D("5550.00")},
        {"month": month, "sku": "CNC-LATHE-2000", "currency": "USD", "quantity": 3, "net": D("133860.00")},  # 3 × 48,500 − 8 %
        {"month": month, "sku": "COOLANT-20L", "currency": "USD", "quantity": 10, "net": D("899.00")},
        {"month": month, "sku": "TOOL-KIT-PRO", "currency": "USD", "quantity": 3, "net": D("7350.00")}]
    assert (sal["net_company"] == sal["net"]).all() and set(sal["company_currency"]) == {"USD"}  # its own currency
    assert stk.loc["CNC-LATHE-2000", ["on_hand", "reserved", "available", "moved_in", "moved_out"]].tolist() == [
        1, 0, 1, 4, 3]  # the won deal shipped all it ordered: nothing held
    assert stk.loc["CNC-LATHE-2000", "value"] == D("48500.00")
    assert stk.loc["VMC-850", "value"] == D("218700.00")  # 3 × 72,900


def test_stage_times_show_median_and_p90_per_rep(book):
    with session_scope() as s:
        deal = deal_by_number(s, book["a"])
        qa = sorted((w for w in deal.waits if w.step == "qa"), key=lambda w: w.id)
        start = datetime(2026, 11, 2, 9, 0)
        for w, hours in zip(qa, (1, 3), strict=True):
            w.opened_at, w.answered_at = start, start + timedelta(hours=hours)
        s.commit()
        df = reports.stage_times(s)
    row = df[(df.kind == "wait") & (df.name == "qa")].iloc[0]
    assert (row.owner, row["count"], row.median_h, row.p90_h) == ("sofia", 2, 2.0, 2.8)
    assert set(df[df.kind == "stage"].name) >= {"needs_analysis", "proposal", "negotiation"}


def test_aging_puts_an_invoice_in_its_bucket(db):
    deal = _deal("Late Payer Ltd")
    play_direct(deal, script=NO_DEPOSIT, until="payment-1")
    with session_scope() as s:
        due = s.scalars(select(Invoice.due_date)).one()
        by_day = {days: reports.aging(s, due + timedelta(days=days)).set_index("bucket")
                  for days in (0, 1, 45, 91)}
    assert by_day[0].loc["current", "amount_due"] == D("174183.68")
    assert by_day[1].loc["1-30", "invoices"] == 1
    assert by_day[45].loc["31-60", "amount_due"] == D("174183.68")
    assert by_day[45]["amount_due"].sum() == D("174183.68")
    assert by_day[91].loc["over 90", "invoices"] == 1
    with session_scope() as s:
        before_issue = reports.aging(s, due - timedelta(days=40))
    assert before_issue["invoices"].sum() == 0  # as of a day before the invoice existed


def test_report_command_writes_csv_xlsx_and_a_png_chart(book, tmp_path):
    for name in reports.CHARTS:
        png = tmp_path / f"{name}.png"
        result = CliRunner().invoke(main, ["report", name, "--png", str(png)])
        assert result.exit_code == 0, result.stderr
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    csv, xlsx = tmp_path / "p.csv", tmp_path / "p.xlsx"
    result = CliRunner().invoke(main, ["report", "pipeline", "--csv", str(csv), "--xlsx", str(xlsx)])
    assert result.exit_code == 0
    assert csv.read_text().splitlines()[1] == "proposal,sofia,USD,1,90000.00,54000.00"
    assert xlsx.read_bytes()[:2] == b"PK"
    rows = json.loads(CliRunner().invoke(main, ["report", "funnel", "--json"]).stdout)
    assert rows[0] == {"step": "leads", "deals": 3, "conversion_pct": None}
    bad = CliRunner().invoke(main, ["report", "sales", "--png", str(tmp_path / "x.png")])
    assert (bad.exit_code, bad.stderr) == (2, "error: png: charts exist for pipeline, funnel, aging, returns\n")


def _tick_labels(axis) -> list[str]:
    axis.figure.canvas.draw()
    return [t.get_text().replace("\N{MINUS SIGN}", "-") for t in axis.get_ticklabels() if t.get_text()]


def test_charts_count_in_whole_numbers_and_show_no_minus_zero(book):
    import matplotlib.pyplot as plt

    with session_scope() as s:
        funnel = reports.funnel(s)
        nothing_due = reports.aging(s, utcnow().date() - timedelta(days=400))  # before any invoice: all zero
    fig = reports.figure("funnel", funnel)
    counts = _tick_labels(fig.axes[0].xaxis)
    assert counts and all(label.isdigit() for label in counts), counts  # 0 1 2 3, never 0.5 or 2.5
    plt.close(fig)
    fig = reports.figure("aging", nothing_due)
    amounts = _tick_labels(fig.axes[0].yaxis)
    assert amounts and not any(label.startswith("-") for label in amounts), amounts
    plt.close(fig)
    assert [reports._short_money(v, 0) for v in (-0.0, -0.04, 0.0, 1500, 2_500_000)] == ["0", "0", "0", "1.5 k",
                                                                                          "2.5 M"]




def test_amounts_in_different_currencies_are_never_added_together(book, tmp_path):
    from models import Deal

    with session_scope() as s:
        deals = s.scalars(select(Deal).order_by(Deal.id)).all()
        for deal in deals:
            if deal.opportunity is not None and deal.opportunity.stage == "proposal":
                deal.currency = "EUR"  # the open proposal is a euro deal
        s.commit()
        pipe = reports.pipeline(s)
        ages = reports.aging(s, utcnow().date())
    assert pipe[["stage", "currency", "amount"]].values.tolist() == [["proposal", "EUR", D("90000.00")]]
    assert set(ages["currency"]) == {"USD"} and len(ages) == len(reports.AGING_BUCKETS)
    mixed = pd.DataFrame([{"stage": "proposal", "owner": "sofia", "currency": c, "opportunities": 1,
                           "amount": D(a), "weighted": D(a) / 2} for c, a in (("EUR", "90000"), ("JPY", "5000000"))])
    png = tmp_path / "pipeline.png"
    reports.chart("pipeline", mixed, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# customers paying 30 % before shipping: each order 174,183.68, its deposit 52,255.10, its final
# invoice 121,928.58


def test_aging_counts_open_deposit_invoices_and_leaves_out_credited_ones(db):
    from .test_deposit_documents import cancel, deposit_deal

    deposit_deal("Waiting Works", until="deposit-1")  # its deposit invoice open
    cancel(deposit_deal("Unpaid Works", until="deposit-1"), "refund", "Never paid the deposit")  # credited
    deposit_deal("Final Works", until="payment-1")  # the deposit paid, the final invoice open
    with session_scope() as s:
        today = utcnow().date()
        deposit_due = s.scalars(select(Invoice.due_date).where(Invoice.kind == "deposit")).first()
        now = reports.aging(s, today).set_index("bucket")
        later = reports.aging(s, deposit_due + timedelta(days=1)).set_index("bucket")
    # the waiting deal's deposit and the final invoice of the last; the unpaid deposit of the
    # cancelled deal is credited: nobody owes it
    assert now.loc["current", ["invoices", "amount_due", "deposit_invoices", "deposit_due"]].tolist() == [
        2, D("174183.68"), 1, D("52255.10")]
    assert now["invoices"].sum() == 2 and now["amount_due"].sum() == D("174183.68")
    assert later.loc["1-30", ["invoices", "amount_due", "deposit_invoices"]].tolist() == [1, D("52255.10"), 1]
    assert later.loc["current", ["invoices", "deposit_invoices"]].tolist() == [1, 0]
    with session_scope() as s:
        yesterday = reports.aging(s, today - timedelta(days=1))
    assert yesterday["invoices"].sum() == 0  # nothing was issued before today


def test_the_cash_report_counts_payments_deposits_and_refunds_per_month(db):
    from .test_deposit_documents import cancel, deposit_deal

    deposit_deal("Won Works")
    cancel(deposit_deal("Refunded Works", until="shipment-1"), "refund", "Project stopped")
    cancel(deposit_deal("Kept Works", until="shipment-1"), "credit", "Order replaced")
    month = utcnow().strftime("%Y-%m")
    with session_scope() as s:
        cash = reports.cash(s)
    # final payments: the won deal's 48,771.43 + 73,157.15; deposits: three paid; refunds: one
    # (the deposit kept as credit moves no money)
    assert cash.drop(columns=["company_currency"]).to_dict(orient="records") == [
        {"month": month, "currency": "USD", "invoice_payments": D("121928.58"), "deposits": D("156765.30"),
         "refunds": D("-52255.10"), "net": D("226438.78"), "net_company": D("226438.78")}]
    assert set(cash["company_currency"]) == {"USD"}
    rows = json.loads(CliRunner().invoke(main, ["report", "cash", "--json"]).stdout)
    assert rows == [{"month": month, "currency": "USD", "invoice_payments": "121928.58", "deposits": "156765.30",
                     "refunds": "-52255.10", "net": "226438.78", "net_company": "226438.78",
                     "company_currency": "USD"}]
    yesterday = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    result = CliRunner().invoke(main, ["report", "cash", "--as-of", yesterday])
    assert (result.exit_code, result.stdout) == (0, "(no data)\n")  # nothing had come in yet


# --- PostgreSQL adds up the reports over every row (services.reports_pg) ---------------------------

def test_the_median_and_p90_from_the_hours_at_their_positions_are_pandas_own():
    """PostgreSQL sends, of each group's sorted hours, the few at the positions pandas reads; from
    them ``spread`` gives pandas' median and 0.9 quantile to the last bit, so that the rounding to
    two decimals comes out the same (hours of whole seconds sit on its boundaries often)."""
    import numpy as np

    from services.reports_pg import positions, spread

    rng = np.random.default_rng(26)
    for n in [*range(1, 42), 99, 100, 101, 1060, 4999]:
        for hours in (rng.integers(0, 10**6, n) / 3600, rng.integers(0, 40, n) * 0.5, rng.random(n) * 5000):
            expected = (pd.DataFrame({"g": 0, "hours": hours}).groupby("g")["hours"]
                        .agg(median_h="median", p90_h=lambda h: h.quantile(0.9)).iloc[0])
            ordered = np.sort(hours)
            at = {i: float(ordered[i]) for i in positions(n) if 0 <= i < n}
            assert spread(n, at) == (expected["median_h"], expected["p90_h"]), (n, hours)


@pytest.mark.skipif(not PG_URL, reason="on SQLite the reports add up the rows in Python only")
def test_postgresql_adds_up_what_python_adds_up(book, monkeypatch):
    """Every report PostgreSQL adds up (stage-times, sales, discounts, aging, cash) gives what the
    same report gives from the rows in Python, to the digit and the decimal places: with a yen deal
    at a six-decimal rate (and a revision without discounts whose cents yen rounds off), lines
    whose discount and tax end on half a cent, a refund, a deposit,
    an open invoice, and waits of whole seconds."""
    from sqlalchemy import func, update

    from models import EstimateLine, Wait
    from services import reports_pg

    from .test_deposit_documents import cancel, deposit_deal

    deposit_deal("Won Works")
    cancel(deposit_deal("Refunded Works", until="shipment-1"), "refund", "Project stopped")
    waiting = deposit_deal("Waiting Works", until="payment-1")
    with session_scope() as s:
        yen = deal_by_number(s, book["a"])
        yen.currency = "JPY"
        yen.order.estimate_revision.fx_rate = Decimal("150.123457")
        for line in [*yen.order.lines, *yen.invoice.lines]:
            line.unit_price, line.discount_pct = line.unit_price + Decimal("0.50"), Decimal("12.50")
        s.execute(update(EstimateLine).where(EstimateLine.revision_id == yen.estimate.latest.id)  # a sent one's
                  .values(unit_price=EstimateLine.unit_price + Decimal("0.50"), discount_pct=Decimal("12.50")))
        # its first revision (sent, then changed) without discounts, each line one unit at a price with
        # 40 cents: yen rounds each line's gross down, so each line gives 0.40 although none is discounted
        first = yen.estimate.revisions[0]
        assert first.sent_at is not None and first is not yen.estimate.latest and first.lines
        s.execute(update(EstimateLine).where(EstimateLine.revision_id == first.id).values(
            unit_price=func.floor(EstimateLine.unit_price) + Decimal("0.40"), quantity=1, discount_pct=Decimal("0")))
        for line in deal_by_number(s, waiting).invoice.lines[:1]:  # 0.04 less 12.5 % (0.005), tax 50 % of 0.03
            line.unit_price, line.quantity, line.discount_pct, line.tax_rate = (Decimal("0.04"), 1, Decimal("12.50"),
                                                                                Decimal("50.00"))
        start = datetime(2026, 11, 2, 9, 0)
        for i, wait in enumerate(s.scalars(select(Wait).order_by(Wait.id))):
            wait.opened_at, wait.answered_at = start, start + timedelta(seconds=18 + 36 * (i % 7))
        s.commit()
        due = s.scalars(select(Invoice.due_date).order_by(Invoice.id)).first()
    times = [None, utcnow() + timedelta(hours=5), datetime.combine(due + timedelta(days=45), datetime.min.time())]
    # "now" (None) is the same moment for both ways: a stage still open counts until now, and the
    # seconds between the two could cross a hundredth of an hour
    from services import reports_cash

    now = utcnow()
    monkeypatch.setattr(reports, "utcnow", lambda: now)
    monkeypatch.setattr(reports_cash, "utcnow", lambda: now)
    names = ["stage-times", "sales", "discounts", "aging", "cash"]

    def every_report() -> dict:
        with session_scope() as s:
            return {(name, str(at)): reports.build(s, name, at) for name in names for at in times}

    in_database = every_report()
    monkeypatch.setattr(reports_pg, "on_postgresql", lambda session: False)
    in_python = every_report()
    assert set(in_database) == set(in_python)
    for key, df in in_python.items():
        assert not df.empty, key
        assert list(in_database[key].dtypes.astype(str)) == list(df.dtypes.astype(str)), key
        assert (json.dumps(reports.records(in_database[key]), default=str)
                == json.dumps(reports.records(df), default=str)), key
