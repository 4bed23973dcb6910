"""The after-sale reports: `report returns` (returns and warranty claims per product and month, a
table and a chart) and `report warranty [--within 30d]` (units whose warranty ends soon), their
figures from returns and claims driven through the domain, and the scheduled reports run
publishing both."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dealflow.cli import main
from models import utcnow
from models.returns import ReturnOrder
from models.serials import serial_by_number
from services import reports
from services.db import session_scope

from . import test_returns
from .test_bad_input_cli import _fingerprint
from .test_returns import (
    AUTHORIZE,
    CREDIT,
    KIT,
    LATHE,
    RECEIVE,
    SHIP_BACK,
    _ask,
    _claim,
    drive_case,
    inspected,
    received,
    shipped_serials,
)

staff = test_returns.staff  # the manager signed in (won_deal: tests/conftest.py)

CHUCK = "CHUCK-3J-250"
PNG = b"\x89PNG\r\n\x1a\n"


def _report(*args: str):
    return CliRunner().invoke(main, ["report", *args])


def _return_for_repair(sn: str) -> str:
    """A warranty claim on ``sn`` sent back for repair, received, inspected, shipped back and closed."""
    number = _claim(sn)
    steps = drive_case(number, {
        "claim_diagnose": {"by": "mark", "diagnosis": "Spindle bearing worn.", "resolution": "return"},
        "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
        "return_inspect": {"by": "qa", "notes": "Bearing replaced.", "lines": [
            {"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "repair"}]},
        "return_ship_back": SHIP_BACK,
        "claim_close": {"by": "mark", "note": "Bearing replaced, unit shipped back."}})
    assert all(s.get("accepted", True) for s in steps), steps
    return number


def _earlier_month() -> datetime:
    """The 15th of a month two months back: a return asked for then."""
    return (utcnow().replace(day=1) - timedelta(days=40)).replace(day=15, hour=9)


@pytest.fixture
def after_sale(won_deal, staff) -> dict:
    """The won deal's goods coming back: a lathe returned and restocked (RMA-0001, credited); two
    tool kits, one restocked and one scrapped (RMA-0002, asked for two months ago, not credited
    yet); one more kit refused (RMA-0003: counts nowhere); a chuck asked for and not received
    (RMA-0004); a lathe claimed under warranty, sent back for repair and shipped back repaired
    (WC-0001 with RMA-0005, closed); a claim left open on the third lathe (WC-0002)."""
    first, second, third = shipped_serials(won_deal, LATHE)
    rma1 = _ask(won_deal, f"{LATHE}:1:{first}")
    drive_case(rma1, {"return_authorize": AUTHORIZE,
                      "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [first]}]},
                      "return_inspect": {"by": "qa", "notes": "As new.", "lines": [
                          {"sku": LATHE, "serial": first, "quantity": 1, "outcome": "restock"}]},
                      "return_credit": CREDIT})
    rma2 = _ask(won_deal, f"{KIT}:2")
    drive_case(rma2, {"return_authorize": AUTHORIZE, "return_receive": received((KIT, 2)),
                      "return_inspect": inspected((KIT, 1, "restock"), (KIT, 1, "scrap"))})
    rma3 = _ask(won_deal, f"{KIT}:1")
    drive_case(rma3, {"return_authorize": {"by": "manager", "decision": "refuse", "note": "Outside the window."}})
    rma4 = _ask(won_deal, f"{CHUCK}:1")
    with session_scope() as s:  # the kits' return was asked for two months ago
        s.scalars(select(ReturnOrder).where(ReturnOrder.number == rma2)).one().requested_at = _earlier_month()
        s.commit()
    claim = _return_for_repair(second)
    open_claim = _claim(third)
    with session_scope() as s:
        states = dict(s.execute(select(ReturnOrder.number, ReturnOrder.status)).all())
    assert states == {rma1: "closed", rma2: "inspected", rma3: "refused", rma4: "requested", "RMA-0005": "closed"}
    assert (claim, open_claim) == ("WC-0001", "WC-0002")
    return {"deal": won_deal, "returned": first, "repaired": second, "claimed": third}


def test_the_returns_report_counts_returns_units_outcomes_and_claims_per_product_and_month(after_sale, tmp_path):
    month, earlier = utcnow().strftime("%Y-%m"), _earlier_month().strftime("%Y-%m")
    with session_scope() as s:
        df = reports.returns(s)
    # two months ago the kits: one return, two units, one restocked and one scrapped; this month the
    # chuck asked for and not received yet, and the lathes: RMA-0001 (restocked) and the claim's
    # RMA-0005 (to repair), and two claims; the refused kit counts nowhere
    expected = [
        {"month": earlier, "sku": KIT, "returns": 1, "warranty_returns": 0, "units_returned": 2, "restocked": 1,
         "scrapped": 1, "to_repair": 0, "claims": 0},
        {"month": month, "sku": CHUCK, "returns": 1, "warranty_returns": 0, "units_returned": 0, "restocked": 0,
         "scrapped": 0, "to_repair": 0, "claims": 0},
        {"month": month, "sku": LATHE, "returns": 2, "warranty_returns": 1, "units_returned": 2, "restocked": 1,
         "scrapped": 0, "to_repair": 1, "claims": 2},
    ]
    assert df.to_dict(orient="records") == expected
    png, csv = tmp_path / "returns.png", tmp_path / "returns.csv"
    result = _report("returns", "--json", "--png", str(png), "--csv", str(csv))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000
    assert csv.read_text().splitlines() == [
        "month,sku,returns,warranty_returns,units_returned,restocked,scrapped,to_repair,claims",
        f"{earlier},{KIT},1,0,2,1,1,0,0", f"{month},{CHUCK},1,0,0,0,0,0,0", f"{month},{LATHE},2,1,2,1,0,1,2"]
    text = _report("returns")
    assert text.exit_code == 0 and text.stdout.splitlines()[0].split() == [
        "month", "sku", "returns", "warranty_returns", "units_returned", "restocked", "scrapped", "to_repair", "claims"]


def _bar_heights(fig) -> dict[str, list[float]]:
    ax = fig.axes[0]
    return {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}


def test_the_returns_chart_stacks_units_by_outcome_per_month_beside_the_claims(after_sale):
    import matplotlib.pyplot as plt

    with session_scope() as s:
        df = reports.returns(s)
    fig = reports.figure("returns", df)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [_earlier_month().strftime("%Y-%m"),
                                                           utcnow().strftime("%Y-%m")]
    assert _bar_heights(fig) == {"units restocked": [1, 1], "units scrapped": [1, 0], "units to repair": [0, 1],
                                 "units awaiting inspection": [0, 0], "warranty claims": [0, 2]}
    ax.figure.canvas.draw()
    ticks = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()]
    assert ticks and all(t.isdigit() for t in ticks), ticks  # whole units, never 0.5
    plt.close(fig)


def test_a_return_received_and_not_inspected_shows_as_awaiting_inspection(won_deal, staff):
    import matplotlib.pyplot as plt

    number = _ask(won_deal, f"{KIT}:2")
    drive_case(number, {"return_authorize": AUTHORIZE, "return_receive": received((KIT, 1))})
    with session_scope() as s:
        df = reports.returns(s)
    assert df[["sku", "returns", "units_returned", "restocked", "scrapped", "to_repair"]].values.tolist() == [
        [KIT, 1, 1, 0, 0, 0]]
    fig = reports.figure("returns", df)
    assert _bar_heights(fig)["units awaiting inspection"] == [1]
    plt.close(fig)


def test_no_returns_is_an_empty_table_and_a_chart_that_says_so(db, tmp_path):
    with session_scope() as s:
        df = reports.returns(s)
    assert df.empty and list(df.columns) == reports.RETURNS_COLUMNS
    png = tmp_path / "none.png"
    result = _report("returns", "--png", str(png))
    assert (result.exit_code, result.stdout) == (0, "(no data)\n")
    assert png.read_bytes()[:8] == PNG
    assert json.loads(_report("returns", "--json").stdout) == []


# --- warranty ending soon --------------------------------------------------------------------------

def _warranty_end(sn: str):
    with session_scope() as s:
        return serial_by_number(s, sn).warranty_end


def _as_of(day) -> str:
    return f"{day.isoformat()}T12:00:00"


def test_the_warranty_report_lists_units_with_their_customer_ending_within_the_period(after_sale):
    end = _warranty_end(after_sale["claimed"])
    with session_scope() as s:
        unit = serial_by_number(s, after_sale["claimed"])
        deal, customer, shipped = unit.deal.number, unit.customer.name, unit.shipped_on
        assert unit.product.warranty_months == 24 and end > utcnow().date() + timedelta(days=365)
    # ten days before its end: the claimed lathe, with its open claim, and the one repaired under
    # warranty and shipped back (its warranty as it was); the lathe returned and restocked is no
    # longer with the customer
    rows = json.loads(_report("warranty", "--as-of", _as_of(end - timedelta(days=10)), "--json").stdout)
    assert rows == [{"serial": sn, "sku": LATHE, "customer": customer, "deal": deal,
                     "shipped_on": shipped.isoformat(), "warranty_end": end.isoformat(), "days_left": 10,
                     "open_claims": claims} for sn, claims in ((after_sale["repaired"], ""),
                                                               (after_sale["claimed"], "WC-0002"))]
    with session_scope() as s:
        df = reports.warranty(s, end - timedelta(days=30))  # the default period: 30 days, its last day included
        assert df[["serial", "days_left"]].values.tolist() == [[after_sale["repaired"], 30],
                                                                [after_sale["claimed"], 30]]
        assert reports.warranty(s, end - timedelta(days=31)).empty
        assert reports.warranty(s, end - timedelta(days=31), "5w")["days_left"].tolist() == [31, 31]
        assert reports.warranty(s, end)["days_left"].tolist() == [0, 0]  # their last day
        assert reports.warranty(s, end + timedelta(days=1), "1y").empty  # expired
    soon = _report("warranty", "--as-of", _as_of(end - timedelta(days=10)), "--within", "5d")
    assert (soon.exit_code, soon.stdout) == (0, "(no data)\n")
    year = _report("warranty", "--within", "2y")  # from today: within two years of shipping today
    assert year.exit_code == 0 and after_sale["claimed"] in year.stdout and "WC-0002" in year.stdout


def test_a_closed_claim_is_not_an_open_one(won_deal, staff):
    first, *_ = shipped_serials(won_deal, LATHE)
    number = _claim(first)
    drive_case(number, {"claim_diagnose": {"by": "mark", "diagnosis": "Worn.", "resolution": "repair_on_site"},
                        "claim_close": {"by": "mark", "note": "Replaced on site."}})
    end = _warranty_end(first)
    with session_scope() as s:
        df = reports.warranty(s, end - timedelta(days=1)).set_index("serial")
    assert set(df.index) == set(shipped_serials(won_deal, LATHE))  # repaired on site: still the customer's
    assert df["open_claims"].tolist() == ["", "", ""]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(within=st.one_of(st.text(max_size=12), st.sampled_from(["0", "30", "d", "-3d", "30x", "3651d", "1.5m",
                                                                "30 days", "9999y"])))
def test_a_bad_period_is_one_line_naming_within(db, within):
    fingerprint = _fingerprint()
    result = _report("warranty", "--within", within)
    from models.serials import PERIOD

    if PERIOD.fullmatch(within.strip().lower()) and int(PERIOD.fullmatch(within.strip().lower())[1]) <= 3650:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(("error: --within: must be a number of days, weeks, months or years",
                                     "error: within: must not contain control characters"))  # the CLI's own check
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert _fingerprint() == fingerprint


def test_within_belongs_to_the_warranty_report_only(db):
    result = _report("returns", "--within", "30d")
    assert (result.exit_code, result.stderr) == (2, "error: --within: only the warranty report has a period\n")


# --- the scheduled reports run ---------------------------------------------------------------------

def test_the_reports_run_publishes_the_after_sale_reports(after_sale, prefect_api):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.reports import reports_flow

    counts = reports_flow()
    assert set(counts) == set(reports.REPORTS) >= {"returns", "warranty"}
    assert counts["returns"] == 3 and counts["warranty"] == 0  # no warranty ends in the next 30 days
    with get_client(sync_client=True) as client:
        found = {key: client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
                 for key in ("report-returns", "report-warranty")}
    returns_table = json.dumps(found["report-returns"][-1].data)
    assert LATHE in returns_table and CHUCK in returns_table and "warranty_returns" in returns_table
    assert "no data" in json.dumps(found["report-warranty"][-1].data)
