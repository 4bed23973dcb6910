"""Finance records a payment when it comes in (`dealflow invoice pay`), not only when the deal's
flow stands at the step that waits for it: a deposit paid while QA still tests the machine is on
the record at once, and the flow then does not wait for it at all (or only for what is left). A
deal standing at the wait for this very payment is answered there. Bad input, someone without
the role, or more than is due: one line, nothing written."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from application import deals
from dealflow.cli import main
from dealflow.scenario import SCRIPT, play_direct

from .helpers import code_of
from .test_bad_input_cli import _fingerprint

WITHOUT_THE_DEPOSIT = [m for m in SCRIPT if m.step != "deposit"]


def pay(*args: str):
    return CliRunner().invoke(main, ["invoice", "pay", *args])


def keys_of(deal: str) -> list[str]:
    return [w["key"] for w in deals.waits_of(deal)]


def test_a_deposit_paid_while_qa_tests_is_recorded_at_once_and_the_deal_never_waits_for_it(db, new_deal):
    play_direct(new_deal, until="qa-attempt-1")  # the deposit invoice is out; QA has not tested yet
    deposit = deals.deal_summary(new_deal)["deposit"]
    result = pay("DEP-0001", "--amount", deposit["due"], "--method", "bank transfer", "--reference", "RMW-DEP-EARLY",
                 "--by", "finance", "--code", code_of("finance"), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["invoice"], out["deal"], out["status"], out["due"]) == ("DEP-0001", new_deal, "paid", "0.00")
    assert len(out["mail_sent"]) == 1  # the payment's receipt, to the customer
    play_direct(new_deal, WITHOUT_THE_DEPOSIT)
    summary = deals.deal_summary(new_deal)
    assert summary["status"] == "won"
    assert not [k for k in keys_of(new_deal) if k.startswith("deposit")]  # no deposit wait ever opened
    assert summary["invoice"]["total"] == "121928.58"  # the deposit deducted as before


def test_part_of_a_deposit_paid_early_leaves_the_deal_waiting_only_for_the_rest(db, new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    result = pay("DEP-0001", "--amount", "20000", "--by", "finance", "--code", code_of("finance"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("DEP-0001 (DEAL-0001): PAY-0001: 20000.00 received, 32255.10 due; partially paid")
    play_direct(new_deal, until="deposit-2")  # after QA: the second payment of the deposit is what it waits for
    assert deals.deal_summary(new_deal)["deposit"]["due"] == "32255.10"


def test_a_deal_at_the_wait_for_this_payment_is_answered_there(db, new_deal):
    play_direct(new_deal, until="deposit-1")
    before = _fingerprint()
    result = pay("DEP-0001", "--amount", "100", "--by", "finance", "--code", code_of("finance"))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == ("error: invoice: DEAL-0001 waits for this payment at deposit-1: answer it there "
                             "(`dealflow answer DEAL-0001 deposit --set amount=…`, or the run's page)\n")
    assert _fingerprint() == before


@pytest.mark.parametrize(("args", "said"), [
    (["DEP-0001", "--amount", "52255.11", "--by", "finance"], "error: amount: 52255.11 is more than the 52255.10 "
                                                              "still due"),
    (["DEP-0001", "--amount", "-5", "--by", "finance"], "error: amount: must be greater than zero"),
    (["DEP-0001", "--amount", "10", "--method", "bitcoin", "--by", "finance"], "error: method: must be one of"),
    (["DEP-0009", "--amount", "10", "--by", "finance"], "error: invoice 'DEP-0009' not found"),
    (["DEP-0001", "--amount", "10", "--by", "delivery"], "error: by: delivery (delivery) is not finance: only "
                                                         "finance (or a manager) may record a payment"),
])
def test_bad_payments_are_one_line_and_write_nothing(db, new_deal, args, said):
    play_direct(new_deal, until="qa-attempt-1")
    before = _fingerprint()
    handle = args[args.index("--by") + 1]
    result = pay(*args, "--code", code_of(handle))
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(said), result.stderr
    assert _fingerprint() == before


def test_a_logged_in_finance_person_signs_the_payment_whatever_case_the_number_is_typed_in(db, new_deal):
    """`dealflow login finance`, then `invoice pay dep-0001`: the session signs the invoice as it is
    looked up, so the payment is proven by the session and recorded (it was refused as tampered)."""
    from dealflow.login import save
    from dealflow.scenario import TEAM

    play_direct(new_deal, until="qa-attempt-1")
    save(TEAM.login("finance"))
    result = pay("dep-0001", "--amount", "1000", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["invoice"], out["by"], out["due"]) == ("DEP-0001", "finance", "51255.10")
