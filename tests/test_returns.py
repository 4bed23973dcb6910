"""Returns (RMA) after a sale: `dealflow return start`, a manager's authorization (or refusal), the
RMA mailed once, delivery's receipt, QA's inspection (restock exactly once, scrap, repair), and
finance's credit note (its own series, less the restocking fee, refunded or kept as credit).
Quantities never exceed what shipped less what other returns hold; bad input is one line with
nothing written."""

from __future__ import annotations

from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from application import cases, deals
from dealflow.cli import main
from dealflow.scenario import TEAM, play_direct
from models import Email
from models.catalog import StockLevel, StockMove
from models.credit_notes import CreditNote
from models.deal import deal_by_number
from models.products import product_by_sku
from models.returns import ReturnOrder
from services.db import session_scope

from .test_bad_input_cli import _fingerprint

LATHE, KIT = "CNC-LATHE-2000", "TOOL-KIT-PRO"


@pytest.fixture
def staff(db):
    from dealflow.login import save

    save(TEAM.login("manager"))
    return "manager"


def drive_case(number: str, answers: dict[str, dict], repeat: int = 1) -> list[dict]:
    """Drive a case's plan without Prefect, as its flow does: automatic steps, waits opened and
    answered (signed by their people) from ``answers`` per step, until it is done or at a step
    without an answer. With ``repeat``, each step is run that many times, as re-runs would."""
    done = []
    for _ in range(30):
        step = cases.next_step(number)
        if step["kind"] == "done":
            return done
        deal = step["deal"]
        if step["kind"] == "auto":
            done += [{"key": step["key"], "outcome": cases.run_automatic(step["name"], number, step["key"])}
                     for _ in range(repeat)][:1]
            continue
        for _ in range(repeat):
            deals.open_wait(deal, step["name"], step["key"], None)
        if step["name"] not in answers:
            return done
        answer = answers[step["name"]]
        answer = answer(step) if callable(answer) else answer
        result = deals.record_answer(deal, step["key"], TEAM.signed(deal, step["key"], answer))
        done.append({"key": step["key"], **result})
        if not result["accepted"]:
            return done
        for _ in range(repeat):
            deals.deliver_mail(deal)
    raise AssertionError("looping")


def start(deal: str, lines: str, reason: str = "One lathe arrived with a cracked guard.", *extra: str):
    return CliRunner().invoke(main, ["return", "start", deal, "--lines", lines, "--reason", reason, "--here",
                                     "--json", *extra])


def _ask(deal: str, lines: str, reason: str = "One lathe arrived with a cracked guard.") -> str:
    login = TEAM.login("manager")
    proof = login.prove(deal, "return", cases.return_payload("manager", lines, reason))
    return cases.ask_for_return(deal, lines, reason, "manager", proof)["number"]


AUTHORIZE = {"by": "manager", "decision": "authorize", "restocking_fee_pct": 10, "note": ""}
RECEIVE = {"by": "delivery", "note": "Crate intact."}
CREDIT = {"by": "finance", "settle": "refund", "method": "bank_transfer"}
SHIP_BACK = {"by": "delivery", "carrier": "DHL Freight", "tracking_number": "DHLF-7845999", "note": ""}


def received(*lines) -> dict:
    return {**RECEIVE, "lines": [{"sku": sku, "quantity": q, "serials": []} for sku, q in lines]}


def inspected(*rows) -> dict:
    return {"by": "qa", "notes": "Checked.", "lines": [{"sku": sku, "serial": "", "quantity": q, "outcome": o}
                                                      for sku, q, o in rows]}


def shipped_serials(deal: str, sku: str) -> list[str]:
    from models.serials import serials_shipped_to

    with session_scope() as s:
        return sorted(u.serial for u in serials_shipped_to(s, deal_by_number(s, deal)) if u.product.sku == sku)


def on_hand(sku: str) -> int:
    with session_scope() as s:
        return s.get(StockLevel, product_by_sku(s, sku).id).on_hand


