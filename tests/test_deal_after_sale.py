"""A deal read years later tells its story after the sale: `deal show` (text and --json), the deal's
page in the Prefect UI and the demo's summary list the serial numbers each shipment took, the
deal's returns (state, lines, outcome, credit note) and warranty claims (serial, state,
diagnosis), and whom each open case waits for; the timeline says it in sentences. What a person
typed shows as typed on the page, never as markup. Reading it costs a few queries, however many
returns and claims the deal has."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from io import StringIO

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from application import cases, deals
from application.after_sale import after_sale_page
from dealflow.cli import main
from dealflow.scenario import play_direct
from models.credit_notes import CreditNote
from models.markdown import Markdown, plain
from services.config import run_page
from services.db import engine_for, session_scope

from .test_markdown import NASTY, RENDER, TYPED, _tags, _text
from .test_returns import (  # noqa: F401 - staff: a fixture, signed in as the manager for every test here
    AUTHORIZE,
    CREDIT,
    KIT,
    LATHE,
    RECEIVE,
    SHIP_BACK,
    _ask,
    _claim,
    drive_case,
    shipped_serials,
    staff,
)

pytestmark = pytest.mark.usefixtures("staff")
NASTY_REASON = "<script>alert(1)</script> **now** [refund](http://evil.example) | x"


def show(deal: str) -> str:
    result = CliRunner().invoke(main, ["deal", "show", deal])
    assert result.exit_code == 0, result.output
    return result.output


def show_json(deal: str) -> dict:
    result = CliRunner().invoke(main, ["deal", "show", deal, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def page(deal: str) -> str:
    return str(deals.deal_page(deal)[1])


def section(markdown: str, title: str) -> str:
    """One '## title' section of the page, up to the next."""
    start = markdown.index(f"## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end != -1 else None]


def restocked_with_credit(deal: str, sn: str, reason: str = "Guard cracked in transit.") -> str:
    number = _ask(deal, f"{LATHE}:1:{sn}", reason)
    drive_case(number, {"return_authorize": AUTHORIZE,
                        "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
                        "return_inspect": {"by": "qa", "notes": "As new.", "lines": [
                            {"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "restock"}]},
                        "return_credit": CREDIT})
    return number


def test_each_shipment_lists_the_serial_numbers_that_left_in_it_in_deal_show_the_page_and_the_demo(won_deal):
    data = show_json(won_deal)
    lathes = [sh["serials"].get(LATHE, []) for sh in data["shipments"]]
    assert [len(s) for s in lathes] == [sh["lines"][LATHE] for sh in data["shipments"]] == [2, 1]
    assert sorted(lathes[0] + lathes[1]) == shipped_serials(won_deal, LATHE)
    assert all(set(sh["serials"]) == {LATHE} for sh in data["shipments"])  # the kits and chucks have none
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", sh["date"]) for sh in data["shipments"])
    text = show(won_deal).splitlines()
    at = text.index(next(line for line in text if line.startswith("shipment SHP-0001:")))
    assert text[at + 1] == f"  {LATHE} serial numbers: {', '.join(lathes[0])}"
    shipped = plain(section(page(won_deal), "Shipments"))
    assert f"| SHP-0001 | {data['shipments'][0]['date']} | DHL Freight DHLF-7845120 | {LATHE} | 2 | " \
           f"{', '.join(lathes[0])} |" in shipped
    assert f"| {KIT} | 2 | — |" in shipped
    # the demo's summary is the deal's (won_deal plays the demo's script without Prefect), and prints them
    from dealflow.demo import print_summary

    out = StringIO()
    print_summary({**deals.deal_summary(won_deal), "seconds": 1.0, "stock": {}, "refused": 0, "mail_dir": "mail",
                   "documents_dir": "documents"}, out)
    printed = out.getvalue().splitlines()
    at = next(i for i, line in enumerate(printed) if line.startswith("  shipment SHP-0001"))
    assert printed[at + 1].split() == [LATHE, "serial", "numbers:", *", ".join(lathes[0]).split()]


def test_a_return_shows_its_state_lines_outcome_and_credit_note(won_deal):
    sn = shipped_serials(won_deal, LATHE)[0]
    number = restocked_with_credit(won_deal, sn)
    with session_scope() as s:
        note = s.scalars(select(CreditNote)).one()
        amount, fee, refund = note.amount, note.restocking_fee, note.refund_number
    ret = show_json(won_deal)["returns"][0]
    assert (ret["number"], ret["status"], ret["kind"], ret["waiting_for"]) == (number, "closed", "return", None)
    assert [(ln["sku"], ln["quantity"], ln["received"], ln["restocked"], ln["serials"]) for ln in ret["lines"]] == [
        (LATHE, 1, 1, 1, [sn])]
    assert ret["outcome"] == f"{LATHE}: 1 restocked"
    assert ret["credit_note"] == ret["credit"]["number"] == "CN-0001"
    assert (Decimal(ret["credit"]["amount"]), Decimal(ret["credit"]["restocking_fee"])) == (amount, fee)
    assert ret == {**cases.case_summary(number), **ret}  # as `return show --json` says it, and more
    text = show(won_deal)
    assert f"return {number}: closed: 1 × {LATHE} ({sn}); reason: Guard cracked in transit." in text
    assert f"  outcome: {LATHE}: 1 restocked" in text
    assert f"  credit note CN-0001: {amount} USD (restocking fee {fee} USD), refunded {amount} USD ({refund})" in text
    returns = plain(section(page(won_deal), "Returns"))
    assert f"**{number}** (return) · **closed** · asked for on " in returns
    assert f"| {LATHE} | 1 | 1 | {sn} |" in returns
    assert f"Outcome: {LATHE}: 1 restocked." in returns
    assert (f"Credit note **CN-0001**: {amount} USD credited, less a restocking fee of {fee} USD (10 %); "
            f"refunded {amount} USD ({refund}).") in returns
    money = plain(page(won_deal))
    assert f"| credit note CN-0001 | return {number} against invoice INV-0001; refunded {amount} USD" in money


RUN = "3f1b2c3d-0000-4000-8000-000000000001"  # the case's run, as the server named it


def test_an_open_return_says_whom_it_waits_for_and_links_its_run(won_deal, monkeypatch):
    number = _ask(won_deal, f"{KIT}:1")
    drive_case(number, {})  # its authorization's wait opened
    cases.attach_run(number, RUN)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    wait = show_json(won_deal)["returns"][0]["waiting_for"]
    assert (wait["key"], wait["roles"], wait["for"]) == (
        "rma-0001-authorize", ["manager"], "a return's authorization, by a manager")
    text = show(won_deal).splitlines()
    at = text.index(f"return {number}: requested: 1 × {KIT}; reason: One lathe arrived with a cracked guard.")
    assert re.fullmatch(r"  waiting for a return's authorization, by a manager \(rma-0001-authorize\) since \S+ UTC",
                        text[at + 1]), text[at + 1]
    url = run_page(RUN)
    assert url.startswith("http://127.0.0.1:4200/") and url.endswith(RUN)
    assert text[at + 2] == f"  answer it on the run's page (menu ⋮ → Resume): {url}"
    returns = section(page(won_deal), "Returns")
    waiting = next(line for line in returns.splitlines() if line.startswith("⏸"))
    assert re.fullmatch(r"⏸ waiting since \S+ UTC for a return's authorization, by a manager \(rma-0001-authorize\): "
                        r"answer it on the run's page \(menu ⋮ → Resume\)", plain(re.sub(r"\]\([^)]*\)", "", waiting)
                                                                                  .replace("[", ""))), waiting
    assert f"]({url})" in waiting


def test_a_refused_return_shows_the_managers_reason_as_typed_never_as_markup(won_deal):
    number = _ask(won_deal, f"{LATHE}:1", NASTY_REASON)
    drive_case(number, {"return_authorize": {"by": "manager", "decision": "refuse", "note": NASTY_REASON}})
    ret = show_json(won_deal)["returns"][0]
    assert (ret["status"], ret["decided_by"], ret["decision_note"]) == ("refused", "manager", NASTY_REASON)
    assert f"  refused by manager: {NASTY_REASON}" in show(won_deal)
    markdown = page(won_deal)
    returns = section(markdown, "Returns")
    rendered = RENDER.render(returns)
    assert _tags(rendered) <= {"h2", "p", "strong", "table", "thead", "tbody", "tr", "th", "td"}, rendered
    assert f"Refused by manager: {NASTY_REASON}" in _text(rendered)
    assert "<script>" not in markdown and "](http://evil" not in markdown
    timeline = plain(section(markdown, "Timeline"))
    assert f"Morgan Lee (sales manager) refused return {number}: {NASTY_REASON}" in timeline


def test_a_warranty_claim_shows_its_serial_state_diagnosis_and_its_return_until_it_closes(won_deal):
    sn = shipped_serials(won_deal, LATHE)[1]
    number = _claim(sn, "Spindle overheats after an hour.")
    drive_case(number, {"claim_diagnose": {"by": "mark", "diagnosis": "Spindle bearing worn.", "resolution": "return"}})
    data = show_json(won_deal)
    claim, ret = data["claims"][0], data["returns"][0]
    assert (claim["number"], claim["serial"], claim["sku"], claim["status"], claim["diagnosis"], claim["return"]) == (
        number, sn, LATHE, "diagnosed", "Spindle bearing worn.", "RMA-0001")
    assert claim["waiting_for"]["key"] == ret["waiting_for"]["key"] == "rma-0001-receive"  # it waits for its return
    assert (ret["warranty_claim"], ret["with_credit"], ret["credit"]) == (number, False, None)
    text = show(won_deal)
    assert (f"warranty claim {number}: diagnosed: {LATHE} {sn} (warranty until {claim['warranty_end']}); "
            f"issue: Spindle overheats after an hour.") in text
    assert "  diagnosis by mark: Spindle bearing worn. → return under RMA-0001" in text
    assert f"return RMA-0001 (warranty return for {number}): authorized: 1 × {LATHE} ({sn})" in text
    claims = plain(section(page(won_deal), "Warranty claims"))
    assert f"**{number}** · {LATHE} serial number **{sn}** · **diagnosed** · warranty until {claim['warranty_end']}" \
           in claims
    assert "Diagnosis by mark: Spindle bearing worn. → return for repair under RMA-0001." in claims
    assert "A warranty return: nothing is credited." in plain(section(page(won_deal), "Returns"))
    drive_case(number, {"return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
                        "return_inspect": {"by": "qa", "notes": "Bearing replaced.", "lines": [
                            {"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "repair"}]},
                        "return_ship_back": SHIP_BACK,
                        "claim_close": {"by": "mark", "note": "Bearing replaced, unit back with the customer."}})
    data = show_json(won_deal)
    assert (data["returns"][0]["status"], data["returns"][0]["outcome"], data["claims"][0]["status"]) == (
        "closed", f"{LATHE}: 1 to repair, 1 shipped back", "closed")
    markdown = plain(page(won_deal))
    assert f"Outcome: {LATHE}: 1 to repair, 1 shipped back." in section(markdown, "Returns")
    assert "Closed by mark: Bearing replaced, unit back with the customer." in section(markdown, "Warranty claims")
    assert ("Dana Ruiz (delivery) shipped the repaired units back to the customer (RMA-0001-BACK: DHL Freight "
            "DHLF-7845999)") in section(markdown, "Timeline")


def test_a_claim_repaired_on_site_shows_how_it_was_closed_and_the_timeline_tells_the_story(won_deal):
    sn = shipped_serials(won_deal, LATHE)[0]
    number = restocked_with_credit(won_deal, sn)
    claim = _claim(shipped_serials(won_deal, LATHE)[0], "Chuck jaw slips.")
    drive_case(claim, {"claim_diagnose": {"by": "mark", "diagnosis": "Jaw worn.", "resolution": "repair_on_site"}})
    timeline = plain(section(page(won_deal), "Timeline"))
    assert timeline.endswith(f"Waiting for closing a warranty claim ({claim}) |")
    drive_case(claim, {"claim_close": {"by": "mark", "note": "Jaws replaced on site."}})
    shown = show_json(won_deal)["claims"][0]
    assert (shown["status"], shown["resolution"], shown["close_note"], shown["closed_by"], shown["waiting_for"]) == (
        "closed", "repair_on_site", "Jaws replaced on site.", "mark", None)
    assert "  closed by mark: Jaws replaced on site." in show(won_deal)
    markdown = page(won_deal)
    claims = plain(section(markdown, "Warranty claims"))
    assert "Diagnosis by mark: Jaw worn. → repair on site." in claims
    assert "Closed by mark: Jaws replaced on site." in claims
    timeline = plain(section(markdown, "Timeline"))
    for sentence in [f"Morgan Lee (sales manager) recorded return request {number}: Guard cracked in transit.",
                     f"Waiting for a return's authorization ({number})",
                     f"Morgan Lee (sales manager) authorized return {number} with a 10 % restocking fee",
                     f"{number} (the RMA) was sent to the customer",
                     f"Dana Ruiz (delivery) received the goods of return {number}",
                     f"Quinn Alvarez (QA lead) inspected the goods of return {number}",
                     "Credit note CN-0001 was issued", f"Return {number} was closed",
                     f"opened warranty claim {claim} on serial number ", f"Mark Henry diagnosed warranty claim {claim}: "
                     "Jaw worn.", f"Mark Henry closed warranty claim {claim}: Jaws replaced on site."]:
        assert sentence in timeline, sentence
    assert "return.requested" not in timeline and "claim.opened" not in timeline and "rma-0001" not in timeline


def test_a_deal_that_never_shipped_has_no_returns_nor_claims_and_no_shipment_section(new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    data = show_json(new_deal)
    assert (data["shipments"], data["returns"], data["claims"]) == ([], [], [])
    markdown = page(new_deal)
    assert "## Shipments" not in markdown and "## Returns" not in markdown and "## Warranty claims" not in markdown


def _statements(action) -> int:
    """How many SQL statements ``action`` sends to the business database."""
    from services.config import load_settings

    engine = engine_for(load_settings().database_url)
    sent: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(sent)


def test_deal_show_reads_its_returns_and_claims_in_the_same_few_queries_however_many(won_deal):
    lathes = shipped_serials(won_deal, LATHE)
    restocked_with_credit(won_deal, lathes[0])
    claim = _claim(lathes[1])
    drive_case(claim, {"claim_diagnose": {"by": "mark", "diagnosis": "Worn.", "resolution": "return"}})
    one_each = _statements(lambda: deals.deal_summary(won_deal))
    for lines in (f"{KIT}:1", f"{KIT}:1", "CHUCK-3J-250:2"):
        drive_case(_ask(won_deal, lines), {"return_authorize": AUTHORIZE})
    claim = _claim(lathes[2], "Noisy.")
    drive_case(claim, {"claim_diagnose": {"by": "mark", "diagnosis": "Belt.", "resolution": "repair_on_site"}})
    data = deals.deal_summary(won_deal)
    assert (len(data["returns"]), len(data["claims"])) == (5, 2)
    assert _statements(lambda: deals.deal_summary(won_deal)) == one_each


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed=st.one_of(TYPED.filter(str.strip), NASTY, st.tuples(NASTY, TYPED, NASTY).map(" ".join)))
def test_whatever_a_person_typed_about_a_case_shows_on_the_page_as_typed(won_cases, typed):
    data = {"returns": [{**won_cases["returns"][0], "reason": typed, "decision_note": typed, "status": "refused",
                         "credit": None},
                        {**won_cases["returns"][1], "reason": typed}],
            "claims": [{**won_cases["claims"][0], "issue": typed, "diagnosis": typed, "close_note": typed,
                        "closed_by": "mark"}]}
    rendered = RENDER.render(str(Markdown("\n").join(after_sale_page(data, "USD"))))
    assert _tags(rendered) <= {"h2", "p", "strong", "table", "thead", "tbody", "tr", "th", "td"}, rendered
    words = " ".join(typed.split())
    shown = _text(rendered)
    for said in (f": {words}", f"Refused by manager: {words}", f"Diagnosis by mark: {words} → ",
                 f"Closed by mark: {words}"):
        assert said in shown, said


@pytest.fixture
def won_cases(won_deal) -> dict:
    """A real return with its credit note, a warranty return and its claim: what the page shows."""
    lathes = shipped_serials(won_deal, LATHE)
    restocked_with_credit(won_deal, lathes[0])
    claim = _claim(lathes[1])
    drive_case(claim, {"claim_diagnose": {"by": "mark", "diagnosis": "Worn.", "resolution": "return"}})
    with session_scope() as s:
        from application.after_sale import after_sale
        from models.deal import deal_by_number

        return after_sale(s, deal_by_number(s, won_deal))
