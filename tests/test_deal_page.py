"""The deal's page (its artifact in the Prefect UI) and `deal show` read like the sale: where the
deal really is, who it waits for (each role once), what happened in sentences, tables that fit."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from click.testing import CliRunner

from application import deals
from dealflow.cli import main
from dealflow.scenario import SCRIPT, Move, play_direct
from models.deal import deal_by_number
from models.markdown import plain
from models.portal import DOCUMENT_LINK_DAYS
from services.db import session_scope
from services.links import document_url
from services.views import deal_page


def _page(number: str) -> str:
    with session_scope() as s:
        return str(deal_page(s, deal_by_number(s, number), document_url, link_days=DOCUMENT_LINK_DAYS))


def test_a_deal_waiting_for_qa_says_so_not_closed_won_and_names_each_role_once(new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    page = _page(new_deal)
    head = page.splitlines()[2]
    assert head == "**order SO-0001 in QA** · owner Sofia Marin · engineer Mark Henry", head
    assert "closed_won" not in page and "closed\\_won" not in page
    waiting = next(line for line in page.splitlines() if line.startswith("⏸"))
    assert re.fullmatch(r"⏸ waiting since \S+ UTC for QA sign-off, by QA", plain(waiting)), waiting
    shown = CliRunner().invoke(main, ["deal", "show", new_deal]).output.splitlines()
    assert shown[0] == f"{new_deal} · Riverside Metalworks Ltd · order SO-0001 in QA · owner sofia · engineer mark"
    assert re.fullmatch(r"waiting for QA sign-off, by QA \(qa-attempt-1\) since \S+ UTC", shown[1]), shown[1]


def test_the_timeline_tells_what_happened_in_sentences(new_deal):
    play_direct(new_deal)
    page = plain(_page(new_deal))
    timeline = page[page.index("## Timeline"):]
    for sentence in ["Sofia Marin started the deal", "Sofia Marin qualified the lead",
                     "Sofia Marin handed the deal to Mark Henry", "Estimate EST-0001-R1 was sent to the customer",
                     "Order SO-0001 was made", "Invoice INV-0001 was issued", "The deal is won",
                     "Waiting for QA sign-off"]:
        assert sentence in timeline, sentence
    assert "deal.flow_attached" not in timeline and ".answered" not in timeline and "wait.opened" not in timeline
    assert "**won, paid in full**" in _page(new_deal)


def test_the_pages_tables_fit_and_pdf_links_show_no_escapes(new_deal, data_dir):
    play_direct(new_deal, until="payment-1")
    page = _page(new_deal)
    rows = [line for line in page.splitlines() if line.startswith("|")]
    assert max(line.count("|") for line in rows) <= 8  # at most seven columns
    links = re.findall(r"\[([^\]]*)\]\(http", page)
    assert links and all("\\" not in text for text in links), links
    assert "[EST\\-0001\\-R1 PDF]" not in page and "[EST-0001-R1 PDF](" in page


def test_a_deal_waiting_for_its_deposit_says_so_on_its_page_in_the_inbox_and_in_deal_show(new_deal):
    from application.inbox import open_waits

    play_direct(new_deal, until="deposit-1")
    page = plain(_page(new_deal))
    assert page.splitlines()[2] == ("**order SO-0001 waiting for deposit DEP-0001** · owner Sofia Marin · "
                                    "engineer Mark Henry")
    waiting = next(line for line in page.splitlines() if line.startswith("⏸"))
    assert re.fullmatch(r"⏸ waiting since \S+ UTC for deposit, by finance", waiting), waiting
    assert "| deposit invoice DEP-0001 | open: 0.00 USD paid, 52255.10 USD due by " in page
    assert "Deposit: 30 % deposit before shipping, invoice DEP-0001: 0.00 USD paid, 52255.10 USD due." in page
    assert "Deposit invoice DEP-0001 was issued" in page  # the timeline
    [row] = open_waits()
    assert (row["key"], row["amount"], row["currency"]) == ("deposit-1", "52255.10", "USD")  # what is due
    assert row["waiting_for"] == "deposit, by finance"
    shown = CliRunner().invoke(main, ["deal", "show", new_deal]).output.splitlines()
    assert "order SO-0001 waiting for deposit DEP-0001" in shown[0], shown[0]
    assert shown[1].startswith("waiting for deposit, by finance (deposit-1) since "), shown[1]


def test_a_won_deal_shows_its_deposit_deducted_on_the_final_invoice(new_deal):
    play_direct(new_deal)
    page = plain(_page(new_deal))
    assert "| deposit invoice DEP-0001 | paid: 52255.10 USD paid, 0.00 USD due by " in page
    assert "| invoice INV-0001 | paid: 121928.58 USD paid, 0.00 USD due by " in page
    assert ("Deposit: 30 % deposit before shipping, invoice DEP-0001: 52255.10 USD paid, 0.00 USD due; deducted on "
            "invoice INV-0001.") in page


def test_a_credit_hold_shows_why_and_then_who_released_it_and_why(new_deal):
    from decimal import Decimal

    from application.inbox import open_waits
    from dealflow.scenario import SCRIPT, Move

    play_direct(new_deal, until="handoff")
    with session_scope() as s:
        deal_by_number(s, new_deal).customer.credit_limit = Decimal("100000")  # the order is 174,183.68
        s.commit()
    play_direct(new_deal, until="credit-rev-2")
    page = plain(_page(new_deal))
    assert page.splitlines()[2].startswith("**estimate EST-0001-R2 accepted, on credit hold**"), page.splitlines()[2]
    waiting = next(line for line in page.splitlines() if line.startswith("⏸"))
    assert waiting.endswith("for the credit decision (on credit hold), by credit control"), waiting
    held = next(line for line in page.splitlines() if line.startswith("Credit hold on"))
    assert held.startswith("Credit hold on 174183.68 USD (") and held.endswith(
        "): exposure 0.00 + this order 174183.68 = 174183.68 USD, over the credit limit of 100000.00; waiting for "
        "credit control's decision."), held
    assert "The order of estimate EST-0001-R2 went on credit hold: exposure" in page
    assert [(r["key"], r["amount"], r["waiting_for"]) for r in open_waits()] == [
        ("credit-rev-2", "174183.68", "the credit decision (on credit hold), by credit control")]
    release = Move("credit", "manager", {"decision": "deposit", "deposit_pct": "50", "deposit_before": "release",
                                         "reason": "New customer: <b>half</b> up front"}, "")
    play_direct(new_deal, script=[*SCRIPT[:6], release], until="deposit-1")
    page = plain(_page(new_deal))
    held = next(line for line in page.splitlines() if line.startswith("Credit hold on"))
    assert held.endswith(" → released by Morgan Lee (sales manager) with a 50 % deposit before QA and release: "
                         '"New customer: <b>half</b> up front".'), held
    assert "<b>" not in _page(new_deal)  # escaped on the page itself
    assert "Deposit: 50 % deposit before QA and release, invoice DEP-0001: 0.00 USD paid, 87091.84 USD due." in page


@pytest.mark.parametrize("decision", ["release", "reject"])
def test_a_hold_released_or_rejected_reads_on_the_page_and_the_deal_goes_on(new_deal, decision):
    """Found trying it: a released or rejected hold (no deposit %) broke the deal's page, and with
    it the run, at the next wait."""
    play_direct(new_deal, until="handoff")
    with session_scope() as s:
        deal_by_number(s, new_deal).customer.credit_limit = Decimal("100000")
        s.commit()
    move = Move("credit", "manager", {"decision": decision, "reason": "Paid on time for five years"}, "")
    play_direct(new_deal, script=[*SCRIPT[:6], move], until="qa-attempt-1" if decision == "release" else None)
    page = plain(_page(new_deal))
    held = next(line for line in page.splitlines() if line.startswith("Credit hold on"))
    verb = "released" if decision == "release" else "rejected"
    assert held.endswith(f' → {verb} by Morgan Lee (sales manager): "Paid on time for five years".'), held
    assert deals.deal_summary(new_deal)["status"] == ("open" if decision == "release" else "lost")


def test_a_cancelled_deal_says_why_and_lists_its_credit_note(new_deal):
    from sqlalchemy import select

    from models import StaffUser
    from models.cancellation import cancel_deal

    play_direct(new_deal, until="shipment-1")  # the deposit is paid
    with session_scope() as s:
        manager = s.scalars(select(StaffUser).where(StaffUser.handle == "manager")).one()
        cancel_deal(s, deal_by_number(s, new_deal), manager, "The plant's *opening* moved to 2028", "refund")
        s.commit()
    raw = _page(new_deal)
    page = plain(raw)
    assert page.splitlines()[2].startswith("**cancelled: The plant's *opening* moved to 2028**")
    assert "\\*opening\\*" in raw  # escaped: shown as typed, not as emphasis
    assert "| deposit invoice DEP-0001 | credited: 52255.10 USD paid on it | 52255.10 |" in page
    assert ("| credit note CN-0001 | cancels deposit invoice DEP-0001; refunded 52255.10 USD (bank transfer, "
            "RFD-0001) | "
            "−52255.10 |") in page
    assert "Deposit: 30 % deposit before shipping, invoice DEP-0001 credited by credit note CN-0001" in page
    assert "Cancelled on " in page and ": The plant's *opening* moved to 2028" in page
    assert "Morgan Lee (sales manager) cancelled the deal: The plant's *opening* moved to 2028" in page
    assert "Credit note CN-0001 was issued" in page
    assert "⏸" not in page
