"""What the customer reads of a return: the RMA (its number, what may come back with its serial
numbers, how to send it, the restocking fee or "warranty return: no charge"), the refusal, the
return's credit note (the goods received with their serials, the fee, the amount credited and what
became of it) with its PDF and email, and the credit note's page in the portal. Each is rendered
from a real return: the scenario's deal played to its end, then its goods asked back, authorized,
received, inspected and credited by the domain's own steps; what people typed is escaped."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from dealflow.customer import PortalCustomer, link_in_mail
from dealflow.scenario import play_direct
from models import Document, Email, StaffUser
from models.credit_notes import CreditNote
from models.deal import deal_by_number
from services.db import session_scope
from services.rendering import render, render_email, render_pdf

from .test_documents import _pdf_cells

LATHE, COOLANT = "CNC-LATHE-2000", "COOLANT-20L"
LATHE_NAME = "CNC lathe GL-2000, 2 m bed"
FIRST_LATHE = "GLM-GL2000-0001"  # the opening stock's first lathe: the first shipment takes it
HOSTILE_REASON = 'Spindle <script>alert(1)</script> & "noise" {{ 7*7 }}'
HOSTILE_NOTE = "Call <b>Dana</b> first & use [the ramp](http://evil.example)"


def _text(html: str) -> str:
    return " ".join(re.sub(r"<style>.*?</style>|<[^>]+>", " ", html, flags=re.S).split())


def _pdf_text(html: str) -> str:
    """The PDF's text, as a reader copies it (words joined by single spaces)."""
    from pypdf import PdfReader

    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(render_pdf(html))).pages)


def _doc(number: str) -> Document:
    with session_scope() as s:
        doc = s.scalars(select(Document).where(Document.number == number)).one()
        s.expunge(doc)
    return doc


def _mail(kind: str) -> Email:
    with session_scope() as s:
        mail = s.scalars(select(Email).where(Email.kind == kind).order_by(Email.id.desc())).first()
        assert mail is not None, kind
        s.expunge(mail)
    return mail


def _staff(s, handle: str) -> StaffUser:
    return s.scalars(select(StaffUser).where(StaffUser.handle == handle)).one()


def _deliver(deal: str) -> None:
    from application.deals import deliver_mail

    deliver_mail(deal)


# --- a return, step by step, as its flow's people take it -----------------------------------------

def ask_back(deal: str, lines: str = f"{LATHE}:1:{FIRST_LATHE},{COOLANT}:2", reason: str = HOSTILE_REASON,
             with_credit: bool = True) -> str:
    from models.returns import start_return

    with session_scope() as s:
        ret = start_return(s, deal_by_number(s, deal), lines, reason, "sofia", with_credit=with_credit)
        s.commit()
        return ret.number


def authorize(number: str, fee_pct: str = "15", note: str = HOSTILE_NOTE) -> None:
    from models.return_steps import authorize as authorize_it
    from models.return_steps import send_rma
    from models.returns import return_by_number

    with session_scope() as s:
        ret = return_by_number(s, number)
        authorize_it(s, ret, _staff(s, "manager"), fee_pct, note)
        send_rma(s, ret)
        deal = ret.deal.number
        s.commit()
    _deliver(deal)


def receive_and_inspect(number: str, lathe: str = "restock", coolant: str = "scrap") -> None:
    from models.return_steps import inspect, receive
    from models.returns import return_by_number

    with session_scope() as s:
        ret = return_by_number(s, number)
        receive(s, ret, _staff(s, "delivery"), [{"sku": LATHE, "quantity": 1, "serials": [FIRST_LATHE]},
                                                 {"sku": COOLANT, "quantity": 2}], "two pallets")
        s.commit()
    with session_scope() as s:
        ret = return_by_number(s, number)
        inspect(s, ret, _staff(s, "qa"), [{"sku": LATHE, "serial": FIRST_LATHE, "outcome": lathe},
                                          {"sku": COOLANT, "quantity": 2, "outcome": coolant}], "checked")
        s.commit()


def credit(number: str, settle: str = "refund") -> str:
    from models.return_steps import credit_return
    from models.returns import return_by_number

    with session_scope() as s:
        ret = return_by_number(s, number)
        note = credit_return(s, ret, settle, "bank_transfer", _staff(s, "finance"))
        deal, credit_note = ret.deal.number, note.number
        s.commit()
    _deliver(deal)
    return credit_note


def credited_return(deal: str, settle: str = "refund", fee_pct: str = "15") -> tuple[str, str]:
    """The scenario's deal to its end, then one lathe (by its serial) and two cans of coolant back:
    the lathe restocked, the coolant scrapped, credited less ``fee_pct``. (RMA, credit note)."""
    play_direct(deal)
    number = ask_back(deal)
    authorize(number, fee_pct)
    receive_and_inspect(number)
    return number, credit(number, settle)


