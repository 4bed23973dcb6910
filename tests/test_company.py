"""A team's own company from the first command: `init` sets up the company and its first manager
(and nothing of Glocial unless asked), `company show/edit` change it, and a company set up as
Kanto Precision (JPY, 60 days) sends its documents and emails in its own name."""

from __future__ import annotations

import email
import json
import os
import re
from email import policy
from email.utils import parseaddr
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from dealflow.cli import main
from models import AuditEntry, Product, StaffUser
from models.company import FIELDS, Company, company_values
from models.errors import ValidationError
from services.db import engine_for, session_scope

from .conftest import PG_URL

KANTO = ["--company-name", "Kanto Precision K.K.", "--address", "2-3-1 Marunouchi\\nTokyo 100-0005",
         "--phone", "+81 3 5555 0100", "--email", "sales@kanto.example", "--tax-id", "T1234567890123",
         "--bank", "MUFG Bank, Marunouchi branch, 001-1234567", "--currency", "jpy", "--payment-terms", "60"]
KEN = ["--manager", "ken", "--manager-name", "Ken Sato", "--manager-email", "ken@kanto.example"]


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def fresh_db(_template, tmp_path, monkeypatch) -> str:
    """A database no one has set up: no company, no staff, no products (``init`` makes the tables)."""
    from models import Base

    if PG_URL:
        engine = engine_for(PG_URL)
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DEALFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DEALFLOW_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "SMTP_PASSWORD_SECRET_BLOCK"):
        monkeypatch.delenv(name, raising=False)
    yield url
    if PG_URL:  # the next test's `db` fixture seeds again what it needs
        with engine_for(PG_URL).begin() as conn:
            conn.execute(text("DELETE FROM company"))
    else:
        engine_for(url).dispose()


def _count(model) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_init_sets_up_the_company_and_its_first_manager_and_nothing_of_glocial(fresh_db):
    code, out, err = run("init", *KANTO, *KEN)
    assert (code, err) == (0, ""), err
    assert out.startswith("database ready at ") and "Kanto Precision K.K. (JPY, 60 days' terms); added 1 staff and " \
                                                      "0 products" in out
    assert "first manager: ken. Scan this with an authenticator app" in out and "otpauth://totp/dealflow:ken?" in out
    assert "█" in out  # the QR code, in the terminal
    with session_scope() as s:
        company = s.get(Company, 1).as_dict()
        people = [(p.handle, p.role_list, p.enrolled) for p in s.scalars(select(StaffUser))]
    assert company == {"name": "Kanto Precision K.K.", "address": "2-3-1 Marunouchi\nTokyo 100-0005",
                       "phone": "+81 3 5555 0100", "email": "sales@kanto.example", "tax_id": "T1234567890123",
                       "bank": "MUFG Bank, Marunouchi branch, 001-1234567", "currency": "JPY",
                       "mail_from": "sales@kanto.example", "payment_terms_days": 60, "deposit_pct": "0.00",
                       "deposit_before": "shipping", "credit_overdue_days": 30}
    # the one person enrolled is the one who was shown the QR code: no secret no one holds
    assert people == [("ken", ["manager"], True)] and _count(Product) == 0
    shown = json.loads(run("company", "show", "--json")[1])
    assert shown == company
    # init again: nothing more, and the same details given again are no conflict
    code, out, _ = run("init", *KANTO, "--json")
    assert code == 0 and json.loads(out)["staff"] == 0 and json.loads(out)["first_manager"] is None


def test_init_without_the_companys_details_says_what_is_needed_and_sets_up_nothing(fresh_db):
    code, _, err = run("init")
    assert (code, err) == (2, "error: name: your company's name is needed (--company-name, or all details with "
                              "--from FILE); or --demo-data for the Glocial demo\n")
    code, _, err = run("init", *KANTO)
    assert (code, err) == (2, "error: manager: the first manager is needed (--manager HANDLE --manager-name NAME "
                              "--manager-email EMAIL); they add the rest of the team\n")
    code, _, err = run("init", *KANTO[:-4], "--currency", "yen", *KEN)
    assert (code, err) == (2, "error: currency: YEN is not an ISO 4217 currency code (USD, EUR, JPY, GBP, …)\n")
    assert _count(Company) == 0 and _count(StaffUser) == 0  # nothing half-written


