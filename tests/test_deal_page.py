"""The deal's page (its artifact in the Prefect UI) and `deal show` read like the sale: where the
deal really is, who it waits for (each role once), what happened in sentences, tables that fit."""

from __future__ import annotations

import re

from click.testing import CliRunner

from dealflow.cli import main
from dealflow.scenario import play_direct
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