def test_a_return_in_part_is_authorized_received_inspected_restocked_and_credited_once(won_deal, staff):
    sn = shipped_serials(won_deal, LATHE)[0]
    number = _ask(won_deal, f"{LATHE}:1:{sn}")
    assert number == "RMA-0001"
    before = on_hand(LATHE)
    steps = drive_case(number, {"return_authorize": AUTHORIZE,
                                "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
                                "return_inspect": {"by": "qa", "notes": "Guard replaced; as new.", "lines": [
                                    {"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "restock"}]},
                                "return_credit": CREDIT}, repeat=2)
    assert [s.get("reason") for s in steps] == [None] * 4
    assert [s["key"] for s in steps] == ["rma-0001-authorize", "rma-0001-receive", "rma-0001-inspect",
                                         "rma-0001-credit"]
    assert all(s.get("accepted", True) for s in steps), steps
    assert on_hand(LATHE) == before + 1
    with session_scope() as s:
        ret = s.scalars(select(ReturnOrder)).one()
        assert ret.status == "closed"
        note = s.scalars(select(CreditNote).where(CreditNote.return_id == ret.id)).one()
        line = ret.lines[0].order_line
        value = line.net_for(1) + line.tax_for(1)
        assert note.restocking_fee == (value * Decimal("0.10")).quantize(Decimal("0.01"))
        assert note.amount == value - note.restocking_fee
        assert note.settlement == "refund" and note.refunded == note.amount and note.refund_number == "RFD-0001"
        assert note.number == "CN-0001"
        moves = s.scalars(select(StockMove).where(StockMove.reason == "return")).all()
        assert [(m.quantity, m.reference) for m in moves] == [(1, "RMA-0001")]
        kinds = [m.kind for m in s.scalars(select(Email).where(Email.deal_id == ret.deal_id).order_by(Email.id))]
        from models.serials import serial_by_number

        unit = serial_by_number(s, sn)
        assert unit.status == "in_stock" and unit.customer_id is None
        assert [e.event for e in unit.events][-3:] == ["shipped", "return_received", "restocked"]
    assert kinds.count("rma") == 1 and kinds.count("credit_note") == 1


def test_quantities_never_exceed_what_shipped_less_earlier_returns(won_deal, staff):
    _ask(won_deal, f"{LATHE}:2")
    _ask(won_deal, f"{LATHE}:1")
    fingerprint = _fingerprint()
    result = start(won_deal, f"{LATHE}:1")
    assert result.exit_code == 2, result.output
    assert "lines[1].quantity: at most 0 of CNC-LATHE-2000 can come back" in result.output
    assert "3 shipped, 3 on earlier returns" in result.output
    assert _fingerprint() == fingerprint


def test_a_refused_return_frees_its_quantity_and_tells_the_customer_once(won_deal, staff):
    number = _ask(won_deal, f"{LATHE}:2")
    steps = drive_case(number, {"return_authorize": {"by": "manager", "decision": "refuse",
                                                     "note": "Past our 30-day return window <b>sorry</b>."}})
    assert steps[0]["accepted"]
    assert cases.case_summary(number)["status"] == "refused"
    with session_scope() as s:
        mails = s.scalars(select(Email).where(Email.kind == "return_refused")).all()
        assert len(mails) == 1
    assert _ask(won_deal, f"{LATHE}:2") == "RMA-0002"  # the refused one holds nothing


def test_a_refusal_without_a_reason_is_refused_and_the_return_waits_again(won_deal, staff):
    number = _ask(won_deal, f"{KIT}:1")
    steps = drive_case(number, {"return_authorize": {"by": "manager", "decision": "refuse", "note": ""}})
    assert not steps[0]["accepted"] and steps[0]["reason"].startswith("note:")
    assert cases.next_step(number)["key"] == "rma-0001-authorize-retry-1"


def test_every_unit_received_needs_one_outcome(won_deal, staff):
    number = _ask(won_deal, f"{KIT}:2")
    steps = drive_case(number, {"return_authorize": AUTHORIZE, "return_receive": received((KIT, 2)),
                                "return_inspect": inspected((KIT, 1, "restock"))})
    assert steps[-1]["accepted"] is False
    assert "TOOL-KIT-PRO: 2 received, 1 inspected" in steps[-1]["reason"]


def test_a_refund_over_what_was_paid_is_refused_and_credit_on_account_is_kept(new_deal, staff):
    play_direct(new_deal, until="payment-1")  # invoiced, nothing paid yet
    number = _ask(new_deal, f"{KIT}:1")
    steps = drive_case(number, {"return_authorize": AUTHORIZE, "return_receive": received((KIT, 1)),
                                "return_inspect": inspected((KIT, 1, "scrap")), "return_credit": CREDIT})
    assert steps[-1]["accepted"] is False
    assert "cannot be refunded: keep it as credit" in steps[-1]["reason"]
    steps = drive_case(number, {"return_credit": {**CREDIT, "settle": "credit"}})
    assert steps[-1]["accepted"] and cases.case_summary(number)["status"] == "closed"
    with session_scope() as s:
        note = s.scalars(select(CreditNote)).one()
        assert note.settlement == "credit" and note.kept_as_credit == note.amount and note.refund_number is None
        assert s.scalar(select(func.count()).select_from(StockMove).where(StockMove.reason == "return")) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=30), st.sampled_from([f"{LATHE}:0", f"{LATHE}:4", f"{LATHE}:x", "NOPE:1",
                                                           f"{LATHE}:1:NOSUCH", f"{KIT}:1:SN-1", f"{LATHE}:1,{LATHE}:1",
                                                           ":1", f"{LATHE}"])))
