"""What a new user met trying the after-sale commands from the README (issue 25): `return list`
in its three forms, `return show` telling all of a return as `deal show` does, messages of
`return start` that say what is true in plain words, form names as people know the steps, the
shipment's serial numbers from the CLI, and money and amounts shown as elsewhere."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from application import cases
from dealflow.cli import main
from flows.inputs import INPUTS
from models import ValidationError
from models.waits import KINDS

from .test_bad_input_cli import _fingerprint
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


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def cells(row: str) -> list[str]:
    return re.split(r"\s{2,}", row.strip())


# --- 1. return list ------------------------------------------------------------------------------

def test_return_list_shows_open_returns_and_claims_as_a_table(won_deal):
    ret = _ask(won_deal, f"{KIT}:1")
    sn = shipped_serials(won_deal, LATHE)[0]
    claim = _claim(sn)
    lines = cli("return", "list").splitlines()
    assert lines[0].split() == ["NUMBER", "DEAL", "CUSTOMER", "STATUS", "WHAT"]
    customer = cases.case_summary(ret)["customer"]
    assert cells(lines[1]) == [ret, won_deal, customer, "requested", f"1 × {KIT}"]
    assert cells(lines[2]) == [claim, won_deal, customer, "open", f"{LATHE} {sn}"]


def test_return_list_json_gives_the_cases_without_building_a_table(won_deal):
    ret = _ask(won_deal, f"{KIT}:1")
    rows = json.loads(cli("return", "list", "--json"))
    assert [(r["number"], r["kind"], r["status"], r["lines"][0]["sku"]) for r in rows] == [
        (ret, "return", "requested", KIT)]


def test_return_list_of_a_deal_includes_its_done_cases(won_deal):
    refused = _ask(won_deal, f"{KIT}:1")
    drive_case(refused, {"return_authorize": {"by": "manager", "decision": "refuse", "note": "Too late."}})
    assert cli("return", "list").strip() == "nothing open"
    lines = cli("return", "list", "--deal", won_deal).splitlines()
    assert cells(lines[1])[::3] == [refused, "refused"] and cells(lines[1])[-1] == f"1 × {KIT}"


# --- 5. return show tells all of a return, from what deal show reads --------------------------------

def test_return_show_gives_the_managers_refusal_note(won_deal):
    number = _ask(won_deal, f"{KIT}:1")
    drive_case(number, {"return_authorize": {"by": "manager", "decision": "refuse", "note": "Past our 30 days."}})
    assert "  refused by manager: Past our 30 days." in cli("return", "show", number).splitlines()
    shown = json.loads(cli("return", "show", number, "--json"))
    assert (shown["decided_by"], shown["decision_note"]) == ("manager", "Past our 30 days.")


def test_return_show_gives_the_credit_notes_amount_fee_and_refund_as_deal_show_does(won_deal):
    sn = shipped_serials(won_deal, LATHE)[0]
    number = _ask(won_deal, f"{LATHE}:1:{sn}")
    drive_case(number, {"return_authorize": AUTHORIZE,
                        "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
                        "return_inspect": {"by": "qa", "notes": "As new.", "lines": [
                            {"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "restock"}]},
                        "return_credit": CREDIT})
    deal = json.loads(cli("deal", "show", won_deal, "--json"))["returns"][0]
    shown = json.loads(cli("return", "show", number, "--json"))
    assert shown["credit"] == deal["credit"] and shown["credit"]["refund_number"]
    credit = next(line for line in cli("deal", "show", won_deal).splitlines() if line.startswith("  credit note CN-"))
    text = cli("return", "show", number).splitlines()
    assert credit in text
    assert f"  outcome: {LATHE}: 1 restocked" in text


def test_return_show_says_what_shipped_back_when_and_how_with_its_delivery_note(won_deal):
    sn = shipped_serials(won_deal, LATHE)[1]
    claim = _claim(sn)
    drive_case(claim, {"claim_diagnose": {"by": "mark", "diagnosis": "Bearing worn.", "resolution": "return"},
                       "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
                       "return_inspect": {"by": "qa", "notes": "Bearing replaced.", "lines": [
                           {"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "repair"}]},
                       "return_ship_back": SHIP_BACK})
    shown = json.loads(cli("return", "show", "RMA-0001", "--json"))
    back = shown["shipped_back"]
    assert (back["carrier"], back["tracking_number"], back["delivery_note"], back["by"]) == (
        SHIP_BACK["carrier"], SHIP_BACK["tracking_number"], "RMA-0001-BACK", "delivery")
    assert json.loads(cli("deal", "show", won_deal, "--json"))["returns"][0]["shipped_back"] == back
    line = (f"  shipped back on {back['on']}: {SHIP_BACK['carrier']} {SHIP_BACK['tracking_number']} "
            f"(delivery note RMA-0001-BACK)")
    assert line in cli("return", "show", "RMA-0001").splitlines()
    assert line in cli("deal", "show", won_deal).splitlines()


# --- 10, 11. return start's refusals say what is true, in plain words --------------------------------

def start(deal: str, lines: str):
    return CliRunner().invoke(main, ["return", "start", deal, "--lines", lines, "--reason", "Broken.", "--here"])


def restocked(deal: str, sn: str) -> str:
    number = _ask(deal, f"{LATHE}:1:{sn}")
    drive_case(number, {"return_authorize": AUTHORIZE,
                        "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
                        "return_inspect": {"by": "qa", "notes": "As new.", "lines": [
                            {"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "restock"}]},
                        "return_credit": CREDIT})
    return number


def test_a_unit_that_came_back_under_an_earlier_return_is_refused_naming_that_return(won_deal):
    sn = shipped_serials(won_deal, LATHE)[0]
    number = restocked(won_deal, sn)
    fingerprint = _fingerprint()
    result = start(won_deal, f"{LATHE}:1:{sn}")
    assert result.exit_code == 2, result.output
    assert result.output.strip().endswith(f"lines[1].serials: {sn} already came back under {number} "
                                          f"(it is in stock)"), result.output
    assert _fingerprint() == fingerprint


def test_a_serial_given_twice_is_refused_as_given_twice(won_deal):
    sn = shipped_serials(won_deal, LATHE)[0]
    result = start(won_deal, f"{LATHE}:1:{sn}/{sn.lower()}")
    assert result.exit_code == 2, result.output
    assert result.output.strip().endswith(f"lines[1].serials: {sn.lower()} is given twice"), result.output


@pytest.mark.parametrize(("qty", "given", "said"), [(1, 2, "1 unit and 2 serial numbers given"),
                                                    (2, 1, "2 units and 1 serial number given")])
def test_units_and_serials_that_do_not_match_are_counted_in_good_english(won_deal, qty, given, said):
    sns = shipped_serials(won_deal, LATHE)[:given]
    result = start(won_deal, f"{LATHE}:{qty}:{'/'.join(sns)}")
    assert result.exit_code == 2, result.output
    assert f"lines[1].serials: {said}: name one per unit" in result.output


# --- 13. a form is named by its step, as people know it ---------------------------------------------

@pytest.mark.parametrize("step", sorted(KINDS))
def test_a_field_no_form_has_is_refused_naming_the_steps_form(step):
    with pytest.raises(ValidationError) as refused:
        INPUTS[step].check_fields({"colour": "red"})
    assert str(refused.value).startswith(f"colour: not a field of the {step} form (its fields: ")
    form = INPUTS[step].form("a description", {})  # the form one wait stores says it the same
    with pytest.raises(ValidationError, match=f"not a field of the {step} form "):
        form.check_fields({"colour": "red"})


# --- 15. money with its currency, a case's own amount, one serial number ------------------------------

def test_deal_show_says_a_credit_notes_refund_in_the_deals_currency(won_deal):
    restocked(won_deal, shipped_serials(won_deal, LATHE)[0])
    data = json.loads(cli("deal", "show", won_deal, "--json"))
    note, cur = data["credit_notes"][0], data["currency"]
    line = next(ln for ln in cli("deal", "show", won_deal).splitlines() if ln.startswith(f"credit note {note['number']}"))
    assert f"refunded {note['refunded']} {cur} ({note['refund_number']})" in line, line


def test_the_inbox_shows_a_returns_goods_value_and_no_amount_for_a_claim(won_deal):
    from models.deal import deal_by_number
    from services.db import session_scope

    number = _ask(won_deal, f"{KIT}:2")
    drive_case(number, {})  # its authorization waits
    drive_case(_claim(shipped_serials(won_deal, LATHE)[0]), {})  # its diagnosis waits
    with session_scope() as s:
        kit = deal_by_number(s, won_deal).order.line_for_sku(KIT, "sku")
        value = kit.net_for(2) + kit.tax_for(2)
    rows = {r["key"]: r for r in json.loads(cli("inbox", "--json"))}
    assert rows["rma-0001-authorize"]["amount"] == str(value)
    assert rows["wc-0001-diagnose"]["amount"] is None
    text = cli("inbox").splitlines()
    assert f"{value} USD" in next(ln for ln in text if "rma-0001-authorize" in ln)


def test_one_serial_number_is_said_in_the_singular_in_deal_show(won_deal):
    data = json.loads(cli("deal", "show", won_deal, "--json"))
    (one,) = data["shipments"][1]["serials"][LATHE]
    text = cli("deal", "show", won_deal).splitlines()
    assert f"  {LATHE} serial number: {one}" in text
    assert any(ln.startswith(f"  {LATHE} serial numbers: ") for ln in text)  # the first shipment's two


def test_one_serial_number_received_is_said_in_the_singular(db):
    received = CliRunner().invoke(main, ["stock", "receive", "VMC-850", "1", "--ref", "DN-1", "--serials", "VM-1"])
    assert received.exit_code == 0, received.output
    assert "VMC-850: 1 received (DN-1) with serial number VM-1; on hand" in received.output


# --- 12. a shipment answered without its serial numbers says which units are in stock ---------------

def test_a_shipment_answered_without_serial_numbers_lists_the_units_in_stock_to_name(new_deal):
    """`dealflow answer` takes what was typed, as for every other field (the form's prefill is the
    UI's starting point, not an answer): without lines it ships all that is left, and a serialized
    line then needs its serial numbers; the refusal says which units there are to name."""
    from dealflow.scenario import play_direct

    from .helpers import check_answer

    play_direct(new_deal, until="shipment-2")  # two lathes shipped, GLM-GL2000-0003 and -0004 in stock
    with pytest.raises(ValidationError) as refused:
        check_answer(new_deal, "shipment", {"by": "delivery", "carrier": "UPS", "tracking_number": "1Z999"})
    assert str(refused.value) == (
        "Line 1, serials: CNC-LATHE-2000 is serialized: give one serial number per unit, 1 unit and 0 serial numbers "
        "given (in stock, oldest first: GLM-GL2000-0003, GLM-GL2000-0004)")