def _credited(deal: str, fee_pct: str) -> dict[str, Decimal]:
    """The credit worked out apart, as a VAT credit note states it: the lathe (18 %) and two cans of
    coolant (12 %) as invoiced, the fee per tax rate (net, rounded; its tax, rounded), then the net,
    tax and total credited."""
    cent = Decimal("0.01")
    with session_scope() as s:
        order = deal_by_number(s, deal).order
        sold = [(ln.net_for(q), ln.tax_for(q), ln.tax_rate) for sku, q in ((LATHE, 1), (COOLANT, 2))
                for ln in order.lines if ln.sku == sku]
    assert len({rate for *_, rate in sold}) == 2  # the fee has a line per tax rate
    fee_nets = [(net * Decimal(fee_pct) / 100).quantize(cent) for net, _, _ in sold]
    fee_taxes = [(f * rate / 100).quantize(cent) for f, (_, _, rate) in zip(fee_nets, sold, strict=True)]
    net, tax = sum(n for n, _, _ in sold) - sum(fee_nets), sum(t for _, t, _ in sold) - sum(fee_taxes)
    return {"goods": sum(n + t for n, t, _ in sold), "fee_lathe": fee_nets[0], "fee_coolant": fee_nets[1],
            "fee_net": sum(fee_nets), "fee_tax": sum(fee_taxes), "fee": sum(fee_nets) + sum(fee_taxes),
            "net": net, "tax": tax, "total": net + tax}


def _sold(deal: str, sku: str, qty: int) -> Decimal:
    """What ``qty`` of the deal's ``sku`` were invoiced at, tax included (the credit's basis)."""
    with session_scope() as s:
        line = next(ln for ln in deal_by_number(s, deal).order.lines if ln.sku == sku)
        return line.net_for(qty) + line.tax_for(qty)


# --- the RMA ------------------------------------------------------------------------------------------

def test_the_rma_gives_its_number_what_may_come_back_with_serials_and_how_to_send_it(new_deal):
    play_direct(new_deal)
    number = ask_back(new_deal)
    authorize(number, "15")
    doc = _doc(number)
    ctx = doc.context
    assert (doc.kind, doc.template, number) == ("rma", "documents/rma.html", "RMA-0001")
    html = render(doc.template, ctx)
    text = _text(html)
    address = " ".join(ctx["seller"]["address"].split())
    for piece in ["Return authorization RMA-0001", "Order SO-0001", "RMA number write it on every package RMA-0001",
                  f"1 {LATHE_NAME} {LATHE} 1 {FIRST_LATHE}", f"{COOLANT} 2 –",
                  "Write the RMA number RMA-0001 clearly on the outside of every package.",
                  f"Send them within 30 days, by {ctx['return_by']}, to: Glocial Machineries {address}",
                  "we credit them to you as invoiced, less a restocking fee of 15 %"]:
        assert piece in text, (piece, text)
    assert "no charge" not in text and "Warranty claim" not in text
    # the reason and the manager's note as typed, never as markup
    assert "<script>" not in html and "Spindle &lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;noise&#34;" in html
    assert "<b>Dana</b>" not in html and "Call &lt;b&gt;Dana&lt;/b&gt; first" in html
    assert "{{ 7*7 }}" in html and " 49 " not in text
    pdf = _pdf_text(html)
    for piece in ["Return authorization RMA-0001", "RMA-0001", FIRST_LATHE, "on the outside of every package",
                  f"by {ctx['return_by']}", "restocking fee of 15 %", 'Spindle <script>alert(1)</script> & "noise"',
                  "Call <b>Dana</b> first"]:
        assert piece in pdf, (piece, pdf)
    text_mail, html_mail = render_email("emails/rma", _mail("rma").context)
    assert "Your return RMA-0001 for order SO-0001 is authorized." in text_mail
    assert f"- 1 × {LATHE_NAME} ({LATHE}), serial numbers {FIRST_LATHE}\n- 2 × " in text_mail, text_mail
    assert (f"write RMA-0001 on the outside of every package and send them within 30 days, by {ctx['return_by']}, "
            "to:\nGlocial Machineries\n") in text_mail
    assert "less a restocking fee of 15 %." in text_mail
    assert f"A note from us: {HOSTILE_NOTE}" in text_mail  # plain text: as typed
    assert "<b>Dana</b>" not in html_mail and "&lt;b&gt;Dana&lt;/b&gt;" in html_mail
    assert '<a href="http://evil.example' not in html_mail
    with session_scope() as s:
        mail = s.scalars(select(Email).where(Email.kind == "rma")).one()  # once
        assert mail.subject == "Return authorized: RMA-0001 for order SO-0001" and mail.document_id is not None