def test_init_asks_at_a_terminal_for_what_is_missing(fresh_db, monkeypatch):
    import dealflow.cli.setup

    monkeypatch.setattr(dealflow.cli.setup, "_at_a_terminal", lambda: True)  # a person at a terminal types the answers
    answers = "\n".join(["Kanto Precision K.K.", "Tokyo", "", "sales@kanto.example", "", "MUFG 001", "JPY", "",
                         "60", "ken", "Ken Sato", "ken@kanto.example"]) + "\n"
    result = CliRunner().invoke(main, ["init"], input=answers)
    assert result.exit_code == 0, result.output
    assert "Your company, as documents and emails will show it" in result.output
    with session_scope() as s:
        company = s.get(Company, 1)
        assert (company.name, company.currency, company.mail_from, company.payment_terms_days) == (
            "Kanto Precision K.K.", "JPY", "sales@kanto.example", 60)
        assert [p.handle for p in s.scalars(select(StaffUser))] == ["ken"]


def test_demo_data_is_glocial_and_only_when_asked(fresh_db):
    code, out, _ = run("init", "--demo-data", "--json")
    got = json.loads(out)
    assert code == 0 and (got["staff"], got["products"], got["company"]["name"]) == (6, 6, "Glocial Machineries")
    assert got["first_manager"] is None  # the demo has its manager


def test_a_company_is_changed_by_company_edit_field_by_field_with_one_clear_line(db):
    code, _, err = run("company", "edit", "--email", "not an address")
    assert (code, err) == (2, "error: email: must be one e-mail address, got 'not an address'\n")
    code, _, err = run("company", "edit")
    assert code == 2 and err.startswith("error: company edit: say what changes")
    code, out, _ = run("company", "edit", "--bank", "IBAN DE00 1234", "--payment-terms", "45")
    assert code == 0 and out.startswith("changed: bank, payment_terms_days\n")
    with session_scope() as s:
        company = s.get(Company, 1)
        assert (company.bank, company.payment_terms_days, company.email) == ("IBAN DE00 1234", 45,
                                                                            "sales@glocial.example")
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "company.edited")).one()
        assert entry.details["fields"] == ["bank", "payment_terms_days"]
    code, _, err = run("company", "edit", "--currency", "EUR")  # the catalogue's prices are in USD
    assert (code, err) == (2, "error: currency: stays USD: the catalogue's prices, customers and deals are in it "
                              "already, and changing it would relabel their amounts\n")
    code, _, err = run("init", "--company-name", "Other Ltd")
    assert (code, err) == (2, "error: name: the company is set up already; change it with "
                              "`dealflow company edit --name …`\n")


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(list(FIELDS)), value=st.text(max_size=1200))
def test_any_company_detail_is_accepted_as_its_rule_says_or_refused_naming_its_field(field, value):
    try:
        got = company_values({field: value}, new=False)
    except ValidationError as exc:
        assert exc.field == field and str(exc).startswith(f"{field}: ")
    else:
        assert set(got) == {field}


def test_an_installation_from_before_keeps_the_letterhead_it_printed(tmp_path, monkeypatch):
    from alembic import command

    from services.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0012")
    with engine_for(url).begin() as conn:
        conn.execute(text("INSERT INTO staff_users (handle, name, email, roles, active) "
                          "VALUES ('ana', 'Ana', 'ana@x.example', 'manager', 1)"))
    monkeypatch.setenv("DEALFLOW_COMPANY_NAME", "Old Letterhead GmbH")
    command.upgrade(cfg, "head")
    with engine_for(url).connect() as conn:
        assert conn.execute(text("SELECT name, currency FROM company")).all() == [("Old Letterhead GmbH", "USD")]
    fresh = f"sqlite:///{tmp_path / 'new.db'}"
    command.upgrade(alembic_config(fresh), "head")
    with engine_for(fresh).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM company")).scalar() == 0  # a new one: `init` asks


