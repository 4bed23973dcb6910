"""What the customer reads of a deposit: the deposit invoice, the final invoice that deducts it,
the payment receipts, the credit note of a cancelled order, the emails and the invoice pages of
the portal, each rendered from the deal the scenario plays (and every typed value escaped)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from dealflow.customer import PortalCustomer, link_in_mail
from dealflow.scenario import SCRIPT, Move, play_direct, start_scenario_deal
from models import Document, Email, Invoice, StaffUser
from models.cancellation import cancel_deal
from models.company import the_company
from models.deal import deal_by_number
from services.db import session_scope
from services.rendering import render, render_email

HOSTILE = '<script>alert(1)</script> & "Söhne" {{ 7*7 }} Ltd'
HOSTILE_TAX_ID = "DE<b>811</b>"
HOSTILE_PO = "PO <4500>/22"
HOSTILE_REASON = "Plant <i>postponed</i> & [re-planned](http://evil.example)"


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _docs(deal: str) -> dict[str, Document]:
    with session_scope() as s:
        docs = s.scalars(select(Document).where(Document.deal_id == deal_by_number(s, deal).id)).all()
        s.expunge_all()
    return {d.number: d for d in docs}


def _mails(deal: str) -> list[Email]:
    with session_scope() as s:
        mails = s.scalars(select(Email).where(Email.deal_id == deal_by_number(s, deal).id).order_by(Email.id)).all()
        s.expunge_all()
    return mails


def _mail(deal: str, kind: str, number: str | None = None) -> tuple[str, str]:
    """(text, html) of the deal's email of ``kind`` (about document ``number``), as rendered to send."""
    mail = next(m for m in _mails(deal) if m.kind == kind and (number is None or m.context["number"] == number))
    return render_email(mail.template, mail.context)


def _script(before: str = "shipping", po: str = "") -> list[Move]:
    """The scenario's moves in the order a deposit ``before`` QA and release, or shipping, takes
    them (a deposit before release is paid before QA), the approval carrying ``po``."""
    moves = [m for m in SCRIPT if m.step != "deposit"]
    deposit = next(m for m in SCRIPT if m.step == "deposit")
    approve = moves[5]
    moves[5] = Move(approve.step, approve.by, {**approve.payload, "po_number": po}, approve.say)
    at = 6 if before == "release" else 8  # after the approval, or after QA passed
    return [*moves[:at], deposit, *moves[at:]]


def deposit_deal(company: str, before: str = "shipping", until: str | None = None, po: str = "",
                 tax_id: str = "") -> str:
    """A deal of ``company``, whose terms ask for a 30 % deposit ``before`` shipping or release,
    played until ``until`` (a wait's key) or to its end."""
    number = start_scenario_deal(company, restock=3, restock_key=company)
    play_direct(number, script=_script(before, po), until="handoff")
    with session_scope() as s:
        customer = deal_by_number(s, number).customer
        customer.deposit_pct, customer.deposit_before, customer.tax_id = Decimal("30"), before, tax_id
        s.commit()
    play_direct(number, script=_script(before, po), until=until)
    return number


def cancel(deal: str, settle: str = "refund", reason: str = HOSTILE_REASON) -> None:
    with session_scope() as s:
        manager = s.scalars(select(StaffUser).where(StaffUser.handle == "manager")).one()
        cancel_deal(s, deal_by_number(s, deal), manager, reason, settle)
        s.commit()


# --- the deposit invoice ------------------------------------------------------------------------------

