"""Each document and email template, rendered from the Glocial deal: the numbers a customer reads."""

from __future__ import annotations

import email
import re
from email import policy

import pytest
from sqlalchemy import select

from dealflow.scenario import LEAD, play_direct
from models import Document, Email, process
from models.pipeline import add_lead
from services.db import session_scope
from services.rendering import render, render_email


@pytest.fixture
def documents(new_deal) -> dict[str, Document]:
    play_direct(new_deal)
    with session_scope() as s:
        docs = s.scalars(select(Document)).all()
        s.expunge_all()
    return {d.number: d for d in docs}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_estimate_revision_2_shows_lines_totals_and_what_changed(documents):
    html = render("documents/estimate.html", documents["EST-0001-R2"].context)
    text = _text(html)
    # lathes 3 × 48,500 = 145,500 − 8 % (11,640) = 133,860, tax 18 % 24,094.80; tool kits 7,350 + 1,323;
    # chucks 5,550 + 999; coolant 10 × 89.90 = 899 + 12 % 107.88. Subtotal 159,299; net 147,659;
    # tax 26,524.68; total 174,183.68.
    for expected in ["Estimate EST-0001-R2", "Riverside Metalworks Ltd", "Revision 2", "CNC-LATHE-2000",
                     "8% (−11,640.00)", "133,860.00", "Subtotal USD 159,299.00", "Discount −USD 11,640.00",
                     "Net USD 147,659.00", "Tax USD 26,524.68", "Total USD 174,183.68", "CNC-LATHE-2000: quantity 2 → 3", "CNC-LATHE-2000: discount 5.00% → 8.00%",
                     "added 10 × COOLANT-20L", "Three lathes instead of two"]:
        assert expected in text, expected


def test_estimate_revision_1_has_no_changes_block(documents):
    text = _text(render("documents/estimate.html", documents["EST-0001-R1"].context))
    assert "USD 118,885.00" in text and "Changed since" not in text


@pytest.mark.parametrize("number, template, expected", [
    ("SO-0001", "documents/order.html", ["Order confirmation SO-0001", "From estimate EST-0001-R2", "USD 174,183.68"]),
    ("RCPT-0001", "documents/receipt.html", ["Sales receipt RCPT-0001", "Order SO-0001", "inspection 2",
                                              "USD 174,183.68"]),
    ("SHP-0001", "documents/shipment.html", ["Delivery note SHP-0001", "DHLF-7845120", "4 Canal Street",
                                             "The rest of your order follows"]),
    ("SHP-0002", "documents/shipment.html", ["Delivery note SHP-0002", "This shipment completes your order"]),
    # the final invoice: what shipped (174,183.68) less the 30 % deposit paid (52,255.10) = 121,928.58
    ("INV-0001", "documents/invoice.html", ["Invoice INV-0001", "Order SO-0001", "Total shipped USD 174,183.68",
                                            "Less deposit paid, deposit invoice DEP-0001 −USD 52,255.10",
                                            "Invoice total USD 121,928.58", "Amount due by"]),
    ("PAY-0001", "documents/payment.html", ["Payment receipt PAY-0001", "Deposit invoice DEP-0001",
                                            "USD 52,255.10", "ref. RMW-DEP-001", "Deposit invoice DEP-0001 is paid in full"]),
    # 40 % of 121,928.58
    ("PAY-0002", "documents/payment.html", ["Payment receipt PAY-0002", "Invoice INV-0001", "USD 48,771.43",
                                            "USD 73,157.15", "ref. RMW-ADV-001"]),
    ("PAY-0003", "documents/payment.html", ["USD 0.00", "Invoice INV-0001 is paid in full"]),
])
def test_each_document_shows_what_its_reader_needs(documents, number, template, expected):
    text = _text(render(template, documents[number].context))
    for piece in expected:
        assert piece in text, piece


def test_every_email_template_renders_text_and_html(new_deal):
    play_direct(new_deal)
    with session_scope() as s:
        mails = s.scalars(select(Email).order_by(Email.id)).all()
        assert len({m.kind for m in mails}) == 8  # the deposit invoice's too
        for m in mails:
            text, html = render_email(m.template, m.context)
            assert m.context["number"] in text and m.context["number"] in html