def test_kanto_precision_sends_everything_in_its_own_name_in_yen_with_its_60_days(fresh_db, monkeypatch):
    """A fresh installation set up for Kanto Precision (JPY, 60 days), its catalogue in yen: the
    whole deal's documents and emails name Kanto, never Glocial; amounts are in yen; the estimate's
    terms (60 days) are the ones the portal's acceptance repeats."""
    from dealflow.scenario import LEAD, play_direct
    from models import Contact, Customer, Deal, Document, Email, process, seed
    from models.pipeline import add_lead
    from services import keys
    from services.rendering import render

    assert run("init", *KANTO, *KEN)[0] == 0
    with session_scope() as s:  # the team and a catalogue (the scenario's people and products), in yen
        seed.load(s, keys.cipher())
        s.query(Contact).delete()  # the lead's company is a new customer here: on Kanto's terms
        s.query(Customer).delete()
        for person in s.scalars(select(StaffUser)):
            person.email = person.email.replace("glocial.example", "kanto.example")
        lead = add_lead(s, **LEAD)
        deal = process.start_deal(s, lead.id, by="sofia")
        s.commit()
        number = deal.number
    from pypdf import PdfReader

    from dealflow.customer import PortalCustomer, link_in_mail
    from dealflow.portal import PortalThread
    from dealflow.scenario import SCRIPT
    from services.config import load_settings

    data_dir = Path(os.environ["DEALFLOW_DATA_DIR"])
    with PortalThread(load_settings()) as portal:  # the customer reads the estimate from its link
        monkeypatch.setenv("DEALFLOW_PUBLIC_URL", portal.url)
        play_direct(number, until="decision-rev-1")
        with PortalCustomer() as customer:
            page = customer.open(link_in_mail(data_dir / "mail", "-R1 for")).text
    shown = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    pdf = " ".join(" ".join(p.extract_text() for p in PdfReader(data_dir / "documents" / "EST-0001-R1.pdf").pages)
                   .split())
    terms = "Delivery after QA sign-off at our works; payment 60 days from invoice."
    assert f"and its terms: {terms}" in shown and terms in pdf  # the customer signs what the PDF says
    assert "Kanto Precision K.K." in shown and "Glocial" not in shown and "JPY" in shown
    play_direct(number, [m for m in SCRIPT[3:] if m.step != "deposit"])  # Kanto asks no deposit
    with session_scope() as s:
        deal = s.scalars(select(Deal)).one()
        assert (deal.status, deal.currency, deal.customer.payment_terms_days) == ("won", "JPY", 60)
        docs = s.scalars(select(Document)).all()
        mails = s.scalars(select(Email)).all()
        pages = {d.number: render(d.template, d.context) for d in docs}
        kinds = {d.kind: d.number for d in docs}
        invoice = deal.invoice
        assert (invoice.due_date - invoice.issued_at.date()).days == 60
        sent = len(mails)
    assert set(kinds) >= {"estimate", "order", "receipt", "shipment", "invoice", "payment"}
    for number_, html in pages.items():
        assert "Kanto Precision K.K." in html and "MUFG Bank" in html and "T1234567890123" in html, number_
        assert "Glocial" not in html and "glocial" not in html, number_
    assert "payment 60 days from invoice" in pages[kinds["estimate"]]
    assert "JPY" in pages[kinds["invoice"]] and "USD" not in pages[kinds["invoice"]]
    raw = [p.read_bytes() for p in sorted((Path(os.environ["DEALFLOW_DATA_DIR"]) / "mail").glob("*.eml"))]
    assert len(raw) == sent > 0
    for message in raw:
        parsed = email.message_from_bytes(message, policy=policy.default)
        assert parseaddr(parsed["From"]) == ("Kanto Precision K.K.", "sales@kanto.example"), parsed["From"]
        body = parsed.get_body(("plain",)).get_content()
        assert "Glocial" not in body and "glocial" not in body.lower(), body[:400]
        if parsed["To"] == LEAD["email"]:  # the customer's mail is signed by the company
            assert re.search(r"Kanto Precision K\.K\.", body), body[-400:]


def test_a_document_keeps_the_seller_it_was_made_by_and_the_next_one_shows_the_change(new_deal):
    from dealflow.scenario import play_direct
    from models import Document
    from services.rendering import render

    play_direct(new_deal, until="payment-1")
    assert run("company", "edit", "--bank", "IBAN NEW 0001", "--company-name", "Glocial Machines Ltd")[0] == 0
    with session_scope() as s:
        invoice = s.scalars(select(Document).where(Document.kind == "invoice")).one()
        again = render(invoice.template, invoice.context)  # e.g. its PDF made again for a mail sent again
    assert "IBAN XX00 0000 0000 0000 0000 00" in again and "IBAN NEW 0001" not in again
    assert "Glocial Machineries" in again
    play_direct(new_deal, until="payment-2")  # the next payment's receipt: made after the change
    with session_scope() as s:
        receipt = s.scalars(select(Document).where(Document.kind == "payment").order_by(Document.id.desc())).first()
        made_after = render(receipt.template, receipt.context)
    assert "Glocial Machines Ltd" in made_after and "IBAN NEW 0001" in made_after