def test_bad_lines_are_one_line_and_nothing_is_written(won_deal, staff, text):
    fingerprint = _fingerprint()
    result = start(deals.list_deals()[0]["deal"], text)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "lines" in result.output
    assert _fingerprint() == fingerprint


def test_nothing_shipped_nothing_comes_back(new_deal, staff):
    result = start(new_deal, f"{LATHE}:1")
    assert result.exit_code == 2
    assert "nothing has shipped on it" in result.output


# --- warranty claims -------------------------------------------------------------------------------

def claim(sn: str, issue: str = "Spindle overheats after an hour."):
    return CliRunner().invoke(main, ["warranty", "claim", sn, "--issue", issue, "--here", "--json"])


def _claim(sn: str, issue: str = "Spindle overheats after an hour.") -> str:
    proof = TEAM.login("manager").prove(sn, "claim", cases.claim_payload("manager", issue))
    return cases.claim_warranty(sn, issue, "manager", proof)["number"]


def test_a_claim_returned_for_repair_goes_through_its_return_without_a_credit_note_then_closes(won_deal, staff):
    sn = shipped_serials(won_deal, LATHE)[0]
    number = _claim(sn)
    assert number == "WC-0001"
    before = on_hand(LATHE)
    steps = drive_case(number, {
        "claim_diagnose": {"by": "mark", "diagnosis": "Spindle bearing worn.", "resolution": "return"},
        "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
        "return_inspect": {"by": "qa", "notes": "Bearing replaced.", "lines": [
            {"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "repair"}]},
        "return_ship_back": SHIP_BACK,
        "claim_close": {"by": "mark", "note": "Bearing replaced, unit shipped back."}})
    assert [s["key"] for s in steps] == ["wc-0001-diagnose", "rma-0001-receive", "rma-0001-inspect",
                                         "rma-0001-ship-back", "close-rma-0001", "wc-0001-close"], steps
    assert all(s.get("accepted", True) for s in steps), steps
    assert on_hand(LATHE) == before  # a unit repaired and shipped back is not stock
    out = cases.case_summary(number)
    assert out["status"] == "closed" and out["return"] == "RMA-0001"
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CreditNote)) == 0
        kinds = [m.kind for m in s.scalars(select(Email).order_by(Email.id))]
        from models.serials import serial_by_number

        events = [e.event for e in serial_by_number(s, sn).events]
    assert kinds.count("rma") == 1
    assert events[-5:] == ["claim_opened", "return_received", "in_repair", "shipped_back", "claim_closed"]


def test_a_claim_typed_in_lower_case_is_proven_by_the_session_that_signed_it(won_deal, staff):
    sn = shipped_serials(won_deal, LATHE)[1]
    assert _claim(sn.lower(), "Coolant pump noisy.") == "WC-0001"  # signed as typed, as the CLI signs it
    assert cases.case_summary("WC-0001")["serial"] == sn


def test_a_claim_is_closed_only_once_its_return_is_inspected(won_deal, staff):
    sn = shipped_serials(won_deal, LATHE)[0]
    number = _claim(sn)
    drive_case(number, {"claim_diagnose": {"by": "mark", "diagnosis": "Worn.", "resolution": "repair_on_site"}})
    steps = drive_case(number, {"claim_close": {"by": "mark", "note": "Replaced on site."}})
    assert steps[-1]["accepted"] and cases.case_summary(number)["status"] == "closed"


def test_a_claim_after_the_warranty_end_is_refused_in_one_line_with_nothing_written(won_deal, staff):
    from datetime import date

    from models.serials import serial_by_number

    sn = shipped_serials(won_deal, LATHE)[0]
    with session_scope() as s:
        serial_by_number(s, sn).warranty_end = date(2020, 1, 31)
        s.commit()
    fingerprint = _fingerprint()
    result = claim(sn)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "its warranty ended on 2020-01-31" in result.output
    assert _fingerprint() == fingerprint


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sn=st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(["NOPE-1", "GLM-GL2000-9999", ":", "x:y"])))
def test_a_claim_on_an_unknown_serial_is_one_line_and_nothing_is_written(won_deal, staff, sn):
    fingerprint = _fingerprint()
    result = claim(sn)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert _fingerprint() == fingerprint


