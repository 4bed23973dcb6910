"""Bad input gets one clear message naming the field and the rule, and nothing is written:
checked on the path a person uses (``dealflow answer``) and again on the flow's own path."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dealflow.answers import check_answer
from dealflow.scenario import play_direct
from models import DomainError, Product, StockLevel
from services.db import session_scope
from tasks.deal_steps import open_wait, plan_next_step, record_answer

from .helpers import audit_actions, counts, wait_row


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
    retry = plan_next_step.fn(deal)
    assert retry["key"] == f"{key}-retry-1"
    assert f"{step}.refused" in audit_actions()


@pytest.mark.parametrize("line, message", [
    ({"sku": "NOPE-1", "quantity": 1}, "lines[1].sku: unknown SKU 'NOPE-1'"),
    ({"sku": "VMC-850", "quantity": 0}, "lines[1].quantity: must be greater than zero"),
    ({"sku": "VMC-850", "quantity": -2}, "lines[1].quantity: must be greater than zero"),
    ({"sku": "VMC-850", "quantity": 1, "discount_pct": "100.5"}, "lines[1].discount_pct: must be between 0 and 100"),
    ({"sku": "VMC-850", "quantity": 1, "discount_pct": "-1"}, "lines[1].discount_pct: must be between 0 and 100"),
    ({"sku": "VMC-850", "quantity": "two"}, "lines[1].quantity: input should be a valid integer, unable to parse string as an integer"),
])
def test_an_estimate_line_must_name_a_product_a_quantity_and_a_fair_discount(new_deal, line, message):
    play_direct(new_deal, until="estimate-rev-1")
    answer = {"by": "mark", "lines": [line]}
    if "valid integer" in message:  # a type error is caught by the form, before the rules
        with pytest.raises(DomainError, match=r"^lines\[1\]\.quantity: input should be a valid integer"):
            check_answer(new_deal, "estimate", answer)
        return
    _refused_everywhere(new_deal, "estimate", "estimate-rev-1", answer, message)


def test_shipping_more_than_ordered_is_refused(new_deal):
    play_direct(new_deal, until="shipment-1")
    answer = {"by": "delivery", "carrier": "DHL", "tracking_number": "T1",
              "lines": [{"sku": "CNC-LATHE-2000", "quantity": 4}]}
    _refused_everywhere(new_deal, "shipment", "shipment-1", answer,
                        "lines[1].quantity: CNC-LATHE-2000: 4 is more than the 3 left to ship (3 ordered, 0 shipped)")


def test_shipping_more_than_in_stock_is_refused_and_uses_no_number(new_deal):
    play_direct(new_deal, until="shipment-1")
    with session_scope() as s:
        lathe = s.scalars(select(Product).where(Product.sku == "CNC-LATHE-2000")).one()
        s.get(StockLevel, lathe.id).on_hand = 2
        s.commit()
    answer = {"by": "delivery", "carrier": "DHL", "tracking_number": "T1",
              "lines": [{"sku": "TOOL-KIT-PRO", "quantity": 1}, {"sku": "CNC-LATHE-2000", "quantity": 3}]}
    _refused_everywhere(new_deal, "shipment", "shipment-1", answer,
                        "lines[2].quantity: CNC-LATHE-2000: 3 requested but only 2 in stock")
    step = plan_next_step.fn(new_deal)
    open_wait.fn(new_deal, step["name"], step["key"], None)
    ok = record_answer.fn(new_deal, step["key"], {"by": "delivery", "carrier": "DHL", "tracking_number": "T2",
                                                  "lines": [{"sku": "CNC-LATHE-2000", "quantity": 2}]})
    assert ok["accepted"] and ok["outcome"].startswith("SHP-0001: 2 × CNC-LATHE-2000")  # gap-free


def test_paying_more_than_is_due_is_refused(new_deal):
    play_direct(new_deal, until="payment-1")
    _refused_everywhere(new_deal, "payment", "payment-1", {"by": "finance", "amount": "174183.69"},
                        "amount: 174183.69 is more than the 174183.68 still due")


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
    play_direct(new_deal, until="qa-attempt-1")
    _refused_everywhere(new_deal, "qa", "qa-attempt-1",
                        {"by": "qa", "passed": True, "checklist": {"hydraulics": False, "safety_guards": True}},
                        "checklist: cannot pass with failed checks: hydraulics")


def _open_description(deal: str) -> str:
    step = plan_next_step.fn(deal)
    return open_wait.fn(deal, step["name"], step["key"], None)["description"]