def test_a_deposit_before_release_says_so_with_tax_ids_po_and_currency_and_escapes_what_was_typed(db):
    with session_scope() as s:
        the_company(s).tax_id = "US-99-1234567"
        s.commit()
    deal = deposit_deal(HOSTILE, before="release", until="deposit-1", po=HOSTILE_PO, tax_id=HOSTILE_TAX_ID)
    doc = _docs(deal)["DEP-0001"]
    html = render(doc.template, doc.context)
    text = _text(html)
    assert doc.kind == "deposit_invoice" and doc.context["deposit_before"] == "release"
    for piece in ["Deposit invoice DEP-0001", "Tax ID US-99-1234567", "Order SO-0001",
                  "is confirmed with a 30 % deposit before QA and release: this invoice is that deposit",
                  "Your order goes to QA and release once it is paid, and your final invoice deducts it",
                  "Deposit 30 % of order SO-0001 (tax 12 %)", "Deposit USD 52,255.10",
                  "Deposit due by " + doc.context["due_date"] + " USD 52,255.10", "Amounts in USD."]:
        assert piece in text, piece
    assert "ships once" not in text and "before shipping" not in text
    # what people typed shows as typed, never as markup
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;Söhne&#34;" in html
    assert "<b>811</b>" not in html and "Tax ID DE&lt;b&gt;811&lt;/b&gt;" in html
    assert "Your reference PO &lt;4500&gt;/22" in html
    assert "{{ 7*7 }}" in html and " 49 " not in text
    mail_text, mail_html = _mail(deal, "deposit_invoice")
    assert "a 30 % deposit before QA and release, USD 52,255.10 due by" in mail_text
    assert "Your order goes to QA and release once it is paid, and your final invoice deducts it." in mail_text
    assert "<script>" not in mail_html and HOSTILE not in mail_html
    order_doc = _docs(deal)["SO-0001"]
    order = _text(render(order_doc.template, order_doc.context))
    assert "This order is confirmed with a 30 % deposit before QA and release." in order
    order_mail, _ = _mail(deal, "order")
    assert "It is confirmed with a 30 % deposit before QA and release: our deposit invoice follows" in order_mail


def test_the_final_invoice_lists_what_shipped_then_deducts_the_deposit_paid(new_deal):
    play_direct(new_deal)
    docs = _docs(new_deal)
    invoice = docs["INV-0001"].context
    # 174,183.68 shipped (147,659.00 net + 26,524.68 tax) less the deposit 52,255.10 (44,297.70 + 7,957.40)
    assert invoice["deposit"]["number"] == "DEP-0001"
    assert (invoice["deposit"]["before"], invoice["deposit"]["amount"]) == ("174183.68", "52255.10")
    assert invoice["deposit"]["goods"] == {"subtotal": "159299.00", "discount": "11640.00", "net": "147659.00",
                                           "tax": "26524.68", "total": "174183.68"}
    assert (invoice["deposit"]["net"], invoice["deposit"]["tax"]) == ("44297.70", "7957.40")
    assert invoice["totals"]["total"] == "121928.58" == str(Decimal("174183.68") - Decimal("52255.10"))
    assert [ln["sku"] for ln in invoice["lines"]] == ["CNC-LATHE-2000", "TOOL-KIT-PRO", "CHUCK-3J-250", "COOLANT-20L"]
    text = _text(render("documents/invoice.html", invoice))
    for piece in ["Invoice INV-0001", "Deposit invoice DEP-0001", "Total shipped USD 174,183.68",
                  "Less deposit paid, DEP-0001 (tax 12 %) 12% −269.70 −32.36 −302.06",
                  "Less deposit paid, DEP-0001 (tax 18 %) 18% −44,028.00 −7,925.04 −51,953.04",
                  "Less deposit paid, deposit invoice DEP-0001 −USD 52,255.10", "Net USD 103,361.30",
                  "Tax USD 18,567.28", "Invoice total USD 121,928.58",
                  "Amount due by " + invoice["due_date"] + " USD 121,928.58"]:
        assert piece in text, piece
    assert text.index("CNC-LATHE-2000") < text.index("Total shipped") < text.index("Less deposit paid")
    mail_text, _ = _mail(new_deal, "invoice")
    assert ("USD 121,928.58 due by" in mail_text and "It deducts the deposit you paid on deposit invoice DEP-0001 "
            "(USD 52,255.10) from the USD 174,183.68 shipped." in mail_text), mail_text