def test_a_return_without_a_fee_says_so_and_a_warranty_return_says_no_charge_with_its_claim(new_deal):
    from models.return_steps import send_rma
    from models.serials import serial_by_number
    from models.warranty import diagnose, open_claim

    play_direct(new_deal)
    number = ask_back(new_deal, f"{COOLANT}:1", "Too much ordered")
    authorize(number, "0", "")
    text = _text(render("documents/rma.html", _doc(number).context))
    assert "we credit them to you as invoiced, by a credit note. No restocking fee." in text
    assert "A note from us" not in text and "no charge" not in text
    with session_scope() as s:
        claim = open_claim(s, serial_by_number(s, "GLM-GL2000-0002"), "Coolant pump <i>leaks</i>", "mark")
        diagnose(s, claim, _staff(s, "mark"), "Pump seal worn", "return")
        send_rma(s, claim.ret)
        claim_number, rma = claim.number, claim.ret.number
        s.commit()
    _deliver(new_deal)
    assert (claim_number, rma) == ("WC-0001", "RMA-0002")
    ctx = _doc(rma).context
    assert ctx["with_credit"] is False and ctx["claim"] == "WC-0001"
    html = render("documents/rma.html", ctx)
    text = _text(html)
    for piece in ["Return authorization RMA-0002", "Warranty claim WC-0001", "under warranty claim WC-0001",
                  f"1 {LATHE_NAME} {LATHE} 1 GLM-GL2000-0002",
                  "Warranty return: no charge. We inspect the goods and repair or replace them under warranty"]:
        assert piece in text, (piece, text)
    assert "restocking" not in text and "credit them" not in text
    assert "<i>leaks</i>" not in html and "&lt;i&gt;leaks&lt;/i&gt;" in html
    # the claim named once in the sentence, the reason and the engineer's note each a sentence of their own
    assert "under warranty claim WC-0001. Reason: Coolant pump &lt;i&gt;leaks&lt;/i&gt;." in text, text
    assert "A note from us: Pump seal worn." in text and text.count("WC-0001") == 2, text
    assert "Warranty return: no charge." in _pdf_text(html)
    with session_scope() as s:
        mail = s.scalars(select(Email).where(Email.kind == "rma", Email.subject.contains("RMA-0002"))).one()
        s.expunge(mail)
    text_mail, _ = render_email(mail.template, mail.context)
    assert "Your return RMA-0002 for order SO-0001 is authorized, under warranty claim WC-0001." in text_mail
    assert "Warranty return: no charge." in text_mail and "restocking" not in text_mail


def test_a_refused_return_tells_the_customer_the_managers_reason_and_sends_no_rma(new_deal):
    from models.return_steps import refusal_mail, refuse
    from models.returns import return_by_number

    play_direct(new_deal)
    number = ask_back(new_deal, f"{LATHE}:1:{FIRST_LATHE}")
    with session_scope() as s:
        ret = return_by_number(s, number)
        refuse(s, ret, _staff(s, "manager"), "Used <b>two years</b> & [rebuilt](http://evil.example)")
        refusal_mail(s, ret)
        s.commit()
    _deliver(new_deal)
    mail = _mail("return_refused")
    assert mail.subject == "Your return request RMA-0001 for order SO-0001" and mail.document_id is None
    text, html = render_email(mail.template, mail.context)
    assert "Thank you for your return request RMA-0001 for order SO-0001:" in text
    assert f"- 1 × {LATHE_NAME} ({LATHE}), serial numbers {FIRST_LATHE}\n" in text
    assert ("We are sorry that we cannot accept this return. The reason: Used <b>two years</b> & "
            "[rebuilt](http://evil.example).") in text
    assert "Please do not send the goods back." in text
    assert "<b>two years</b>" not in html and "Used &lt;b&gt;two years&lt;/b&gt; &amp;" in html
    assert '<a href="http://evil.example' not in html
    with session_scope() as s:
        assert s.scalars(select(Document).where(Document.kind == "rma")).first() is None


# --- the return's credit note -------------------------------------------------------------------------

