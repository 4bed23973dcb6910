"""Bad input gets one clear message naming the field and the rule, and nothing is written:
checked on the path a person uses (``dealflow answer``) and again on the flow's own path."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dealflow.scenario import play_direct
from models import DomainError, Product, StockLevel
from models.markdown import plain
from services.db import session_scope
from tasks.deal_steps import open_wait, plan_next_step

from .helpers import audit_actions, check_answer, counts, record_answer, wait_row


def _refused_everywhere(deal: str, step: str, key: str, answer: dict, message: str) -> None:
    """The CLI's check says no with ``message``; the flow's check (after a resume from the UI,
    which skips the CLI) refuses too, writes only the refusal, and waits again."""
    before = counts()
    with pytest.raises(DomainError) as err:
        check_answer(deal, step, answer)
    assert str(err.value) == message
    assert counts() == before

    result = record_answer.fn(deal, key, answer)
    assert result == {"accepted": False, "reason": message}
    assert counts() == before
    assert wait_row(deal, key)["status"] == "refused"
    retry = plan_next_step(deal)
    assert retry["key"] == f"{key}-retry-1"
    assert f"{step}.refused" in audit_actions()


@pytest.mark.parametrize("line, message", [
    ({"sku": "NOPE-1", "quantity": 1}, "Line 1, product: no product 'NOPE-1'"),
    ({"sku": "CNC-LATHE-200", "quantity": 1}, "Line 1, product: no product 'CNC-LATHE-200'; did you mean CNC-LATHE-2000?"),
    ([{"sku": "vmc-850", "quantity": 1}, {"sku": "VMC-850", "quantity": 1}],
     "Line 2, product: VMC-850 appears twice; put the quantity on one line"),
    ({"sku": "VMC-850", "quantity": 0}, "Line 1, quantity: must be greater than zero"),
    ({"sku": "VMC-850", "quantity": -2}, "Line 1, quantity: must be greater than zero"),
    ({"sku": "VMC-850", "quantity": 1, "discount_pct": "100.5"}, "Line 1, discount %: must be between 0 and 100"),
    ({"sku": "VMC-850", "quantity": 1, "discount_pct": "-1"}, "Line 1, discount %: must be between 0 and 100"),
    ({"sku": "VMC-850", "quantity": "two"}, "Line 1, quantity: must be a whole number"),
])
def test_an_estimate_line_must_name_a_product_a_quantity_and_a_fair_discount(new_deal, line, message):
    play_direct(new_deal, until="estimate-rev-1")
    answer = {"by": "mark", "lines": line if isinstance(line, list) else [line]}
    if "whole number" in message:  # a type error is caught by the form, before the rules
        with pytest.raises(DomainError, match=r"^Line 1, quantity: must be a whole number$"):
            check_answer(new_deal, "estimate", answer)
        return
    _refused_everywhere(new_deal, "estimate", "estimate-rev-1", answer, message)


def test_shipping_more_than_ordered_is_refused(new_deal):
    play_direct(new_deal, until="shipment-1")
    answer = {"by": "delivery", "carrier": "DHL", "tracking_number": "T1",
              "lines": [{"sku": "CNC-LATHE-2000", "quantity": 4}]}
    _refused_everywhere(new_deal, "shipment", "shipment-1", answer,
                        "Line 1, quantity: CNC-LATHE-2000: 4 is more than the 3 left to ship (3 ordered, 0 shipped)")


def test_shipping_more_than_in_stock_is_refused_and_uses_no_number(new_deal):
    play_direct(new_deal, until="shipment-1")
    with session_scope() as s:
        lathe = s.scalars(select(Product).where(Product.sku == "CNC-LATHE-2000")).one()
        s.get(StockLevel, lathe.id).on_hand = 2
        s.commit()
    answer = {"by": "delivery", "carrier": "DHL", "tracking_number": "T1",
              "lines": [{"sku": "TOOL-KIT-PRO", "quantity": 1}, {"sku": "CNC-LATHE-2000", "quantity": 3}]}
    _refused_everywhere(new_deal, "shipment", "shipment-1", answer,
                        "Line 2, quantity: CNC-LATHE-2000: 3 requested but only 2 in stock")
    step = plan_next_step(new_deal)
    open_wait(new_deal, step["name"], step["key"], None)
    ok = record_answer.fn(new_deal, step["key"], {"by": "delivery", "carrier": "DHL", "tracking_number": "T2",
                                                  "lines": [{"sku": "CNC-LATHE-2000", "quantity": 2,
                                                             "serials": ["GLM-GL2000-0001", "GLM-GL2000-0002"]}]})
    assert ok["accepted"] and ok["outcome"].startswith("SHP-0001: 2 × CNC-LATHE-2000")  # gap-free


def test_paying_more_than_is_due_is_refused(new_deal):
    play_direct(new_deal, until="payment-1")
    _refused_everywhere(new_deal, "payment", "payment-1", {"by": "finance", "amount": "121928.59"},
                        "amount: 121928.59 is more than the 121928.58 still due")  # the order less its deposit


def test_a_person_without_the_steps_role_is_refused(new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    _refused_everywhere(new_deal, "qa", "qa-attempt-1", {"by": "sofia", "passed": True},
                        "by: sofia (sales_rep) may not answer 'qa'; it needs the role qa")
    assert "by: sofia (sales_rep) may not answer" in _open_description(new_deal)


def test_an_unknown_person_is_refused(new_deal):
    play_direct(new_deal, until="qualify")
    _refused_everywhere(new_deal, "qualify", "qualify", {"by": "ghost", "qualified": True},
                        "by: no staff member with handle 'ghost'")


def test_answering_a_wait_that_is_not_open_is_refused(new_deal):
    play_direct(new_deal, until="qualify")
    before = counts()
    with pytest.raises(DomainError, match=r"^step: DEAL-0001 is not waiting for 'payment' \(it waits for: qualify\)$"):
        check_answer(new_deal, "payment", {"by": "finance", "amount": "10"})
    assert counts() == before


def test_a_deal_whose_flow_has_not_reached_a_wait_takes_no_answer(new_deal):
    with pytest.raises(DomainError, match=r"^step: DEAL-0001 is not waiting for 'qualify' \(it waits for: nothing\)$"):
        check_answer(new_deal, "qualify", {"by": "sofia", "qualified": True})


def test_a_qa_pass_with_a_failed_check_is_refused(new_deal):
    from dealflow.scenario import ALL_CHECKS_PASS

    play_direct(new_deal, until="qa-attempt-1")
    _refused_everywhere(new_deal, "qa", "qa-attempt-1",
                        {"by": "qa", "passed": True, "checklist": {**ALL_CHECKS_PASS, "hydraulics": False}},
                        "checklist: cannot pass with failed checks: hydraulics")


def test_a_qa_sign_off_answers_each_check_of_the_order_and_no_other(new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    # a check left off is not passed: a sign-off switches on every check of the order's machines
    _refused_everywhere(new_deal, "qa", "qa-attempt-1",
                        {"by": "qa", "passed": True, "checklist": {"hydraulics": True}},
                        "checklist: cannot pass with failed checks: spindle_runout, safety_guards, "
                        "emergency_stop, control_software")


def test_a_qa_sign_off_cannot_tick_a_check_the_order_does_not_have(new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    _refused_everywhere(new_deal, "qa", "qa-attempt-1",
                        {"by": "qa", "checklist": {"axis_backlash": True}},
                        "checklist.axis_backlash: is not a check of order SO-0001 (its checks: spindle_runout, "
                        "safety_guards, emergency_stop, hydraulics, control_software)")


def _open_description(deal: str) -> str:
    step = plan_next_step(deal)
    return plain(open_wait(deal, step["name"], step["key"], None)["description"])  # as the form shows it


def test_names_and_references_are_one_line(db):
    from dealflow.scenario import LEAD
    from models.pipeline import add_lead
    with session_scope() as s, pytest.raises(DomainError) as err:
        add_lead(s, **(LEAD | {"company": "Evil Ltd\r\nBcc: x@evil.test"}))
    assert str(err.value) == "company: must be one line, without line breaks or control characters"


def test_a_carrier_with_a_line_break_is_refused(new_deal):
    play_direct(new_deal, until="shipment-1")
    _refused_everywhere(new_deal, "shipment", "shipment-1",
                        {"by": "delivery", "carrier": "DHL\nBcc: x@evil.test", "tracking_number": "T1"},
                        "carrier: must be one line, without line breaks or control characters")


@pytest.mark.parametrize("answer, message", [
    ({"by": "sofia", "qualified": True, "budget": "1e20"}, "budget: must be less than 1,000,000,000,000"),
    ({"by": "sofia", "qualified": True, "budget": "100.005"}, "budget: must have at most 2 decimals, got 100.005"),
    ({"by": "sofia", "qualified": True, "timeline": "x" * 121}, "timeline: must be at most 120 characters, got 121"),
])
def test_amounts_and_texts_must_fit_what_is_stored(new_deal, answer, message):
    play_direct(new_deal, until="qualify")
    _refused_everywhere(new_deal, "qualify", "qualify", answer, message)


def test_huge_quantities_and_sub_cent_discounts_are_refused(new_deal):
    play_direct(new_deal, until="estimate-rev-1")
    _refused_everywhere(new_deal, "estimate", "estimate-rev-1",
                        {"by": "mark", "lines": [{"sku": "VMC-850", "quantity": 10**20}]},
                        "Line 1, quantity: must be at most 100,000")
    _open_description(new_deal)  # the flow opens the wait again
    with pytest.raises(DomainError, match=r"^Line 1, discount %: must have at most 2 decimals, got 7.555$"):
        check_answer(new_deal, "estimate", {"by": "mark", "lines": [
            {"sku": "VMC-850", "quantity": 1, "discount_pct": "7.555"}]})


def test_a_refusal_with_a_very_long_name_is_still_recorded(new_deal):
    play_direct(new_deal, until="qualify")
    result = record_answer.fn(new_deal, "qualify", {"by": "x" * 300, "qualified": True})
    assert result["accepted"] is False and result["reason"] == "by: must be at most 40 characters, got 300"
    assert wait_row(new_deal, "qualify")["by"] == "x" * 40


def test_a_payment_written_with_three_zero_decimals_is_a_payment_in_cents(new_deal):
    play_direct(new_deal, until="payment-1")
    result = record_answer.fn(new_deal, "payment-1", {"by": "finance", "amount": "10.000"})
    assert result["accepted"] and result["outcome"] == "PAY-0002: 10.00 received, 121918.58 due"  # PAY-0001: the deposit


def test_a_refusal_note_stays_with_its_own_wait(new_deal):
    play_direct(new_deal, until="payment-1")
    record_answer.fn(new_deal, "payment-1", {"by": "sofia", "amount": "10"})
    assert "was refused" in _open_description(new_deal)
    assert record_answer.fn(new_deal, "payment-1-retry-1", {"by": "finance", "amount": "10"})["accepted"]
    assert plan_next_step(new_deal)["key"] == "payment-2"
    assert "refused" not in _open_description(new_deal)


def test_only_the_flow_closes_an_opportunity(new_deal):
    from models import pipeline
    from models.deal import deal_by_number
    play_direct(new_deal, until="handoff")
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        with pytest.raises(DomainError, match="^stage: closed_won is set by the deal's flow"):
            pipeline.move_stage(s, deal, by="sofia", stage="closed_won")
        with pytest.raises(DomainError, match="^by: qa is qa; stages are moved by sales"):
            pipeline.move_stage(s, deal, by="qa", stage="proposal")


def test_an_estimate_line_cannot_change_once_written(new_deal):
    from models import EstimateLine, InvalidTransition
    play_direct(new_deal, until="decision-rev-1")
    with session_scope() as s:
        line = s.scalars(select(EstimateLine)).first()
        line.quantity = 1
        with pytest.raises(InvalidTransition, match="draft a new revision"):
            s.flush()


def test_an_answer_to_a_deal_that_is_over_says_so(new_deal):
    from dealflow.scenario import play_direct

    play_direct(new_deal)
    with pytest.raises(DomainError, match=r"^step: DEAL-0001 is not waiting for 'payment': the deal is won$"):
        check_answer(new_deal, "payment", {"by": "finance", "amount": "10"})