def test_each_payment_receipt_names_the_invoice_it_was_paid_on(new_deal):
    play_direct(new_deal)
    docs = _docs(new_deal)
    deposit_receipt = _text(render("documents/payment.html", docs["PAY-0001"].context))
    assert "Deposit invoice DEP-0001 Deposit invoice total USD 52,255.10" in deposit_receipt
    assert "Deposit invoice DEP-0001 is paid in full. Your final invoice deducts this deposit." in deposit_receipt
    final_receipt = _text(render("documents/payment.html", docs["PAY-0003"].context))
    assert "Invoice INV-0001 is paid in full. Thank you" in final_receipt and "deducts" not in final_receipt
    text, html = _mail(new_deal, "payment", "PAY-0001")
    assert "we received USD 52,255.10 against deposit invoice DEP-0001 (payment PAY-0001)" in text
    assert "The deposit invoice is now paid in full. Your final invoice deducts this deposit." in text
    assert "against deposit invoice DEP-0001" in html
    text, _ = _mail(new_deal, "payment", "PAY-0002")
    assert "against invoice INV-0001" in text and "USD 73,157.15 remains due." in text
    # the estimate the customer accepted already said it, in the terms the acceptance repeats
    estimate = _text(render("documents/estimate.html", docs["EST-0001-R2"].context))
    assert ("Delivery after QA sign-off at our works; a 30 % deposit before shipping; the balance 30 days from "
            "invoice.") in estimate


# --- a cancelled order's deposit ----------------------------------------------------------------------

@pytest.mark.parametrize("settle, said", [
    ("refund", ["Refunded to you (bank transfer, refund RFD-0001) USD 52,255.10",
                "We pay the amount back to you by bank transfer, quoting CN-0001."]),
    ("credit", ["Kept as credit on your account USD 52,255.10", "The credit counts towards your next order"]),
])
def test_the_credit_note_of_a_paid_deposit_says_what_becomes_of_the_money(db, settle, said):
    deal = deposit_deal(HOSTILE, until="shipment-1")
    cancel(deal, settle)
    doc = _docs(deal)["CN-0001"]
    html = render(doc.template, doc.context)
    text = _text(html)
    for piece in ["Credit note CN-0001", "Credits deposit invoice DEP-0001 of", "Order SO-0001",
                  "This credit note cancels deposit invoice DEP-0001 in full.", "Credited USD 52,255.10",
                  "Amounts in USD.", *said]:
        assert piece in text, piece
    assert "<i>postponed</i>" not in html and "Plant &lt;i&gt;postponed&lt;/i&gt; &amp;" in html
    note_text, note_html = _mail(deal, "credit_note")
    cancelled_text, cancelled_html = _mail(deal, "cancellation")
    assert "It cancels deposit invoice DEP-0001 of" in note_text and "so nothing is due on it" in note_text
    assert "We are writing to confirm that your order SO-0001 is cancelled. The reason: " + HOSTILE_REASON \
        in cancelled_text
    if settle == "refund":
        assert "We are refunding the USD 52,255.10 you paid, by bank transfer, quoting CN-0001." in note_text
        assert "The USD 52,255.10 you paid on deposit invoice DEP-0001 is refunded to you by bank transfer." \
            in cancelled_text
    else:
        assert "stays with us as credit on your account, and counts towards your next order" in note_text
        assert "stays with us as credit on your account, for your next order" in cancelled_text
    assert "Credit note CN-0001, which cancels deposit invoice DEP-0001, comes in a separate email." in cancelled_text
    assert "We are sorry for any inconvenience." in cancelled_text
    for html_part in (note_html, cancelled_html):
        assert "<i>postponed</i>" not in html_part and "<script>" not in html_part
        assert '<a href="http://evil.example' not in html_part


def test_a_deposit_never_paid_is_credited_with_nothing_to_refund(db):
    deal = deposit_deal("Unpaid Deposit Ltd", until="deposit-1")
    cancel(deal, "refund", "Customer withdrew")
    text = _text(render("documents/credit_note.html", _docs(deal)["CN-0001"].context))
    assert "Nothing was paid on DEP-0001; nothing is due on it USD 0.00" in text and "Refunded" not in text
    cancelled, _ = _mail(deal, "cancellation")
    assert "Nothing is due on deposit invoice DEP-0001." in cancelled and "refunded" not in cancelled


