"""The customer portal in a real browser (the system's chromium, through playwright): a deal driven
by a real Prefect flow run to its estimate, the estimate email written as an .eml file, and the
customer accepting from the link in it, with JavaScript off, as nothing in the portal needs it.

Needs a browser: runs when DEALFLOW_UI=1, as the Prefect UI's browser tests do (CI sets it)
(`DEALFLOW_UI=1 pytest tests/test_portal_browser.py`).
"""

from __future__ import annotations

import os
import re
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from dealflow.customer import link_in
from dealflow.scenario import SCRIPT
from models import Document
from models.deal import deal_by_number
from models.portal import CustomerAnswer
from services.db import session_scope
from services.rendering import money

from .e2e_stack import browser_path
from .helpers import answer_as_staff, run_deal_with, wait_for_run

UI = pytest.mark.skipif(not os.environ.get("DEALFLOW_UI"),
                        reason="set DEALFLOW_UI=1, with playwright and chromium installed (CI does)")

NAME = "<img src=x onerror=alert(1)>Priya Raman"  # a signature typed like markup: shown as typed
PO = "PO 4500-2231"



def _browser(p):
    # the system's chromium, never a downloaded one; no background traffic to Google on a closed network
    return p.chromium.launch(executable_path=shutil.which(browser_path() or "/usr/bin/chromium"), headless=True,
                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                   "--disable-component-update", "--disable-sync", "--no-first-run"])


def estimate_eml(mail_dir: Path, number: str) -> Path:
    """The .eml file of the email that sent estimate ``number``."""
    for path in sorted(mail_dir.glob("*.eml")):
        if number in str(message_from_bytes(path.read_bytes(), policy=policy.default)["Subject"]):
            return path
    raise AssertionError(f"no email for {number} in {sorted(p.name for p in mail_dir.glob('*'))}")


