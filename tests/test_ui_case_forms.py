"""A return's and a warranty claim's forms in the Prefect UI a person gets by default (v2), through
dealflow's gateway, in a real browser at 1366×768, as tests/test_ui_forms.py reads a deal's.

A customer of the scenario's won deal (renamed like a script) sends a lathe (by its serial
number) and two tool kits back, and claims another lathe under warranty, each run started by
`dealflow return start` / `dealflow warranty claim` on the stack's deployments. At each step the
case's run suspends, and the person holding the step's role opens its form from the inbox's link:
the form says what they decide (the case, the customer, the goods with their quantities and
serial numbers, the money), every field has its label and starts with what is known, nothing is
cut off or read by scrolling sideways, the reason and the issue the customer gave (and the
engineer's diagnosis) show as typed, never as markup, and Resume moves the case to its next
step: the return is authorized, received, inspected (the lathe to repair, one kit back into
stock, one scrapped, on a row added in the form), credited for the kits and the lathe shipped
back, and closed; the claim is diagnosed and closed. Every form is answered with the browser's
Resume (the form is open anyway: answering there costs nothing more).

Slow (it starts the e2e stack); runs when DEALFLOW_E2E=1 and DEALFLOW_UI=1, as CI does.
Screenshots of every form go to the test's tmp_path.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from application.customers import edit_customer
from models import StockLevel
from models.credit_notes import CreditNote
from models.deal import deal_by_number
from models.money import amount_text
from models.products import product_by_sku
from models.returns import ReturnOrder
from models.serials import Serial
from models.waits import KINDS
from models.warranty import WarrantyClaim
from services.db import session_scope

from . import test_real_use
from .e2e_stack import run_state
from .helpers import answers
from .test_real_use import HOSTILE, UI, _browser
from .test_returns import shipped_serials
from .test_ui_forms import SERIAL_FIELDS, Forms, _code, _texts, _values

stack = test_real_use.stack  # the e2e stack (a Prefect server with its credential, the deployments, an executor)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not os.environ.get("DEALFLOW_E2E"), reason="set DEALFLOW_E2E=1 (CI does)")]

LATHE, KIT = "CNC-LATHE-2000", "TOOL-KIT-PRO"
# what the customer said, typed by the staff who took it: markup that must show as these characters
REASON = "Guard cracked in transit. " + HOSTILE["notes"]
ISSUE = "Spindle overheats after 2 h. <script>alert(3)</script> __hot__ [manual](javascript:alert(4))"
# the waits this test opens, in the order it answers them: kind -> (the wait's key, who answers)
WAITS = {"return_authorize": ("rma-0001-authorize", "manager"), "claim_diagnose": ("wc-0001-diagnose", "mark"),
         "return_receive": ("rma-0001-receive", "delivery"), "claim_close": ("wc-0001-close", "mark"),
         "return_inspect": ("rma-0001-inspect", "qa"), "return_credit": ("rma-0001-credit", "finance"),
         "return_ship_back": ("rma-0001-ship-back", "delivery")}
DIAGNOSIS = "Worn bearing; replace on site. **urgent** <b>now</b> see www.evil.example"


def _cli(*args: str) -> dict:
    import json

    from dealflow.cli import main

    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _field(dialog, title: str):
    """The form's inputs titled ``title`` (an optional one's label says so after it)."""
    return dialog.get_by_label(re.compile(rf"^{re.escape(title)}(\s*\(Optional\))?$"))


def _description(dialog) -> str:
    """The form's description as a person reads it (the word joiners that keep addresses text are unseen)."""
    return dialog.locator(".prose").first.inner_text().replace("\u2060", "")


def _shown_as_typed(dialog, *typed: str) -> None:
    """Each text typed shows as its characters in the form's description; nothing in it became a
    tag, a link, an image or bold text."""
    prose = dialog.locator(".prose").first
    text = _description(dialog)
    for value in typed:
        assert " ".join(value.split()) in text, (value, text[:1500])
    assert prose.locator("script, img, b, a[href*='evil'], a[href^='javascript']").count() == 0
    emphasised = _texts(prose.locator("strong, em"))  # the description's own bold: numbers, never typed words
    assert not {"x", "hot", "bold", "urgent", "now"} & set(emphasised), emphasised