def test_the_estimate_email_file_carries_both_parts_and_the_document(new_deal, data_dir):
    play_direct(new_deal, until="decision-rev-1")
    eml = next((data_dir / "mail").glob("*-estimate.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert msg["To"] == LEAD["email"]
    assert msg["Subject"] == "Estimate EST-0001-R1 for Riverside Metalworks Ltd"
    assert msg["Message-ID"].startswith("<dealflow.1.estimate.") and msg["Message-ID"].endswith("@glocial.example>")
    assert msg["From"] == "Glocial Machineries <sales@glocial.example>"
    parts = {p.get_content_type(): p for p in msg.walk()}
    assert "118,885.00" in parts["text/plain"].get_content()
    names = [p.get_filename() for p in msg.walk() if p.get_filename()]
    assert names == ["EST-0001-R1.pdf"]


def test_a_customer_name_is_escaped_in_html_and_literal_in_text(db, data_dir):
    hostile = "<script>alert(1)</script> {{ 7*7 }} Ltd"
    with session_scope() as s:
        lead = add_lead(s, **(LEAD | {"company": hostile}))
        number = process.start_deal(s, lead.id).number
        s.commit()
    play_direct(number, until="decision-rev-1")
    with session_scope() as s:
        doc = s.scalars(select(Document)).one()
        html = render(doc.template, doc.context)
        text, _ = render_email("emails/estimate", doc.context)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{ 7*7 }}" in html and "49" not in _text(html).replace("149", "")
    assert hostile in text


def test_the_estimate_reminder_and_the_dunning_letters_say_what_is_late(new_deal):
    from datetime import date, timedelta

    from models import EstimateRevision, Invoice
    from models.documents import dunning_context, estimate_reminder_context

    play_direct(new_deal, until="payment-1")
    with session_scope() as s:
        rev = s.scalars(select(EstimateRevision).where(EstimateRevision.revision == 2)).one()
        rev_number = rev.number
        today = rev.sent_at.date() + timedelta(days=7)
        reminder = _text(render("documents/estimate_reminder.html", estimate_reminder_context(rev, 1, today)))
        invoice = s.scalars(select(Invoice).where(Invoice.kind == "final")).one()
        letters = {level: _text(render("documents/dunning.html",
                                       dunning_context(invoice, level, invoice.due_date + timedelta(days=days))))
                   for level, days in [(1, 1), (3, 30)]}
        text, html = render_email("emails/dunning", dunning_context(invoice, 1, date.today()))
    assert f"Reminder 1 on estimate {rev_number}-REM1" in reminder
    assert "USD 174,183.68" in reminder and "(23 days from today)" in reminder
    assert "Payment reminder: INV-0001-D1" in letters[1] and "1 days ago" in letters[1]
    assert "Overdue USD 121,928.58" in letters[1] and "please pay within 7 days" in letters[1]
    assert "Final notice: INV-0001-D3" in letters[3] and "30 days overdue" in letters[3]
    assert "INV-0001" in text and "121,928.58" in html


def _pdf_cells(html: str) -> list[list[str]]:
    """The PDF's text as it is laid out: a list per printed line of what stands apart on it (the
    customer's column and the deal's column side by side are two cells of one line)."""
    import io

    from pypdf import PdfReader

    from services.rendering import render_pdf

    lines = []
    for page in PdfReader(io.BytesIO(render_pdf(html))).pages:
        for line in page.extract_text(extraction_mode="layout").splitlines():
            cells = [" ".join(c.split()) for c in re.split(r"\s{3,}", line.strip()) if c.strip()]
            if cells:
                lines.append(cells)
    return lines


def _all_kinds(documents) -> dict[str, tuple[str, dict]]:
    """Every document kind (each template under templates/documents) with a context of the deal."""
    from datetime import timedelta

    from models import EstimateRevision, Invoice
    from models.documents import dunning_context, estimate_reminder_context

    by_number = {"estimate": "EST-0001-R2", "order": "SO-0001", "receipt": "RCPT-0001", "shipment": "SHP-0001",
                 "invoice": "INV-0001", "payment": "PAY-0001", "deposit_invoice": "DEP-0001"}
    kinds = {kind: (documents[n].template, dict(documents[n].context)) for kind, n in by_number.items()}
    with session_scope() as s:
        rev = s.scalars(select(EstimateRevision).where(EstimateRevision.revision == 2)).one()
        kinds["estimate_reminder"] = ("documents/estimate_reminder.html",
                                      estimate_reminder_context(rev, 1, rev.sent_at.date() + timedelta(days=7)))
        invoice = s.scalars(select(Invoice).where(Invoice.kind == "final")).one()
        kinds["dunning"] = ("documents/dunning.html",
                            dunning_context(invoice, 1, invoice.due_date + timedelta(days=3)))
        kinds["credit_note"] = ("documents/credit_note.html", _a_credit_note(s))
        kinds["rma"] = ("documents/rma.html", _an_rma(s))
    return kinds


def _a_credit_note(s) -> dict:
    """The context of a credit note of the deal's (paid) deposit invoice, made by the domain and
    never kept (a won deal is not cancelled: the transaction is rolled back)."""
    from models import Invoice, StaffUser
    from models.credit_notes import credit_invoice
    from models.documents import credit_note_context

    deposit = s.scalars(select(Invoice).where(Invoice.kind == "deposit")).one()
    manager = s.scalars(select(StaffUser).where(StaffUser.handle == "manager")).one()
    context = credit_note_context(credit_invoice(s, deposit, "refund", "Order cancelled", manager))
    s.rollback()
    return context


def _an_rma(s) -> dict:
    """The context of the RMA of a lathe of the deal coming back, made by the domain and never kept."""
    from models import StaffUser
    from models.deal import Deal
    from models.return_documents import rma_context
    from models.return_steps import authorize
    from models.returns import start_return

    ret = start_return(s, s.scalars(select(Deal)).one(), "CNC-LATHE-2000:1", "Wrong spindle", "sofia")
    authorize(s, ret, s.scalars(select(StaffUser).where(StaffUser.handle == "manager")).one(), "10", "")
    context = rma_context(ret)
    s.rollback()
    return context


def test_every_document_kind_prints_each_fact_on_a_line_of_its_own(documents):
    from pathlib import Path

    kinds = _all_kinds(documents)
    templates = {p.stem for p in (Path(__file__).parents[1] / "templates" / "documents").glob("[!_]*.html")}
    assert set(kinds) == templates  # a new kind of document is laid out and checked here too
    facts = {"shipment": ["Order SO-0001 (shipment 1)", "Carrier DHL Freight, tracking DHLF-7845120"],
             "invoice": ["Order SO-0001", "Deposit invoice DEP-0001"], "order": ["From estimate EST-0001-R2"],
             "deposit_invoice": ["Order SO-0001", "Due " + kinds["deposit_invoice"][1]["due_date"]],
             "credit_note": ["Credits deposit invoice DEP-0001 of " + kinds["deposit_invoice"][1]["date"]],
             "payment": ["Deposit invoice DEP-0001"],
             "rma": ["Authorized " + kinds["rma"][1]["date"], "Order SO-0001"],
             "estimate": ["Revision 2"], "receipt": ["Order SO-0001"]}
    for kind, (template, context) in kinds.items():
        lines = _pdf_cells(render(template, {**context, "customer_po": "4500-2231"}))
        cells = [c for line in lines for c in line]
        assert ["Customer", "Deal"] in lines, (kind, lines[:12])
        assert ["Riverside Metalworks Ltd", "DEAL-0001"] in lines, (kind, lines[:12])
        # the customer's PO stands on its line, after the deal's facts, never run into them
        assert "Your reference 4500-2231" in cells, (kind, lines[:14])
        assert not any("4500-2231" in c and c != "Your reference 4500-2231" for c in cells), (kind, lines[:14])
        for fact in facts.get(kind, []):
            assert fact in cells, (kind, fact, lines[:14])


def test_a_delivery_note_without_an_address_has_no_ship_to_heading(documents):
    context = dict(documents["SHP-0001"].context)
    with_address = [c for line in _pdf_cells(render("documents/shipment.html", context)) for c in line]
    at = with_address.index("Ship to")  # the address under it, line by line
    assert with_address[at + 1: at + 3] == ["4 Canal Street", "Riverside 40213"], with_address
    context["customer"] = {**context["customer"], "shipping_address": "", "billing_address": ""}
    lines = _pdf_cells(render("documents/shipment.html", context))
    assert not any("Ship to" in c for line in lines for c in line), lines[:14]
    # nor an empty line where the address would be: the contact is followed by the next fact
    assert ["Priya Raman", "Shipped " + context["date"]] in lines, lines[:14]


def test_the_estimate_email_is_signed_by_its_engineer_under_kind_regards(new_deal):
    play_direct(new_deal, until="decision-rev-1")
    with session_scope() as s:
        mail = s.scalars(select(Email).where(Email.kind == "estimate")).one()
        text, html = render_email(mail.template, mail.context)
    assert "\nKind regards,\nMark Henry\nGlocial Machineries\n" in text, text[-300:]
    assert "Kind regards,<br>Mark Henry<br>Glocial Machineries<br>" in html


def test_the_catalogue_shows_prices_with_their_currency(db):
    from click.testing import CliRunner

    from dealflow.cli import main

    listed = CliRunner().invoke(main, ["product", "list"]).output
    assert "48,500.00 USD" in listed and "48500.00 " not in listed
    added = CliRunner().invoke(main, ["product", "add", "PART-1", "--name", "Part", "--price", "12.5",
                                      "--tax-rate", "10", "--no-qa"]).output
    assert added.startswith("added PART-1: Part, 12.50 USD (tax 10.00 %)"), added