# --- the forms of a case's waits ----------------------------------------------------------------------

CASE_FORMS = {
    "return_authorize": {},
    "return_receive": {"return_authorize": AUTHORIZE},
    "return_inspect": {"return_authorize": AUTHORIZE, "return_receive": received((KIT, 1))},
    "return_credit": {"return_authorize": AUTHORIZE, "return_receive": received((KIT, 1)),
                      "return_inspect": inspected((KIT, 1, "restock"))},
    "return_ship_back": {"return_authorize": AUTHORIZE, "return_receive": received((KIT, 1)),
                         "return_inspect": inspected((KIT, 1, "repair"))},
    "claim_diagnose": {},
    "claim_close": {"claim_diagnose": {"by": "mark", "diagnosis": "Worn.", "resolution": "repair_on_site"}},
}


@pytest.mark.parametrize("step", list(CASE_FORMS))
def test_each_case_form_has_fields_of_the_right_kind_and_starts_with_what_is_known(won_deal, staff, step):
    from prefect.input.run_input import create_v2_schema

    from flows.inputs import INPUTS
    from models import process

    from .test_waits import _fields

    number = _claim(shipped_serials(won_deal, LATHE)[0]) if step.startswith("claim") else _ask(won_deal, f"{KIT}:1")
    drive_case(number, CASE_FORMS[step])
    at = cases.next_step(number)
    assert at["name"] == step
    with session_scope() as s:
        deal = deal_by_number(s, won_deal)
        description = process.describe_wait(s, deal, step, at["key"])
        start = process.form_start(s, deal, step, at["key"])
    assert number in description
    form = INPUTS[step].form(description, start["prefill"], start["choices"])
    schema = create_v2_schema(form.__name__, model_base=form)
    for name, prop in _fields(schema):
        assert "anyOf" not in prop and "oneOf" not in prop, f"{step}: {name} shows a type chooser: {prop}"
        assert prop.get("type") in ("string", "number", "integer", "boolean", "array", "object"), (step, name, prop)
        assert prop.get("title"), f"{step}: {name} has no title"
    assert "by" not in schema["properties"]
    for name in start["prefill"]:
        assert schema["properties"][name].get("default") not in (None, [], ""), (step, name)