def _on_hand(sku: str) -> int:
    with session_scope() as s:
        return s.get(StockLevel, product_by_sku(s, sku).id).on_hand


@UI
def test_a_returns_and_a_claims_forms_are_read_whole_in_the_prefect_ui_and_each_resume_moves_the_case(
        stack, won_deal, tmp_path):
    from playwright.sync_api import sync_playwright

    number = won_deal
    with session_scope() as s:
        deal = deal_by_number(s, number)
        customer_ref, order_number = str(deal.customer_id), deal.order.number
        invoice_number, currency, paid = deal.invoice.number, deal.currency, deal.invoice.paid
    edit_customer(customer_ref, {"name": HOSTILE["company"]}, by="manager")  # a customer named like a script
    back, claimed = shipped_serials(number, LATHE)[:2]
    with session_scope() as s:
        address = " ".join(deal_by_number(s, number).customer.shipping_address.split())
        back_warranty = s.scalars(select(Serial).where(Serial.serial == back)).one().warranty_end.isoformat()
    lathes_before, kits_before = _on_hand(LATHE), _on_hand(KIT)

    # both cases are asked for by the sales rep, each run on its deployment (the executor runs it)
    ret = _cli("return", "start", number, "--lines", f"{LATHE}:1:{back},{KIT}:2", "--reason", REASON,
               "--by", "sofia", "--code", _code("sofia"))
    claim = _cli("warranty", "claim", claimed, "--issue", ISSUE, "--by", "sofia", "--code", _code("sofia"))
    rma, wc = ret["case"], claim["case"]
    assert (rma, wc) == ("RMA-0001", "WC-0001"), (ret, claim)
    shots = tmp_path / "screens"
    shots.mkdir()
    alerts: list[str] = []
    requests: list[str] = []
    watched: set[str] = set()

    def moved(key: str) -> None:
        closed = answers.wait_closed(number, key, timeout=180)
        assert (closed.key, closed.status) == (key, "answered"), closed

    with sync_playwright() as p:
        browser = _browser(p)
        forms = Forms(browser, stack, number, shots)
        try:
            def open_form(kind: str):
                """The form of the wait of ``kind``, opened by the person who answers it (``WAITS``)."""
                expected, handle = WAITS[kind]
                page = forms.sign_in(handle)
                if handle not in watched:  # a script run or a request to evil.example: seen
                    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
                    page.on("request", lambda r: requests.append(r.url))
                    watched.add(handle)
                key, dialog = forms.open(kind, handle)
                assert key == expected, key
                return key, dialog

            # the manager reads the return: the customer, the goods (the lathe by its serial number),
            # what shipped, the invoice paid, the reason as typed; the form starts with "authorize"
            key, dialog = open_form("return_authorize")
            text = _description(dialog)
            for said in (f"authorize or refuse the return {rma}", HOSTILE["company"], f"order {order_number}",
                         "asked for by sofia", LATHE, KIT, back, f"{LATHE}: 3 shipped, 0 on other returns",
                         f"{KIT}: 3 shipped, 0 on other returns",
                         f"Invoice {invoice_number}: {amount_text(paid, currency)} paid of {amount_text(paid, currency)}",
                         "less the restocking fee you set"):
                assert said in text, (said, text[:1500])
            _shown_as_typed(dialog, REASON, HOSTILE["company"])
            assert dialog.locator('[aria-label="Select Your decision"]').inner_text() == "authorize the return"
            fee = dialog.get_by_label("Restocking fee %")
            assert fee.get_attribute("type") == "number" and float(fee.input_value()) == 0
            fee.fill("10")
            dialog.get_by_label("Note to the customer").fill("Pack it in its crate, please.")
            sent = forms.submit(dialog, key)
            assert (sent["decision"], sent["restocking_fee_pct"]) == ("authorize the return", 10)
            moved(key)

            # the engineer diagnoses the claim: the unit, its customer, its warranty, the issue as typed
            key, dialog = open_form("claim_diagnose")
            text = _description(dialog)
            with session_scope() as s:
                warranty_end = s.scalars(select(WarrantyClaim)).one().warranty_end.isoformat()
            for said in (f"diagnose the warranty claim {wc}", LATHE, f"serial {claimed}", HOSTILE["company"],
                         f"order {order_number}", f"warranty until {warranty_end}"):
                assert said in text, (said, text[:1500])
            _shown_as_typed(dialog, ISSUE)
            assert dialog.get_by_label("Diagnosis").input_value() == ""
            dialog.get_by_label("Diagnosis").fill(DIAGNOSIS)
            forms.pick(dialog, "Resolution", "repair on site")
            sent = forms.submit(dialog, key)
            assert (sent["diagnosis"], sent["resolution"]) == (DIAGNOSIS, "repair on site")
            moved(key)

            # delivery receives the goods: the form starts with what was authorized, the lathe's
            # serial number in its field, none for the kits
            key, dialog = open_form("return_receive")
            text = _description(dialog)
            for said in (f"receive the goods of {rma}", HOSTILE["company"], LATHE, KIT, back):
                assert said in text, (said, text[:1500])
            assert _values(_field(dialog, "SKU")) == [LATHE, KIT]
            assert [float(v) for v in _values(dialog.get_by_label("Quantity received"))] == [1, 2]
            serials = dialog.locator(SERIAL_FIELDS)
            assert [_values(serials.nth(i).locator("textarea, input")) for i in range(serials.count())] == [
                [back], []]
            _field(dialog, "Note").fill("Crate intact; one kit box dented.")
            sent = forms.submit(dialog, key)
            assert [(ln["sku"], ln["quantity"], ln.get("serials")) for ln in sent["lines"]] == [
                (LATHE, 1, [back]), (KIT, 2, [])], sent
            moved(key)

            # the engineer closes the claim, reading their diagnosis as typed
            key, dialog = open_form("claim_close")
            text = _description(dialog)
            for said in (f"close the warranty claim {wc} once it is repaired (to be repaired on site)",
                         f"Diagnosis by mark: {DIAGNOSIS}", f"serial {claimed}"):
                assert " ".join(said.split()) in text, (said, text[:1500])
            _shown_as_typed(dialog, DIAGNOSIS, ISSUE)
            _field(dialog, "Note").fill("Bearing replaced on site, runs cool.")
            forms.submit(dialog, key)
            moved(key)

            # QA inspects: a row per lathe (by its serial number) and per SKU otherwise, each to go back
            # into stock to begin with; the lathe goes to repair, the kits are split over two rows:
            # one back into stock, one scrapped
            key, dialog = open_form("return_inspect")
            text = _description(dialog)
            for said in (f"inspect what came back on {rma}", HOSTILE["company"], LATHE, KIT, back):
                assert said in text, (said, text[:1500])
            assert _values(_field(dialog, "SKU")) == [LATHE, KIT]
            assert _values(_field(dialog, "Serial number")) == [back, ""]
            assert [float(v) for v in _values(_field(dialog, "Quantity"))] == [1, 2]
            assert _texts(dialog.locator('[aria-label="Select Outcome"]')) == ["put back into stock"] * 2
            forms.pick(dialog, "Outcome", "send to repair", nth=0)
            _field(dialog, "Quantity").nth(1).fill("1")
            dialog.get_by_role("button", name="Add item").last.click()
            _field(dialog, "SKU").nth(2).fill(KIT)
            _field(dialog, "Quantity").nth(2).fill("1")
            forms.pick(dialog, "Outcome", "scrap it", nth=2)
            _field(dialog, "Notes").fill("Lathe: spindle bearing to replace; one kit's case broken.")
            sent = forms.submit(dialog, key)
            assert [(ln["sku"], ln.get("serial") or "", ln["quantity"], ln["outcome"]) for ln in sent["lines"]] == [
                (LATHE, back, 1, "send to repair"), (KIT, "", 1, "put back into stock"),
                (KIT, "", 1, "scrap it")], sent
            moved(key)
            assert (_on_hand(LATHE), _on_hand(KIT)) == (lathes_before, kits_before + 1)

            # finance credits what stays (the kits, restocked or scrapped; the lathe goes back to its
            # customer): the amount, the fee, the credit, the invoice paid; the form starts with a
            # refund (the invoice is paid in full) by bank transfer
            key, dialog = open_form("return_credit")
            with session_scope() as s:
                returned = s.scalars(select(ReturnOrder)).one()
                kept, fee = returned.credited_value, returned.restocking_fee
            assert kept > 0 and fee > 0
            text = _description(dialog)
            for said in (f"issue the credit note for {rma}", HOSTILE["company"], amount_text(kept, currency),
                         f"restocking fee {amount_text(fee, currency)} (10 %)",
                         f"credit {amount_text(kept - fee, currency)}",
                         f"Invoice {invoice_number}: {amount_text(paid, currency)} paid",
                         f"{LATHE}: 1 to repair", f"{KIT}: 1 restocked, 1 scrapped", back):
                assert said in text, (said, text[:1500])
            assert dialog.locator('[aria-label="Select The money"]').inner_text() == "refund it"
            assert dialog.locator('[aria-label="Select Refund method"]').inner_text() == "bank transfer"
            sent = forms.submit(dialog, key)
            assert (sent["settle"], sent["method"]) == ("refund it", "bank transfer")
            moved(key)

            # delivery ships the repaired lathe back: to the customer's address, by its serial number,
            # its warranty as it was; the date left empty (today)
            key, dialog = open_form("return_ship_back")
            text = _description(dialog)
            for said in (f"ship the repaired units of {rma} back to {HOSTILE['company']}", f"Ship to: {address}",
                         LATHE, back, back_warranty):
                assert said in text, (said, text[:1500])
            assert _field(dialog, "Carrier").input_value() == "" and _field(dialog, "Note").input_value() == ""
            _field(dialog, "Carrier").fill("DHL Freight")
            _field(dialog, "Tracking number").fill("DHLF-7845999")
            sent = forms.submit(dialog, key)
            assert (sent["carrier"], sent["tracking_number"], sent.get("shipped_on")) == (
                "DHL Freight", "DHLF-7845999", None), sent
            moved(key)
        finally:
            if forms.page is not None:
                forms.page.screenshot(path=str(shots / "last.png"))
            browser.close()
            print("descriptions at 1366x768 (px): " + ", ".join(
                f"{k} {m['height']:.0f}" for k, m in forms.measured.items()))

    # every kind of wait of a return and a claim was read whole
    assert sorted(forms.measured) == sorted(key for key, _ in WAITS.values()), forms.measured
    assert set(WAITS) == {name for name, kind in KINDS.items() if kind.case is not None}
    assert alerts == [] and [u for u in requests if "evil" in u] == [], (alerts, requests)

    # both cases end, their runs completed
    deadline = time.monotonic() + 120  # the last step commits a moment before the run reports
    while time.monotonic() < deadline:
        if all(run_state(c["flow_run_id"]) == "Completed" for c in (ret, claim)):
            break
        time.sleep(0.5)
    assert [run_state(c["flow_run_id"]) for c in (ret, claim)] == ["Completed", "Completed"]
    with session_scope() as s:
        returned = s.scalars(select(ReturnOrder)).one()
        assert (returned.status, returned.restocking_fee_pct, returned.back_carrier) == ("closed", 10, "DHL Freight")
        notes = s.scalars(select(CreditNote).where(CreditNote.return_id == returned.id)).all()
        assert [(n.settlement, n.amount) for n in notes] == [("refund", kept - fee)]
        unit = s.scalars(select(Serial).where(Serial.serial == back)).one()  # the customer's again
        assert (unit.status, unit.deal_id, unit.warranty_end.isoformat()) == ("shipped", returned.deal_id,
                                                                              back_warranty)
        closed = s.scalars(select(WarrantyClaim)).one()
        assert (closed.status, closed.diagnosis, closed.resolution) == ("closed", DIAGNOSIS, "repair_on_site")
        answered = sorted((w.key, w.answered_by) for w in deal_by_number(s, number).waits if w.of_case)
    assert answered == sorted(WAITS.values()), answered