@pytest.mark.parametrize("settle", ["refund", "credit"])
def test_the_credit_note_lists_the_goods_received_with_serials_the_fee_and_what_became_of_the_money(
        new_deal, settle):
    number, note = credited_return(new_deal, settle)
    figures = _credited(new_deal, "15")
    goods, fee, credited = figures["goods"], figures["fee"], figures["total"]
    doc = _doc(note)
    ctx = doc.context
    assert (note, ctx["return"]["number"]) == ("CN-0001", "RMA-0001")
    assert (Decimal(ctx["return"]["goods"]), Decimal(ctx["return"]["restocking_fee"]), Decimal(ctx["amount"])) == (
        goods, fee, credited)
    with session_scope() as s:  # what is stored is the total printed
        stored = s.scalars(select(CreditNote).where(CreditNote.number == note)).one()
        assert (stored.amount, stored.restocking_fee) == (credited, fee)
    html = render(doc.template, ctx)
    text = _text(html)

    def usd(value: Decimal) -> str:
        return f"USD {value:,}"

    settled = (f"Refunded to you (bank transfer, refund RFD-0001) {usd(credited)}" if settle == "refund" else
               f"Kept as credit on your account {usd(credited)}")
    for piece in ["Credit note CN-0001", "Credits invoice INV-0001 of", "Return RMA-0001", "Order SO-0001",
                  "This credit note credits the goods you returned under RMA-0001, as invoiced on invoice INV-0001, "
                  "less a restocking fee of 15 %.", f"{LATHE_NAME} {LATHE} S/N {FIRST_LATHE} 1 ",
                  f"Less restocking fee, 15 % of the goods' net – – – 12% −{figures['fee_coolant']:,}",
                  f"Less restocking fee, 15 % of the goods' net – – – 18% −{figures['fee_lathe']:,}",
                  f"Net credited {usd(figures['net'])} Tax credited {usd(figures['tax'])} "
                  f"Total credited {usd(credited)}",
                  f"The goods as invoiced: {usd(figures['net'] + figures['fee_net'])} net",
                  f"The restocking fee we keep: {usd(figures['fee_net'])} net, {usd(figures['fee_tax'])} tax, "
                  f"{usd(fee)} in all.", settled, "Amounts in USD."]:
        assert piece in text, (piece, text)
    assert "cancels" not in text  # a return credits part of the invoice, it does not cancel it
    assert "<script>" not in html and "Reason for the return: Spindle &lt;script&gt;" in html
    cells = [c for line in _pdf_cells(html) for c in line]  # each fact on a line of its own
    for fact in ["Date " + ctx["date"], f"Credits invoice INV-0001 of {ctx['invoice_date']}", "Return RMA-0001",
                 "Order SO-0001"]:
        assert fact in cells, (fact, cells[:20])
    for row in [["Net credited", usd(figures["net"])], ["Tax credited", usd(figures["tax"])],
                ["Total credited", usd(credited)]]:  # the figures a VAT auditor reads, as printed
        assert row in [line[-2:] for line in _pdf_cells(html)], (row, _pdf_cells(html))
    pdf = _pdf_text(html)
    for piece in ["Credit note CN-0001", "Return RMA-0001", f"S/N {FIRST_LATHE}", f"−{figures['fee_lathe']:,}",
                  usd(credited), 'Reason for the return: Spindle <script>alert(1)', '& "noise" {{ 7*7 }}.']:
        assert piece in pdf, (piece, pdf)
    text_mail, html_mail = render_email("emails/credit_note", _mail("credit_note").context)
    assert (f"Please find attached credit note CN-0001 for the goods you returned under RMA-0001: {usd(goods)} as "
            f"invoiced on invoice INV-0001, less the restocking fee of {usd(fee)} (15 %), so {usd(credited)} is "
            f"credited to you.") in text_mail, text_mail
    if settle == "refund":
        assert f"We are refunding the {usd(credited)} by bank transfer, quoting CN-0001 (refund RFD-0001)." in text_mail
    else:
        assert f"The {usd(credited)} stays with us as credit on your account" in text_mail
    assert "<script>" not in html_mail


def test_a_return_credited_without_a_fee_credits_the_goods_as_invoiced_and_says_nothing_of_a_fee(new_deal):
    number, note = credited_return(new_deal, "credit", fee_pct="0")
    goods = _sold(new_deal, LATHE, 1) + _sold(new_deal, COOLANT, 2)
    ctx = _doc(note).context
    text = _text(render("documents/credit_note.html", ctx))
    assert ("This credit note credits the goods you returned under RMA-0001, as invoiced on invoice INV-0001. "
            "Reason for the return:") in text
    figures = _credited(new_deal, "0")
    assert (f"Net credited USD {figures['net']:,} Tax credited USD {figures['tax']:,} Total credited USD {goods:,}"
            in text), text
    assert figures["total"] == goods == Decimal(ctx["amount"])
    assert f"Kept as credit on your account USD {goods:,}" in text and "restocking" not in text
    mail_text, _ = render_email("emails/credit_note", _mail("credit_note").context)
    assert ("Please find attached credit note CN-0001 for the goods you returned under RMA-0001: they are credited "
            f"to you in full, as invoiced on invoice INV-0001: USD {goods:,}.") in mail_text, mail_text
    assert "restocking" not in mail_text


