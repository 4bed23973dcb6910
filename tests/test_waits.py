"""Every kind of wait is declared once (``models.waits``) and complete: who answers, the rule,
the description, the choices, the reminder, its place in the plan and its form in the Prefect UI. And each form,
built from the deal at its wait as the flow builds it, has fields of the right kind: no type
chooser, no JSON editor, choices as selects, what the form starts with of the form's types."""

from __future__ import annotations

import pytest
from prefect._internal.pydantic.v2_schema import create_v2_schema
from sqlalchemy import select

from dealflow.scenario import DISCOUNT_SCRIPT, LEAD, SCRIPT, play_direct
from flows.inputs import INPUTS
from models import process
from models.deal import deal_by_number
from models.identity import PROOF_FIELDS
from models.plan import PLAN
from models.staff import ROLES
from models.waits import KINDS, RULES, steps_table
from services.db import session_scope


def test_every_wait_is_declared_once_with_all_its_parts():
    assert set(KINDS) == set(INPUTS), "a wait without a form, or a form without a wait"
    from models.cases import CLAIM_PLAN, RETURN_PLAN

    from .test_returns import CASE_FORMS

    planned = [row.name for row in (*PLAN, *RETURN_PLAN, *CLAIM_PLAN)]
    for name, kind in KINDS.items():
        assert kind.name == name and planned.count(name) == 1, f"{name}: not once in the plan"
        assert kind.roles and set(kind.roles) <= set(ROLES), name
        assert kind.turn in (*ROLES, "customer") and kind.title, name
        for part in (kind.at, kind.key, kind.answer, kind.describe, kind.prefill, kind.choices, kind.assignee):
            assert callable(part), (name, part)
        assert kind.reminder.name in RULES, (name, kind.reminder)
        assert INPUTS[name].__doc__, f"{name}: the form says what it is for"
    assert {key.split("-")[0] for key in KEYS} | set(CASE_FORMS) == set(KINDS), \
        "every kind of wait has a row in KEYS (a case's: in test_returns.CASE_FORMS)"


def test_the_readme_lists_the_steps_as_they_are_declared():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    listed = readme.split("<!-- wait kinds: begin -->\n", 1)[1].split("\n<!-- wait kinds: end -->", 1)[0]
    assert listed == steps_table(), "README's table of steps: paste models.waits.steps_table()"


def test_the_answer_command_names_every_step():
    from dealflow.cli.waits import answer

    said = " ".join(answer.help.split()).split("STEP is the wait's step (", 1)[1].split(")", 1)[0]
    assert said.split(", ") == list(KINDS), "dealflow answer's help: list the steps of models.waits.KINDS"


def _form_at(deal_number: str, key: str) -> tuple[dict, dict]:
    """The form of the wait ``key`` as the flow stores it (its JSON schema), and what it starts with."""
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        step = process.next_step(s, deal)
        assert step.key == key
        description = process.describe_wait(s, deal, step.name, key)
        start = process.form_start(s, deal, step.name, key)
    form = INPUTS[step.name].form(description, start["prefill"], start["choices"])
    return create_v2_schema(form.__name__, model_base=form), start


def _fields(schema: dict, path: str = "") -> list[tuple[str, dict]]:
    out = []
    for name, prop in schema.get("properties", {}).items():
        out.append((f"{path}{name}", prop))
        if prop.get("type") == "array" and "properties" in prop.get("items", {}):
            out += _fields(prop["items"], f"{path}{name}[].")
        if prop.get("type") == "object":
            out += _fields(prop, f"{path}{name}.")
    return out


def _over_the_credit_limit() -> None:
    """The scenario's customer with a credit limit below its order: the acceptance holds it."""
    from models.customers import edit_customer, find_customer

    with session_scope() as s:
        edit_customer(s, find_customer(s, LEAD["email"]), {"credit_limit": "100000"})
        s.commit()