def test_a_declined_credit_is_told_kindly_with_the_reason(new_deal):
    play_direct(new_deal, until="handoff")
    with session_scope() as s:
        deal_by_number(s, new_deal).customer.credit_limit = Decimal("100000")  # the order is 174,183.68
        s.commit()
    reject = Move("credit", "manager", {"decision": "reject", "reason": "Two invoices <b>unpaid</b> since May"}, "")
    play_direct(new_deal, script=[*SCRIPT[:6], reject])
    text, html = _mail(new_deal, "credit_declined")
    assert "Thank you for accepting our estimate EST-0001-R2 (USD 174,183.68), and for the trust it shows." in text
    assert ("we cannot confirm this order on its present terms. The reason: Two invoices <b>unpaid</b> since May."
            in text)  # what credit control typed, ended as a sentence
    assert "a deposit, a payment in advance or a smaller first delivery" in text
    assert "<b>unpaid</b>" not in html and "&lt;b&gt;unpaid&lt;/b&gt;" in html


def test_every_document_and_email_of_a_deposit_deal_escapes_the_customers_name(db):
    deal = deposit_deal(HOSTILE, until="shipment-1", po=HOSTILE_PO, tax_id=HOSTILE_TAX_ID)
    cancel(deal, "credit")
    docs = _docs(deal)
    assert {"DEP-0001", "PAY-0001", "CN-0001", "SO-0001"} <= set(docs)
    for doc in docs.values():
        html = render(doc.template, doc.context)
        assert "<script>" not in html and "&lt;script&gt;" in html, doc.number
    for mail in _mails(deal):
        text, html = render_email(mail.template, mail.context)
        assert "<script>" not in html, mail.kind
        assert "<b>811</b>" not in html and "<i>postponed</i>" not in html, mail.kind


# --- the portal's invoice pages -----------------------------------------------------------------------

@pytest.fixture
def customer():
    with PortalCustomer() as c:
        yield c


def test_the_deposit_invoice_link_opens_its_page_until_and_after_it_is_credited(db, portal, customer, data_dir):
    deal = deposit_deal("Deposit Page Ltd", until="deposit-1")
    link = link_in_mail(data_dir / "mail", "Deposit invoice DEP-0001", kind="i")
    assert link and link.startswith(portal.url + "/i/"), link
    page = _text(customer.open(link).text)
    for piece in ["Deposit invoice DEP-0001", "USD 52,255.10 due by",
                  "is confirmed with a 30 % deposit before shipping: this invoice is that deposit.",
                  "Your order ships once it is paid", "Deposit invoice total USD 52,255.10", "Balance due USD 52,255.10",
                  "Download the deposit invoice as PDF"]:
        assert piece in page, piece
    pdf = customer.open(link + "/pdf")
    assert pdf.content == (data_dir / "documents" / "DEP-0001.pdf").read_bytes()
    cancel(deal, "refund", "Customer withdrew")
    page = _text(customer.open(link).text)
    assert "Deposit invoice DEP-0001 is cancelled by credit note CN-0001 of" in page
    assert "nothing is due on it" in page and "Please pay" not in page
    assert "Deposit invoice total USD 52,255.10 Cancelled by credit note CN-0001 −USD 52,255.10 Balance due USD 0.00" \
        in page
    assert "is confirmed with" not in page  # the order it was the deposit of is cancelled too


def test_the_final_invoice_page_shows_the_deposit_deducted_and_the_balance(new_deal, portal, customer, data_dir):
    play_direct(new_deal, until="payment-2")
    link = link_in_mail(data_dir / "mail", "Invoice INV-0001", kind="i")
    page = _text(customer.open(link).text)
    for piece in ["Invoice INV-0001", "USD 73,157.15 due by", "Total shipped USD 174,183.68",
                  "Less deposit paid, deposit invoice DEP-0001 −USD 52,255.10", "Invoice total USD 121,928.58",
                  "Received USD 48,771.43", "Balance due USD 73,157.15", "PAY-0002"]:
        assert piece in page, piece
    assert "PAY-0001" not in page  # the deposit's payment is on the deposit invoice's page
    with session_scope() as s:
        invoices = {i.number: i.kind for i in s.scalars(select(Invoice))}
    assert invoices == {"DEP-0001": "deposit", "INV-0001": "final"}