def plain(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def step(name: str, **payload):
    """The scenario's move at step ``name`` (its last, with ``payload`` in its answer, if given)."""
    move = [m for m in SCRIPT if m.step == name and all(
        not callable(m.payload) and m.payload.get(k) == v for k, v in payload.items())][-1]
    return move


@UI
@pytest.mark.flow
@pytest.mark.ui
def test_the_customer_accepts_the_estimate_in_a_browser_and_the_deal_reaches_its_order(
        prefect_api, new_deal, portal, data_dir):
    from playwright.sync_api import sync_playwright


    def staff(key: str, move) -> None:
        answer_as_staff(new_deal, key, move)

    seen: dict = {}

    def customer() -> None:  # playwright is made, used and closed in this thread
        wait_for_run(new_deal, "decision-rev-1")
        eml = estimate_eml(data_dir / "mail", "EST-0001-R1")
        link = link_in(eml)
        assert link and link.startswith(portal.url + "/e/"), link
        with session_scope() as s:
            rev = deal_by_number(s, new_deal).estimate.latest
            currency = s.scalars(select(Document.context).where(Document.number == rev.number)).one()["currency"]
            seen["total"] = money(rev.totals.total, currency)
        requests, dialogs = [], []
        with sync_playwright() as p:
            browser = _browser(p)
            context = browser.new_context(java_script_enabled=False)
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            response = page.goto(link)
            seen["status"], seen["headers"] = response.status, response.headers
            seen["before"] = plain(page.locator("body").inner_text())
            page.fill("#name", NAME)
            page.fill("#po_number", PO)
            page.check("#terms")
            page.click("#accept")  # a plain form: the POST, then the redirect to the page with its outcome
            page.wait_for_url(re.compile(r"\?done="))
            seen["after_url"] = page.url
            seen["after"] = plain(page.locator("body").inner_text())
            page.goto(link)  # later, the same link
            seen["again"] = plain(page.locator("#state").inner_text())
            seen["images"] = page.locator("img").count()
            seen["forms"] = page.locator("form").count()
            context.close()
            browser.close()
        seen["requests"], seen["dialogs"] = requests, dialogs

    def people() -> None:
        for key, move in (("qualify", SCRIPT[0]), ("handoff", SCRIPT[1]), ("estimate-rev-1", SCRIPT[2])):
            staff(key, move)
        customer()
        # the order exists: the rest of the deal the short way (QA passes, the 30 % deposit paid,
        # one shipment of everything, paid in full)
        for key, move in (("qa-attempt-1", step("qa", passed=True)), ("deposit-1", step("deposit")),
                          ("shipment-1", step("shipment", lines=[])), ("payment-1", SCRIPT[-1])):
            staff(key, move)

    result = run_deal_with(new_deal, people)
    assert result["status"] == "won"

    # the page, as the browser showed it before the answer
    assert seen["status"] == 200
    before = seen["before"]
    assert "Estimate EST-0001-R1" in before and "CNC-LATHE-2000" in before and seen["total"] in before
    assert "Accept and order" in before
    csp = seen["headers"].get("content-security-policy", "")
    assert "default-src 'none'" in csp and "script-src" not in csp, csp
    # the answer, confirmed on the page it led to
    assert seen["after_url"].endswith("?done=accept"), seen["after_url"]
    assert "you accepted estimate EST-0001-R1" in seen["after"], seen["after"][:2000]
    # and again from the link: the name as typed, as text, no form to answer twice
    assert "This estimate was accepted on" in seen["again"] and f"by {NAME} (online)" in seen["again"]
    assert f"Your purchase order: {PO}" in seen["again"]
    assert seen["images"] == 0 and seen["forms"] == 0
    assert seen["dialogs"] == []
    assert all(u.startswith(portal.url + "/") for u in seen["requests"]), seen["requests"]

    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert deal.order is not None and deal.order.estimate_revision.revision == 1
        rev = deal.estimate.latest
        assert (rev.status, rev.decision_channel, rev.decided_by) == ("approved", "portal", NAME)
        order_doc = s.scalars(select(Document).where(Document.kind == "order")).one()
        assert order_doc.context["accepted_online"]["name"] == NAME
        assert order_doc.context["accepted_online"]["po_number"] == PO
        online = s.scalars(select(CustomerAnswer)).one()
        assert (online.action, online.name, online.po_number, online.ip) == ("accept", NAME, PO, "127.0.0.1")
        assert "Chrome" in online.user_agent, online.user_agent  # HeadlessChrome/…: the browser's own
        assert "dealflow-customer" not in online.user_agent
    order_html = (data_dir / "documents" / "SO-0001.html").read_text()
    assert "Accepted online by &lt;img src=x" in order_html and "<img src=x" not in order_html


@UI
@pytest.mark.ui
def test_the_deposit_invoice_and_the_final_invoice_that_deducts_it_read_right_in_a_browser(
        new_deal, portal, data_dir):
    from playwright.sync_api import sync_playwright

    from dealflow.customer import link_in_mail
    from dealflow.scenario import play_direct

    play_direct(new_deal, until="deposit-1")  # the deposit invoice is out, nothing paid yet
    deposit_link = link_in_mail(data_dir / "mail", "Deposit invoice DEP-0001", kind="i")
    assert deposit_link and deposit_link.startswith(portal.url + "/i/"), deposit_link
    seen: dict = {}
    with sync_playwright() as p:
        browser = _browser(p)
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.set_default_timeout(60_000)

        def read(link: str, name: str) -> None:
            response = page.goto(link)
            seen[name] = (response.status, plain(page.locator("body").inner_text()),
                          plain(page.locator("#balance").inner_text()), page.title())

        read(deposit_link, "deposit, open")
        play_direct(new_deal, until="payment-2")  # the deposit paid, all shipped, 40 % of the rest paid
        read(deposit_link, "deposit, paid")
        read(link_in_mail(data_dir / "mail", "Invoice INV-0001", kind="i"), "final")
        seen["deducted"] = plain(page.locator("#deposit-line").inner_text())
        seen["deduction_rows"] = page.locator("#deposit-deducted tbody tr").count()
        pdf = context.request.get(deposit_link + "/pdf")
        seen["pdf"] = (pdf.status, pdf.headers.get("content-type"), pdf.body()[:5])
        context.close()
        browser.close()

    status, body, balance, title = seen["deposit, open"]
    assert status == 200 and title == "Deposit invoice DEP-0001 · Glocial Machineries"
    assert balance.startswith("USD 52,255.10 due by") and "quoting DEP-0001" in balance
    assert "is confirmed with a 30 % deposit before shipping: this invoice is that deposit." in body
    assert "Your order ships once it is paid, and your final invoice deducts it." in body
    assert "Deposit 30 % of order SO-0001 (tax 18 %)" in body and "None yet." in body
    _, body, balance, _ = seen["deposit, paid"]
    assert balance == "Paid in full: USD 52,255.10 received. Thank you. Your final invoice deducts this deposit."
    assert "PAY-0001" in body and "ships once" not in body
    status, body, balance, title = seen["final"]
    assert status == 200 and title == "Invoice INV-0001 · Glocial Machineries"
    assert balance.startswith("USD 73,157.15 due by")  # 121,928.58 less the 48,771.43 received
    assert seen["deducted"] == "Less deposit paid, deposit invoice DEP-0001 −USD 52,255.10"
    assert ("Total shipped USD 174,183.68 Less deposit paid, deposit invoice DEP-0001 −USD 52,255.10 "
            "Invoice total USD 121,928.58 Received USD 48,771.43 Balance due USD 73,157.15") in body
    assert seen["deduction_rows"] == 2  # one line per tax rate (12 % and 18 %)
    assert seen["pdf"] == (200, "application/pdf", b"%PDF-")


@UI
@pytest.mark.ui
def test_a_returns_credit_note_opens_from_its_email_in_a_browser_and_a_tampered_link_is_refused(
        new_deal, portal, data_dir):
    from playwright.sync_api import sync_playwright

    from dealflow.customer import link_in_mail

    from .test_return_documents import FIRST_LATHE, LATHE, credited_return

    credited_return(new_deal, "refund")  # one lathe (by its serial) and two cans of coolant, 15 % fee, refunded
    link = link_in_mail(data_dir / "mail", "Credit note CN-0001", kind="c")
    assert link and link.startswith(portal.url + "/c/"), link
    token = link.rsplit("/", 1)[1]
    tampered = link[: -len(token)] + token[:12] + ("x" if token[12] != "x" else "y") + token[13:]
    seen: dict = {}
    with sync_playwright() as p:
        browser = _browser(p)
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.set_default_timeout(60_000)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        response = page.goto(link)
        seen["status"], seen["title"] = response.status, page.title()
        seen["settled"] = plain(page.locator("#settled").inner_text())
        seen["rows"] = [plain(r.inner_text()) for r in page.locator("#returned-lines tbody tr").all()]
        seen["credit"] = plain(page.locator("#return-credit").inner_text())
        seen["settlement"] = plain(page.locator("#settlement").inner_text())
        seen["body"] = plain(page.locator("body").inner_text())
        seen["scripts"] = page.locator("script").count()
        seen["pdf link"] = page.get_by_text("Download the credit note as PDF").get_attribute("href")
        pdf = context.request.get(link + "/pdf")  # the PDF as it was attached to the email
        seen["pdf"] = (pdf.status, pdf.headers.get("content-type"), pdf.body())
        response = page.goto(tampered)
        seen["tampered"] = (response.status, plain(page.locator("h1").inner_text()))
        seen["requests"] = requests
        context.close()
        browser.close()

    assert seen["status"] == 200 and seen["title"] == "Credit note CN-0001 · Glocial Machineries"
    # 1 lathe 44,620.00 + 18 % and 2 cans 179.80 + 12 %: 52,852.98 received, less 15 % (7,927.95)
    assert seen["settled"] == ("USD 44,925.03 credited for the goods you returned under RMA-0001, after a restocking "
                               "fee of USD 7,927.95. Refunded to you: USD 44,925.03 by bank transfer (refund RFD-0001), "
                               "quoting CN-0001."), seen["settled"]
    assert len(seen["rows"]) == 4  # the goods, then the fee's net per tax rate
    assert [r.strip() for r in seen["rows"][2:]] == ["Less restocking fee, 15 % of the goods' net – – – 12% −26.97",
                                                     "Less restocking fee, 15 % of the goods' net – – – 18% −6,693.00"
                                                     ], seen["rows"]
    assert LATHE in seen["rows"][0] and f"S/N {FIRST_LATHE}" in seen["rows"][0] and "44,620.00" in seen["rows"][0]
    assert "COOLANT-20L" in seen["rows"][1] and "179.80" in seen["rows"][1] and "S/N" not in seen["rows"][1]
    assert seen["credit"] == ("Net credited USD 38,079.83 Tax credited USD 6,845.20 Total credited USD 44,925.03"
                              ), seen["credit"]
    assert seen["settlement"] == "Refunded to you (bank transfer, refund RFD-0001) USD 44,925.03"
    assert "Return RMA-0001" in seen["body"] and "Reason for the return: Spindle <script>alert(1)</script>" in seen["body"]
    assert seen["scripts"] == 0  # the typed reason is text on the page, never a script
    assert seen["pdf link"] == f"/c/{token}/pdf" and seen["pdf"][:2] == (200, "application/pdf")
    assert seen["pdf"][2] == (data_dir / "documents" / "CN-0001.pdf").read_bytes()
    assert seen["tampered"] == (404, "This link does not work")
    assert all(u.startswith(portal.url + "/") for u in seen["requests"]), seen["requests"]