# one row per kind of wait (a new kind adds its row here), and the script that reaches it
KEYS = ["qualify", "handoff", "estimate-rev-1", "discount-rev-1", "decision-rev-1", "estimate-rev-2",
        "credit-rev-2", "qa-attempt-1", "deposit-1", "shipment-1", "payment-1"]
SCRIPTS = {"discount-rev-1": DISCOUNT_SCRIPT}
BEFORE = {"credit-rev-2": _over_the_credit_limit}


@pytest.mark.parametrize("key", KEYS)
def test_each_form_has_fields_of_the_right_kind(new_deal, key):
    BEFORE.get(key, lambda: None)()
    play_direct(new_deal, SCRIPTS.get(key), until=key)
    schema, start = _form_at(new_deal, key)
    for name, prop in _fields(schema):
        assert "anyOf" not in prop and "oneOf" not in prop, f"{key}: {name} shows a type chooser: {prop}"
        assert prop.get("type") in ("string", "number", "integer", "boolean", "array", "object"), (key, name, prop)
        assert prop.get("title"), f"{key}: {name} has no title"
        if prop["type"] == "object":  # never a JSON editor: an object's fields are named
            assert prop.get("properties"), f"{key}: {name} is a free-form object (a JSON editor)"
    # who answers is the gateway's to say (the signed-in person), never the form's: no handle,
    # no code, no proof field to type
    assert not set(schema["properties"]) & {"by", *PROOF_FIELDS}, f"{key}: a handle or proof field in the form"
    assert "by" not in schema.get("required", [])
    for name in start["prefill"]:  # what it starts with is in the form, not dropped
        assert schema["properties"][name].get("default") not in (None, [], ""), (key, name)


def test_the_estimate_picks_products_from_the_catalogue_with_price_and_stock(new_deal):
    play_direct(new_deal, until="estimate-rev-1")
    schema, _ = _form_at(new_deal, "estimate-rev-1")
    line = schema["properties"]["lines"]["items"]["properties"]
    assert "CNC-LATHE-2000 — CNC lathe GL-2000, 2 m bed — 48,500.00 USD — 4 available" in line["sku"]["enum"]
    assert len(line["sku"]["enum"]) == 6
    # the form refuses what the rules would, before it is sent: a quantity below 1, a discount outside 0-100
    assert (line["quantity"]["type"], line["quantity"]["minimum"]) == ("integer", 1) and line["discount_pct"] == {
        "type": "number", "title": "Discount %", "default": 0, "description": "Discount on this line, 0 to 100 %.",
        "minimum": 0, "maximum": 100}


def test_a_new_revision_starts_with_the_previous_lines_as_the_list_shows_them(new_deal):
    play_direct(new_deal, until="estimate-rev-2", script=SCRIPT[:4])
    schema, start = _form_at(new_deal, "estimate-rev-2")
    lines = schema["properties"]["lines"]["default"]
    assert [ln["sku"].split(" — ")[0] for ln in lines] == ["CNC-LATHE-2000", "TOOL-KIT-PRO", "CHUCK-3J-250"]
    assert all(ln["sku"] in schema["properties"]["lines"]["items"]["properties"]["sku"]["enum"] for ln in lines)
    assert lines[0]["quantity"] == 2 and lines[0]["discount_pct"] == 5  # a number, as the input sends it


