"""The customer's invoice page names every credit note issued against the invoice (a return's):
its number, date, amount and what became of the money (refunded, with the refund's number, or kept
as credit on the account), each a link to its own page for the contact the invoice's link is for;
the balance says the invoice was credited, by how much and by which notes. A paid invoice without
credit notes reads as it always did. Over HTTP, from a real deal played to its end."""

from __future__ import annotations

import re

from sqlalchemy import select

from dealflow.customer import PortalCustomer, link_in_mail
from dealflow.scenario import play_direct
from models.credit_notes import CreditNote
from models.deal import deal_by_number
from services.db import session_scope

from .test_return_documents import _staff, ask_back, authorize, credit, receive_and_inspect

KIT = "TOOL-KIT-PRO"
HOSTILE = 'Kit <script>alert(1)</script> & "spare"'


def _text(html: str) -> str:
    return " ".join(re.sub(r"<style>.*?</style>|<[^>]+>", " ", html, flags=re.S).split())


def _kit_back_as_credit(deal: str) -> str:
    """One tool kit asked back (the reason typed with markup), received, restocked and kept as credit."""
    from models.return_steps import credit_return, inspect, receive
    from models.returns import return_by_number

    number = ask_back(deal, f"{KIT}:1", HOSTILE)
    authorize(number, "0", "")
    with session_scope() as s:
        ret = return_by_number(s, number)
        receive(s, ret, _staff(s, "delivery"), [{"sku": KIT, "quantity": 1}], "one box")
        s.commit()
    with session_scope() as s:
        ret = return_by_number(s, number)
        inspect(s, ret, _staff(s, "qa"), [{"sku": KIT, "quantity": 1, "outcome": "restock"}], "sealed")
        s.commit()
    with session_scope() as s:
        ret = return_by_number(s, number)
        note = credit_return(s, ret, "credit", "bank_transfer", _staff(s, "finance"))
        s.commit()
        return note.number


def test_an_invoice_credited_by_two_returns_lists_both_notes_with_working_links_and_a_truthful_balance(
        new_deal, portal, data_dir):
    play_direct(new_deal)
    first_rma = ask_back(new_deal)
    authorize(first_rma, "15")
    receive_and_inspect(first_rma)
    refunded = credit(first_rma, "refund")
    kept = _kit_back_as_credit(new_deal)
    assert (refunded, kept) == ("CN-0001", "CN-0002")
    with session_scope() as s:
        notes = {n.number: n for n in s.scalars(select(CreditNote).order_by(CreditNote.id))}
        invoice = notes[refunded].invoice
        assert notes[kept].invoice_id == invoice.id and invoice.number == "INV-0001"
        paid, number = invoice.paid, invoice.number
        amounts = {k: n.amount for k, n in notes.items()}
        dates = {k: n.at.date().isoformat() for k, n in notes.items()}
        refund_number = notes[refunded].refund_number
        assert notes[kept].settlement == "credit" and notes[kept].kept_as_credit == amounts[kept]
        contact = deal_by_number(s, new_deal).customer.primary_contact.id
    assert refund_number == "RFD-0001"
    credited = amounts[refunded] + amounts[kept]
    link = link_in_mail(data_dir / "mail", f"Invoice {number}", kind="i")
    assert link and link.startswith(portal.url + "/i/"), link
    with PortalCustomer() as customer:
        page = customer.open(link)
        assert page.status_code == 200
        text = _text(page.text)
        assert (f"Paid in full: USD {paid:,} received; credited USD {credited:,} by credit notes "
                f"{refunded}, {kept}. Thank you.") in text, text
        rows = re.search(r'<table class="lines" id="credit-notes">.*?<tbody>(.*?)</tbody>', page.text, re.S).group(1)
        cells = [_text(row).strip() for row in re.findall(r"<tr>(.*?)</tr>", rows, re.S)]
        assert cells == [
            f"{refunded} {dates[refunded]} Refunded to you by bank transfer (refund {refund_number}) "
            f"USD {amounts[refunded]:,}",
            f"{kept} {dates[kept]} Kept as credit on your account USD {amounts[kept]:,}"], cells
        hrefs = re.findall(r'<a href="(/c/[^"]+)">(CN-\d+)</a>', rows)
        assert [n for _, n in hrefs] == [refunded, kept]
        from models.portal import read_link
        from services.keys import portal_secret

        for href, note_number in hrefs:
            opened = customer.open(portal.url + href)
            assert opened.status_code == 200, href
            assert f"Credit note {note_number}" in _text(opened.text)
            named = read_link(portal_secret(), href.rsplit("/", 1)[1])
            assert (named.kind, named.ref, named.contact) == ("credit_note", note_number, contact)
        assert "<script>" not in page.text  # the page shows no reason typed; nothing typed runs


def test_a_paid_invoice_without_credit_notes_reads_as_it_did(new_deal, portal, data_dir):
    play_direct(new_deal)
    with session_scope() as s:
        invoice = deal_by_number(s, new_deal).invoice
        paid, number = invoice.paid, invoice.number
    with PortalCustomer() as customer:
        page = customer.open(link_in_mail(data_dir / "mail", f"Invoice {number}", kind="i"))
    text = _text(page.text)
    assert f"Paid in full: USD {paid:,} received. Thank you." in text, text
    assert "credited" not in text and "Credit notes" not in text and 'id="credit-notes"' not in page.text