def test_the_credit_note_mail_carries_its_signed_portal_link_and_its_page_shows_the_credit(
        new_deal, portal, data_dir):
    number, note = credited_return(new_deal, "credit")
    link = link_in_mail(data_dir / "mail", "Credit note CN-0001", kind="c")
    assert link and link.startswith(portal.url + "/c/"), link
    with PortalCustomer() as customer:
        page = customer.open(link)
        assert page.status_code == 200
        text = _text(page.text)
        credited = Decimal(_doc(note).context["amount"])
        for piece in ["Credit note CN-0001 · Glocial Machineries", f"USD {credited:,} credited for the goods you "
                      "returned under RMA-0001, after a restocking fee of",
                      f"Kept as credit on your account: USD {credited:,}, for your next order (on your account "
                      f"today: USD {credited:,})", "Return RMA-0001", f"S/N {FIRST_LATHE}",
                      "Less restocking fee, 15 % of the goods' net", f"Total credited USD {credited:,}",
                      "Download the credit note as PDF"]:
            assert piece in text, (piece, text)
        assert "<script>" not in page.text
        pdf = customer.open(link + "/pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.content == (data_dir / "documents" / "CN-0001.pdf").read_bytes()
        token = link.rsplit("/", 1)[1]
        tampered = link[: -len(token)] + token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
        assert customer.open(tampered).status_code == 404
        assert customer.open(f"{portal.url}/i/{token}").status_code == 404  # a credit note's link opens no invoice


def test_a_cancels_credit_note_opens_on_its_page_as_it_reads_today(new_deal, portal):
    """The page reads any credit note a link names: a cancel's shows the invoice it reverses."""
    from models.cancellation import cancel_deal
    from models.portal import credit_note_link
    from services.links import url_for

    play_direct(new_deal, until="shipment-1")  # the 30 % deposit is paid, nothing shipped
    with session_scope() as s:
        cancel_deal(s, deal_by_number(s, new_deal), _staff(s, "manager"), "Plant <i>postponed</i>", "refund")
        s.commit()
        note = deal_by_number(s, new_deal).credit_notes[0]
        link = url_for(credit_note_link(note, note.deal.customer.primary_contact.email))
    with PortalCustomer() as customer:
        page = customer.open(link)
    text = _text(page.text)
    assert page.status_code == 200
    for piece in ["Credit note CN-0001", "Deposit invoice DEP-0001 is cancelled in full: nothing is due on it.",
                  "Refunded to you: USD 52,255.10 by bank transfer (refund RFD-0001), quoting CN-0001.",
                  "Reason: Plant &lt;i&gt;postponed&lt;/i&gt;.", "Credited USD 52,255.10"]:
        assert piece in text, (piece, text)
    assert "<i>postponed</i>" not in page.text and "Return RMA" not in text


def test_whatever_is_typed_as_reason_or_note_reads_as_typed_and_adds_no_markup(new_deal):
    """Any reason (the return's) and note (the manager's, to the customer) shows as its escaped
    text on the RMA, its email and the credit note, and adds not one tag to them."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from markupsafe import escape

    from services.rendering import sentence

    number, note = credited_return(new_deal)
    rma, credit_note = _doc(number).context, _doc(note).context

    def rendered(reason: str, typed_note: str) -> dict[str, str]:
        rma_ctx = {**rma, "reason": reason, "note": typed_note}
        note_ctx = {**credit_note, "return": {**credit_note["return"], "reason": reason}}
        return {"rma": render("documents/rma.html", rma_ctx), "rma mail": render_email("emails/rma", rma_ctx)[1],
                "credit note": render("documents/credit_note.html", note_ctx),
                "credit note mail": render_email("emails/credit_note", note_ctx)[1]}

    plain = rendered("x", "y")

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(reason=st.text(min_size=1, max_size=60), typed_note=st.text(min_size=1, max_size=60))
    def reads_as_typed(reason: str, typed_note: str) -> None:
        for name, html in rendered(reason, typed_note).items():
            assert html.count("<") == plain[name].count("<"), name
            if not name.endswith("mail"):  # the mails name the return, the documents its reason
                assert str(escape(sentence(reason))) in html, name
            if name.startswith("rma"):
                assert str(escape(typed_note)) in html, name

    reads_as_typed()