def test_qa_signs_off_each_check_of_the_machines_on_the_order(new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    schema, _ = _form_at(new_deal, "qa-attempt-1")
    checks = schema["properties"]["checklist"]["properties"]
    assert list(checks) == ["spindle_runout", "safety_guards", "emergency_stop", "hydraulics", "control_software"]
    assert checks["spindle_runout"] == {"type": "boolean", "title": "Spindle runout", "default": False}
    assert "passed" not in schema["properties"]  # it follows from the checks


def test_shipment_and_payment_forms_start_with_what_is_left(new_deal):
    play_direct(new_deal, until="shipment-1")
    schema, _ = _form_at(new_deal, "shipment-1")
    assert schema["properties"]["lines"]["default"] == [  # the lathe with its oldest units in stock
        {"sku": "CNC-LATHE-2000", "quantity": 3, "serials": ["GLM-GL2000-0001", "GLM-GL2000-0002", "GLM-GL2000-0003"]},
        {"sku": "TOOL-KIT-PRO", "quantity": 3, "serials": []}, {"sku": "CHUCK-3J-250", "quantity": 3, "serials": []},
        {"sku": "COOLANT-20L", "quantity": 10, "serials": []}]
    assert schema["properties"]["lines"]["items"]["properties"]["sku"]["enum"] == [
        "CNC-LATHE-2000", "TOOL-KIT-PRO", "CHUCK-3J-250", "COOLANT-20L"]
    play_direct(new_deal, until="payment-1")
    schema, _ = _form_at(new_deal, "payment-1")
    assert schema["properties"]["amount"]["type"] == "number"
    assert schema["properties"]["amount"]["default"] == 121928.58  # what is due (less the deposit), as a number
    assert schema["required"] == ["amount"]  # pre-filled, still required (never shown "Optional")
    assert schema["properties"]["received_on"] == {
        "type": "string", "format": "date", "title": "Date received",
        "description": "The day the money arrived (empty: today)."}


def test_qa_from_the_command_line_passed_alone_says_every_check_passed_and_is_recorded_so(new_deal):
    from models import SalesOrder
    from tasks.deal_steps import open_wait

    from .helpers import record_answer

    play_direct(new_deal, until="qa-attempt-1")
    open_wait(new_deal, "qa", "qa-attempt-1", None)
    result = record_answer.fn(new_deal, "qa-attempt-1", {"by": "qa", "passed": True, "notes": "all good"})
    assert result["accepted"], result
    with session_scope() as s:
        order = s.scalars(select(SalesOrder)).one()
        assert order.status == "released"
        assert order.inspections[-1].checklist == {item: True for item in order.qa_checklist}


def test_the_hand_off_picks_an_engineer_and_the_decision_its_choices(new_deal):
    play_direct(new_deal, until="handoff")
    schema, _ = _form_at(new_deal, "handoff")
    assert schema["properties"]["engineer"]["enum"] == ["mark"]  # who holds the role and is enabled
    play_direct(new_deal, until="decision-rev-1")
    schema, _ = _form_at(new_deal, "decision-rev-1")
    # "portal" stays a choice: the customer's own answer arrives through this form too (staff
    # choosing it are refused with the reason: see test_portal)
    assert schema["properties"]["channel"]["enum"] == ["email", "phone", "signed document", "meeting", "portal"]
    assert schema["properties"]["decision"]["enum"] == ["approve", "ask for changes", "decline"]  # in words


def test_an_answer_resumes_only_the_wait_it_was_given_for_in_this_process():
    """``note_resumed`` wakes a run paused here only at the key it was answered at: when the
    answer's own note comes late, the run may already have noticed the resume, gone on and paused
    at its next wait, which must not take that answer as its own."""
    from flows import waits

    run_id = "9b0e3d1c-0000-4000-8000-000000000001"
    here = waits._PausedHere("handoff")
    with waits._lock:
        waits._paused[run_id] = here
    try:
        waits.note_resumed(run_id, "qualify", {"by": "sofia", "qualified": True})  # the wait before
        assert not here.resumed.is_set() and here.answer is None
        waits.note_resumed(run_id, "handoff", {"by": "sofia", "engineer": "mark"})
        assert here.resumed.is_set() and here.answer == {"by": "sofia", "engineer": "mark"}
    finally:
        with waits._lock:
            del waits._paused[run_id]


def test_each_form_says_what_to_decide_in_sentences_with_currencies_and_no_raw_values(new_deal):
    """The words people read at each wait, exactly: no raw codes (request_changes, source other),
    no 'Notes: -.', every amount with its currency, sentences that end before the next begins."""
    from models import Wait
    from models.markdown import plain

    play_direct(new_deal)
    with session_scope() as s:
        said = {w.key: plain(w.description).split(": ", 1)[1] for w in s.scalars(select(Wait).order_by(Wait.id))}
    assert said["qualify"] == (
        "qualify the lead from Priya Raman (priya.raman@riverside-metal.example), who came from a trade show. What "
        "we know: Met at the machine tool fair; opening a second plant and needs turning capacity. Is it a real "
        "opportunity? Switch *Qualified?* on or off, and give the budget and the timeline if you know them.")
    assert said["handoff"] == (
        "the opportunity is at qualification (20% likely); 0 of 0 follow-ups done. Hand it to the sales engineer "
        "who prepares the estimate when it is ready for one, with a note of what they should know.")
    assert said["payment-2"] == ("record a payment received for INV-0001 (due " + said["payment-2"].split("(due ")[1]
                                 .split(")")[0] + "): total 121,928.58 USD, paid so far 48,771.43 USD, **still due "
                                 "73,157.15 USD**.")  # the order less its 30 % deposit
    assert said["deposit-1"] == ("record the deposit received for SO-0001 (deposit invoice DEP-0001, due "
                                 + said["deposit-1"].split("(deposit invoice DEP-0001, due ")[1].split(")")[0]
                                 + "): 52,255.10 USD of 174,183.68 USD, 30 % deposit before shipping. Total 52,255.10 "
                                 "USD, paid so far 0.00 USD, **still due 52,255.10 USD**. The order waits for it.")
    assert said["qa-attempt-2"].endswith(
        "any off sends it to rework (say what failed in the notes). Attempt 1 failed: Lathe #2: hydraulic pressure "
        "drops under load; replace the seal.")
    assert said["shipment-2"].endswith("(the form starts with all that is left to ship; a line at 0 is not in this "
                                       "shipment). CNC-LATHE-2000: 1 to ship, 2 in stock; TOOL-KIT-PRO: 1 to ship, "
                                       "23 in stock; CHUCK-3J-250: 1 to ship, 8 in stock.\n\n**Serial numbers**, one per "
                                       "unit shipped, for CNC-LATHE-2000: the form starts with the oldest units in "
                                       "stock; type any left empty from the unit's plate, and for a lower quantity "
                                       "remove as many.")
    assert "Net 147,659.00 USD, tax 26,524.68 USD, **total 174,183.68 USD**." in said["decision-rev-2"]
    assert "| Product | Qty | Unit price (USD) | Discount | Net (USD) |" in said["decision-rev-2"]
    assert "Budget 150,000.00 USD, timeline Q1 2027." in said["estimate-rev-1"]
    everything = " ".join(said.values())
    for raw in ("request_changes", "request\\_changes", "bank_transfer", "signed_document", "source other",
                "Notes: -", "lines[", "closed_won"):
        assert raw not in everything, raw


def test_the_credit_decision_offers_its_choices_in_words_and_says_why_the_order_is_held(new_deal):
    _over_the_credit_limit()
    play_direct(new_deal, until="credit-rev-2")
    schema, start = _form_at(new_deal, "credit-rev-2")
    assert schema["properties"]["decision"]["enum"] == ["release", "ask for a deposit", "reject"]
    assert schema["properties"]["deposit_before"]["enum"] == ["before shipping", "before QA and release"]
    assert schema["properties"]["decision"]["default"] == "release" and "reason" in schema["required"]
    assert start["prefill"] == {"decision": "release", "deposit_before": "shipping"}
    from models.markdown import plain

    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        said = plain(process.describe_wait(s, deal, "credit", "credit-rev-2")).split(": ", 1)[1]
    assert said.startswith(
        "decide on the order of Riverside Metalworks Ltd (EST-0001-R2, **174,183.68 USD**), on credit hold: "
        "exposure 0.00 + this order 174183.68 = 174183.68 USD, over the credit limit of 100000.00.\n\n"
        "Credit limit 100,000.00 USD; exposure now 0.00 USD (unpaid invoices 0.00 USD, confirmed and not "
        "invoiced 0.00 USD)."), said
