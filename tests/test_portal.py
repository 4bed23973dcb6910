"""The customer portal: signed links, every page and refusal over real HTTP (uvicorn on loopback),
and the customer's own answer recorded by the flow on a real Prefect API."""

from __future__ import annotations

import hashlib
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from dealflow.customer import PortalCustomer, link_in, link_in_mail
from dealflow.portal import CSRF_COOKIE, FailureLimit, PortalThread
from dealflow.scenario import SCRIPT, Move, play_direct
from models import AuditEntry, Document, Email, EstimateRevision, Wait, utcnow
from models.deal import deal_by_number
from models.errors import ValidationError
from models.portal import ACTIONS, MAX_NAME, CustomerAnswer, Link, check_typed, link_token, read_link
from models.text import ALLOWED_IN_NOTES, has_control
from services import keys
from services.config import load_settings
from services.db import session_scope
from tasks.deal_steps import deliver_mail
from tasks.deal_steps import record_answer as flow_check

from .helpers import answer_as_staff, run_deal_with, wait_for_run

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'



@pytest.fixture
def customer():
    with PortalCustomer() as c:
        yield c


def estimate_link(data_dir: Path, revision: int = 1) -> str:
    link = link_in_mail(data_dir / "mail", f"-R{revision} for")
    assert link, "no portal link in the estimate email"
    return link


def at_decision(deal: str) -> None:
    play_direct(deal, until="decision-rev-1")


def form_token(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def plain_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- links ------------------------------------------------------------------------------------------

def test_a_link_names_its_deal_document_and_contact_and_any_change_breaks_it():
    secret = keys.portal_secret()
    link = Link("estimate", "DEAL-0007", "2", 31)
    token = link_token(secret, link)
    assert read_link(secret, token) == link
    assert read_link(b"another installation's secret", token) is None
    for i in range(len(token)):  # every single character changed: none verifies
        changed = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        assert read_link(secret, changed) is None
    assert read_link(secret, "") is None and read_link(secret, "x" * 5000) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_no_made_up_token_verifies(token):
    assert read_link(keys.portal_secret(), token) is None


EXAMPLES = int(os.environ.get("DEALFLOW_HYPOTHESIS_EXAMPLES", "40"))
TYPED_TEXT = st.one_of(st.text(max_size=80), st.text(min_size=4000, max_size=4100), st.just(""),
                       st.sampled_from(["Priya Raman", HOSTILE, "a\nb", "\x00", "\ud800", " " * 5]))
FIELDS = ("name", "terms", "po_number", "changes", "reason")


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(st.sampled_from(list(ACTIONS)), st.dictionaries(st.sampled_from(FIELDS), TYPED_TEXT, max_size=5))
def test_what_a_customer_types_is_accepted_bounded_or_refused_naming_its_field(action, fields):
    try:
        typed = check_typed(action, fields)
    except ValidationError as exc:
        assert exc.field in FIELDS and str(exc).count("\n") == 0
        return
    assert 2 <= len(typed["name"]) <= MAX_NAME if action == "accept" else len(typed["name"]) <= MAX_NAME
    assert len(typed["po_number"]) <= 60 and len(typed["text"]) <= 4000
    assert not has_control(typed["name"] + typed["po_number"]) and not has_control(typed["text"], ALLOWED_IN_NOTES)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=st.sampled_from(list(ACTIONS)), fields=st.dictionaries(st.sampled_from(FIELDS), TYPED_TEXT, max_size=5))
def test_any_form_the_customer_sends_gets_a_page_and_nothing_moves_unless_it_is_whole(
        decision_page, action, fields):
    """Over HTTP: a bad form is one message naming its field (400); a whole one goes to the deal
    (here a deal whose run is not started: 'try again shortly', 503); never a server error."""
    link, customer = decision_page
    sent = {k: v.replace("\ud800", "?") for k, v in fields.items()}
    page = customer.answer(link, action, **sent)
    try:
        check_typed(action, {k: v.replace("\r\n", "\n") for k, v in sent.items()})
    except ValidationError as exc:  # refused on the page, naming the field
        assert page.status_code == 400, page.status_code
        assert f'id="error" role="alert">{exc.field}: ' in page.text
    else:  # whole: on its way to the deal (whose run is not started here)
        assert page.status_code == 503 and "We could not take your answer just now" in page.text
    with session_scope() as s:
        assert s.scalar(select(CustomerAnswer.id)) is None
        assert s.scalar(select(EstimateRevision.status)) == "sent"


@pytest.fixture
def decision_page(new_deal, portal, customer, data_dir):
    at_decision(new_deal)
    return estimate_link(data_dir), customer


# --- the estimate's page ----------------------------------------------------------------------------

def test_the_estimate_email_links_to_a_page_that_shows_the_estimate_and_its_pdf(new_deal, portal, customer, data_dir):
    at_decision(new_deal)
    link = estimate_link(data_dir)
    assert link.startswith(portal.url + "/e/")
    page = customer.open(link)
    assert page.status_code == 200
    text = plain_text(page.text)
    assert "Estimate EST-0001-R1" in text and "CNC-LATHE-2000" in text and "Valid until" in text
    assert "Accept and order" in text and "Ask for a revised estimate" in text and "Decline the estimate" in text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store" and "server" not in page.headers
    assert "<script" not in page.text and "http" not in page.text.split("<main>")[0].replace("http-equiv", "")
    cookie = page.headers["set-cookie"]
    assert CSRF_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    pdf = customer.open(link + "/pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert pdf.content == (data_dir / "documents" / "EST-0001-R1.pdf").read_bytes()  # as attached to the mail
    css = customer.open(portal.url + "/static/portal.css")
    assert css.status_code == 200 and "font-family" in css.text


def test_the_customer_accepts_the_terms_the_estimate_pdf_prints(new_deal, portal, customer, data_dir):
    from pypdf import PdfReader

    play_direct(new_deal, until="handoff")
    with session_scope() as s:
        deal_by_number(s, new_deal).customer.payment_terms_days = 60
        s.commit()
    at_decision(new_deal)
    page = customer.open(estimate_link(data_dir))
    label = " ".join(plain_text(re.search(r'id="terms".*?</label>', page.text, re.S).group(0)).split())
    pdf = " ".join(" ".join(p.extract_text() for p in PdfReader(data_dir / "documents" / "EST-0001-R1.pdf").pages).split())
    # the customer's terms ask for a deposit: the estimate says so before they accept
    terms = "Delivery after QA sign-off at our works; a 30 % deposit before shipping; the balance 60 days from invoice."
    assert label.endswith(f"and its terms: {terms}"), label
    assert terms in pdf, pdf


def test_the_estimate_mailed_over_smtp_carries_a_working_link_in_both_its_parts(new_deal, portal, customer, smtp):
    at_decision(new_deal)
    [got] = smtp.received  # the real message, as the mail server received it
    raw = got.message.as_bytes()
    link = link_in(raw)
    assert link and link.startswith(portal.url + "/e/")
    html = message_from_bytes(raw, policy=policy.default).get_body(("html",)).get_content()
    assert f'href="{link}"' in html  # the button in the HTML part opens the same page
    assert "Estimate EST-0001-R1" in plain_text(customer.open(link).text)
    # in the raw message too, the plain text's link is one unbroken line (no "=" soft breaks) that
    # a person can copy, and the server was told the body is 8-bit where it is
    text = message_from_bytes(got.raw, policy=policy.default).get_body(("plain",))
    assert text["content-transfer-encoding"] in ("7bit", "8bit")
    assert any(link.encode() in line.split() for line in got.raw.splitlines()), got.raw[:3000]
    assert got.mail_options == (["BODY=8BITMIME"] if text["content-transfer-encoding"] == "8bit" else [])


def test_the_raw_eml_keeps_each_link_whole_and_a_line_too_long_for_smtp_goes_quoted_printable(new_deal, data_dir):
    from services.mailer import text_encoding

    at_decision(new_deal)
    [eml] = sorted((data_dir / "mail").glob("*estimate*.eml"))
    raw = eml.read_bytes()
    link = link_in(raw)
    assert link and any(link.encode() in line.split() for line in raw.splitlines()), raw[:3000]
    text = message_from_bytes(raw, policy=policy.default).get_body(("plain",))
    assert text["content-transfer-encoding"] == "8bit"  # its '·' and '×' as written, no soft line breaks
    assert link in text.get_payload().split()
    assert (text_encoding("a link: https://x.example/e/" + "t" * 300), text_encoding("Glocial · Pune"),
            text_encoding("note " + "n" * 1000)) == ("7bit", "8bit", "quoted-printable")


def test_a_link_that_does_not_verify_is_not_found_without_detail_and_too_many_are_refused(
        new_deal, db, data_dir, monkeypatch):
    at_decision(new_deal)
    with PortalThread(load_settings()) as server:  # the count of failures: this test's database's
        monkeypatch.setenv("DEALFLOW_PUBLIC_URL", server.url)
        with session_scope() as s:
            s.execute(update(Email).where(Email.kind == "estimate").values(status="pending"))
            s.commit()
        deliver_mail.fn(new_deal)
        link = estimate_link(data_dir)
        token = link.rsplit("/", 1)[1]
        tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
        with httpx.Client() as client:
            for url in (tampered, server.url + "/e/nonsense", server.url + "/i/" + token, server.url + "/nowhere"):
                page = client.get(url)
                assert page.status_code == 404 and "This link does not work" in page.text
                assert new_deal not in page.text and "EST-" not in page.text
            for _ in range(FailureLimit("portal").allowed):
                client.get(tampered)
            page = client.get(link)  # even a good link, from an address that tried too many
            assert page.status_code == 429 and "Too many links that did not work" in page.text
            assert "try again in about 10 minutes" in page.text


def test_a_form_without_its_csrf_token_or_cookie_changes_nothing(new_deal, portal, customer, data_dir):
    at_decision(new_deal)
    link = estimate_link(data_dir)
    customer.open(link)
    fields = {"name": "Priya Raman", "terms": "yes"}
    assert customer.client.post(link + "/accept", data=fields).status_code == 403  # no token
    assert customer.client.post(link + "/accept", data={**fields, "csrf": "0" * 64}).status_code == 403
    with httpx.Client() as other:  # another browser's page: its token is not for this cookie
        token = re.search(r'name="csrf" value="([^"]+)"', other.get(link).text).group(1)
    page = customer.client.post(link + "/accept", data={**fields, "csrf": token})
    assert page.status_code == 403 and "Your answer was not sent" in page.text
    with session_scope() as s:
        assert deal_by_number(s, new_deal).estimate.latest.status == "sent"
        assert s.scalar(select(CustomerAnswer.id)) is None


@pytest.mark.parametrize(("action", "fields", "message"), [
    ("accept", {"name": "", "terms": "yes"}, "name: type your full name to accept (it is your signature)"),
    ("accept", {"name": "P", "terms": "yes"}, "name: type your full name to accept"),
    ("accept", {"name": "Priya Raman"}, "terms: tick the box to accept the estimate"),
    ("accept", {"name": "Priya\nRaman", "terms": "yes"}, "name: must be one line"),
    ("accept", {"name": "Priya Raman", "terms": "yes", "po_number": "P" * 61}, "po_number: must be at most 60"),
    ("request_changes", {"changes": "  "}, "changes: say what you would like changed"),
    ("request_changes", {"changes": "x" * 4001}, "changes: must be at most 4000 characters"),
    ("decline", {"reason": ""}, "reason: tell us briefly why"),
])
def test_what_the_customer_types_is_checked_with_one_clear_message_and_nothing_moves(
        new_deal, portal, customer, data_dir, action, fields, message):
    at_decision(new_deal)
    page = customer.answer(estimate_link(data_dir), action, **fields)
    assert page.status_code == 400
    assert message in plain_text(page.text)
    if fields.get("changes", "").strip():
        assert fields["changes"][:50] in page.text  # what they typed is kept for them to correct
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert deal.estimate.latest.status == "sent" and deal.open_wait.key == "decision-rev-1"


def test_a_replaced_revision_says_which_one_to_answer(new_deal, portal, customer, data_dir):
    play_direct(new_deal, until="decision-rev-2")
    first, second = estimate_link(data_dir, 1), estimate_link(data_dir, 2)
    assert first != second
    page = plain_text(customer.open(first).text)
    assert "replaced by revision 2" in page and "see the email with revision 2" in page
    assert "Accept and order" not in page
    assert "<form" not in customer.open(first).text
    token = form_token(customer.open(second).text)  # a form's token is good for its own link only
    page = customer.client.post(first + "/accept", data={"name": "Priya Raman", "terms": "yes", "csrf": token})
    assert page.status_code == 403
    with session_scope() as s:
        assert [r.status for r in deal_by_number(s, new_deal).estimate.revisions] == ["changes_requested", "sent"]


def test_a_decision_recorded_by_phone_shows_on_the_page_and_the_customer_cannot_answer_again(
        new_deal, portal, customer, data_dir):
    play_direct(new_deal, until="decision-rev-1")
    link = estimate_link(data_dir)
    token = form_token(customer.open(link).text)  # the page open in the customer's browser
    play_direct(new_deal, script=[SCRIPT[5]], until="qa-attempt-1")  # sales records it first
    page = customer.client.post(link + "/accept", data={"name": "Priya Raman", "terms": "yes", "csrf": token})
    text = plain_text(page.text)
    assert page.status_code == 200 and "This estimate was accepted on" in text
    assert "by your answer on a signed document, recorded by our sales team" in text
    assert "Accept and order" not in text
    with session_scope() as s:
        assert s.scalar(select(CustomerAnswer.id)) is None
        assert deal_by_number(s, new_deal).estimate.latest.decision_channel == "signed_document"


def test_an_expired_estimate_offers_one_button_that_asks_the_owner_once(new_deal, portal, customer, data_dir):
    at_decision(new_deal)
    with session_scope() as s:
        rev = deal_by_number(s, new_deal).estimate.latest
        s.execute(update(EstimateRevision).where(EstimateRevision.id == rev.id)
                  .values(valid_until=rev.valid_until - timedelta(days=40)))
        s.commit()
    link = estimate_link(data_dir)
    page = plain_text(customer.open(link).text)
    assert "has expired" in page and "Ask for a new estimate" in page and "Accept and order" not in page
    token = form_token(customer.open(link).text)
    page = customer.client.post(link + "/accept", data={"name": "Priya Raman", "terms": "yes", "csrf": token})
    assert "has expired" in plain_text(page.text)  # an old page's Accept: back to the page, nothing moved
    for _ in range(2):  # pressed twice: one note
        page = customer.client.post(link + "/renew", data={"csrf": token})
    assert "You asked for a new estimate on" in plain_text(page.text) and "Ask for a new estimate" not in page.text
    with session_scope() as s:
        mails = s.scalars(select(Email).where(Email.kind == "renewal_request")).all()
        assert [(m.to_addr, m.status) for m in mails] == [("sofia@glocial.example", "sent")]
        assert s.scalar(select(AuditEntry.action).where(AuditEntry.action == "estimate.renewal_requested"))
        assert deal_by_number(s, new_deal).estimate.latest.status == "sent"
    renewal_eml = sorted((data_dir / "mail").glob("*renewal_request.eml"))
    assert len(renewal_eml) == 1 and b"asks for a new estimate" in renewal_eml[0].read_bytes()


def test_hostile_names_and_requests_are_shown_as_text(db, portal, customer, data_dir):
    from dealflow.scenario import start_scenario_deal

    deal = start_scenario_deal(company=f"ACME {HOSTILE}")
    script = [SCRIPT[0], SCRIPT[1], SCRIPT[2], Move(
        "decision", "mark", {"decision": "request_changes", "channel": "email", "changes": f"more {HOSTILE}"}, ""),
        SCRIPT[4]]
    play_direct(deal, script=script, until="decision-rev-2")
    page = customer.open(estimate_link(data_dir, 2)).text
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(" in page  # the change request, shown as the customer typed it


# --- the invoice's page -------------------------------------------------------------------------------

def test_the_invoice_email_links_to_its_balance_and_payments(new_deal, portal, customer, data_dir):
    play_direct(new_deal, until="payment-2")
    link = link_in_mail(data_dir / "mail", "Invoice INV-", kind="i")
    assert link and link.startswith(portal.url + "/i/")
    page = plain_text(customer.open(link).text)
    with session_scope() as s:
        invoice = deal_by_number(s, new_deal).invoice
        due, paid, payment = invoice.amount_due, invoice.paid, invoice.payments[0].number
    assert f"{due:,} due" in page and f"Received USD {paid:,}" in page and payment in page
    pdf = customer.open(link + "/pdf")
    assert pdf.content.startswith(b"%PDF")
    assert customer.open(link.replace("/i/", "/e/")).status_code == 404  # an invoice link opens no estimate
    assert "Accept" not in page and "<form" not in customer.open(link).text  # read-only


def test_the_invoice_page_shows_each_fact_on_a_line_of_its_own_your_po_and_tax_id_included(
        new_deal, portal, customer, data_dir):
    """The page's "Billed to" and "Invoice date" boxes keep their line breaks (white-space:
    pre-line): the customer's PO never runs into the order number, nor the tax ID into the address."""
    from models import Customer

    play_direct(new_deal, until="shipment-1")
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        deal.order.customer_po = "PO 4500-2231"
        s.get(Customer, deal.customer_id).tax_id = "GB 123 4567 89"
        s.commit()
    play_direct(new_deal, until="payment-1")
    html = customer.open(link_in_mail(data_dir / "mail", "Invoice INV-", kind="i")).text
    parties = re.search(r'<div class="parties">(.*?)\n</div>', html, flags=re.S).group(1)
    billed, dated = (
        [line.strip() for line in re.sub(r"<[^>]+>", "", box).splitlines() if line.strip()]
        for box in re.findall(r"<div>(.*?)</div>", parties, flags=re.S))
    assert billed[0] == "Billed to" and billed[-1] == "Tax ID GB 123 4567 89", billed
    assert dated[2:] == ["Order", "SO-0001", "Your reference", "PO 4500-2231"], dated


# --- the customer's answer, recorded by the flow ------------------------------------------------------

def test_the_flow_refuses_a_customer_answer_it_cannot_verify(new_deal, portal, data_dir):
    at_decision(new_deal)
    answer = {"by": "customer", "decision": "approve", "channel": "portal"}
    forged = {**answer, "portal": "eyJkZWFsIjoiREVBTC0wMDAxIn0.forged"}
    result = flow_check.fn(new_deal, "decision-rev-1", forged)
    assert result == {"accepted": False, "reason": "portal: the customer's signed answer does not verify"}
    play_direct(new_deal, script=[], until="decision-rev-1-retry-1")  # the flow waits again
    staff = {"by": "mark", "decision": "approve", "channel": "portal"}
    result = flow_check.fn(new_deal, "decision-rev-1-retry-1", {**staff, **_signed(new_deal, "decision-rev-1-retry-1", staff)})
    assert result["reason"].startswith("channel: portal is the customer's own answer")


def waits_answer(deal, key: str) -> dict:
    return next(w.answer for w in deal.waits if w.key == key)


def run_cli(*args: str) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from dealflow.cli import main

    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_flow_takes_a_customer_answer_only_for_its_deal_wait_and_revision_once_and_as_signed(
        new_deal, portal, data_dir):
    from models.portal import estimate_state, run_input

    at_decision(new_deal)
    secret = keys.portal_secret()

    def signed(action: str, fields: dict, key: str = "decision-rev-1", **kw) -> dict:
        with session_scope() as s:
            state = estimate_state(s, read_link(secret, estimate_link(data_dir).rsplit("/", 1)[1]))
            wait = s.scalars(select(Wait).where(Wait.key == key)).one()
            return run_input(secret, state, wait, action, fields, ip="203.0.113.9", user_agent="test",
                             pdf_sha256="0" * 64, **kw)

    accept = signed("accept", {"name": "Priya Raman", "terms": "yes"})
    keys_seen = iter(f"decision-rev-1-retry-{n}" for n in range(1, 10))
    key = "decision-rev-1"

    def refused(answer: dict) -> str:
        nonlocal key
        result = flow_check.fn(new_deal, key, answer)
        assert not result["accepted"]
        key = next(keys_seen)
        play_direct(new_deal, script=[], until=key)
        return result["reason"]

    assert refused({**accept, "decision": "decline"}) == "portal: the answer sent is not the one the customer signed"
    assert refused(accept) == "portal: the signed answer was made for another deal or wait"  # replayed later
    changes = signed("request_changes", {"changes": "one more lathe"}, key=key)
    assert refused({**changes, "changes": "half the price"}) == "portal: the answer sent is not the one the customer signed"
    late = signed("accept", {"name": "Priya Raman", "terms": "yes"}, key=key,
                  now=utcnow() + timedelta(days=400))  # sent after the estimate's validity
    assert "estimate EST-0001-R1 expired on" in refused(late)
    other = signed("accept", {"name": "Priya Raman", "terms": "yes"}, key=key)
    assert refused({**other, "portal": _resigned(other["portal"], deal="DEAL-0002")}) \
        == "portal: the signed answer was made for another deal or wait"
    good = signed("request_changes", {"changes": "one more lathe"}, key=key)  # no name: the contact's
    assert flow_check.fn(new_deal, key, good)["accepted"]
    play_direct(new_deal, script=SCRIPT[:5], until="decision-rev-2")
    again = {**good, "portal": _resigned(good["portal"], wait="decision-rev-2", revision=2)}
    assert flow_check.fn(new_deal, "decision-rev-2", again)["reason"] == "portal: this signed answer was already used"
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        first = deal.estimate.revisions[0]
        assert (first.status, first.decided_by, first.change_request.text) == (
            "changes_requested", "Priya Raman", "one more lathe")  # the contact's name, as none was typed
        reasons = [w.refusal_reason for w in deal.waits if w.status == "refused"]
        assert len(reasons) == 6 and sum(r.startswith("portal: ") for r in reasons) == 5
        assert {w.proof for w in deal.waits if w.key.startswith("decision")} == {"signed link"}


def _resigned(blob: str, **changes) -> str:
    """A customer's signed answer with some of its fields changed, signed again with the right
    key: what only the portal can make (tests the flow's checks beyond the signature)."""
    from models.portal import ANSWER_SALT, _serializer

    serializer = _serializer(keys.portal_secret(), ANSWER_SALT)
    return serializer.dumps({**serializer.loads(blob), **changes})


def _signed(deal: str, key: str, answer: dict) -> dict:
    from dealflow.scenario import TEAM

    return TEAM.login(answer["by"]).prove(deal, key, answer)


@pytest.mark.flow
def test_the_customer_asks_for_changes_then_accepts_from_the_links_and_the_deal_reaches_its_order(
        prefect_api, new_deal, portal, customer, data_dir):

    def staff(key: str, move) -> None:
        answer_as_staff(new_deal, key, move)

    outcome: dict = {}

    def people() -> None:
        for key, move in (("qualify", SCRIPT[0]), ("handoff", SCRIPT[1]), ("estimate-rev-1", SCRIPT[2])):
            staff(key, move)
        run_id = wait_for_run(new_deal, "decision-rev-1")
        from prefect import get_client

        with get_client(sync_client=True) as client:  # the runs list says whose turn it is
            outcome["tags"] = client.read_flow_run(UUID(run_id)).tags
        first = estimate_link(data_dir, 1)
        page = customer.answer(first, "request_changes", changes=SCRIPT[3].payload["changes"], name="Priya Raman")
        outcome["changes"] = plain_text(page.text)
        staff("estimate-rev-2", SCRIPT[4])
        wait_for_run(new_deal, "decision-rev-2")
        second = estimate_link(data_dir, 2)
        outcome["superseded"] = plain_text(customer.open(first).text)
        token = form_token(customer.open(second).text)
        fields = {"name": "Priya Raman", "po_number": "PO 4500-2231", "terms": "yes", "csrf": token}
        with ThreadPoolExecutor(2) as pool:  # the button pressed twice at once (no JavaScript to stop it)
            pages = list(pool.map(lambda _: customer.client.post(second + "/accept", data=fields), range(2)))
        texts = [plain_text(p.text) for p in pages]  # one of them was the first, and is thanked
        outcome["accepted"] = next((t for t in texts if "you accepted estimate" in t), texts[0])
        outcome["twice"] = [(p.status_code, "you accepted estimate" in plain_text(p.text)
                             or "This estimate was accepted on" in plain_text(p.text)) for p in pages]
        again = customer.client.post(second + "/decline", data={"reason": "changed our mind", "csrf": token})
        outcome["again"] = (again.status_code, plain_text(again.text))  # the back button, another answer
        code, _, err = run_cli("answer", new_deal, "decision", "--by", "mark", "--set", "decision=decline",
                               "--set", "reason=phone")
        outcome["phone"] = (code, err)
        for key, move in zip(("qa-attempt-1", "qa-attempt-2", "deposit-1", "shipment-1", "shipment-2", "payment-1"),
                             SCRIPT[6:12], strict=True):
            staff(key, move)
        wait_for_run(new_deal, "payment-2")
        outcome["invoice"] = plain_text(customer.open(link_in_mail(data_dir / "mail", "Invoice INV-", "i")).text)
        outcome["deposit"] = plain_text(customer.open(link_in_mail(data_dir / "mail", "Deposit invoice DEP-",
                                                                   "i")).text)
        staff("payment-2", SCRIPT[12])

    result = run_deal_with(new_deal, people)
    assert result["status"] == "won"
    assert {"waiting-for:customer", "assignee:mark", "owner:sofia", "step:decision"} <= set(outcome["tags"])
    assert not [t for t in outcome["tags"] if t.startswith("waiting-for:") and t != "waiting-for:customer"]
    assert "we received your change request" in outcome["changes"] and "revision 2" in outcome["changes"]
    assert "replaced by revision 2" in outcome["superseded"]
    assert "you accepted estimate EST-0001-R2" in outcome["accepted"]
    assert "Your order confirmation follows" in outcome["accepted"] or "Your order number is SO-0001" in outcome["accepted"]
    assert "This estimate was accepted on" in outcome["again"][1] and "by Priya Raman (online)" in outcome["again"][1]
    assert "Your order: SO-0001" in outcome["again"][1]
    assert outcome["twice"] == [(200, True), (200, True)]  # both land on the page saying it is accepted
    assert outcome["again"][0] == 200 and "This estimate was accepted on" in outcome["again"][1]
    assert "Balance due" in outcome["invoice"] and "RMW-ADV" not in outcome["invoice"]
    assert "Less deposit paid, deposit invoice DEP-0001" in outcome["invoice"]
    assert "Deposit invoice DEP-0001" in outcome["deposit"] and "Paid in full" in outcome["deposit"]
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        revs = deal.estimate.revisions
        assert [(r.status, r.decision_channel, r.decided_by) for r in revs] == [
            ("changes_requested", "portal", "Priya Raman"), ("approved", "portal", "Priya Raman")]
        assert revs[0].change_request.text == SCRIPT[3].payload["changes"]
        online = s.scalars(select(CustomerAnswer).order_by(CustomerAnswer.id)).all()
        assert [(a.action, a.name, a.po_number) for a in online] == [
            ("request_changes", "Priya Raman", ""), ("accept", "Priya Raman", "PO 4500-2231")]
        accepted = online[1]
        outcome["accepted_at"] = f"{accepted.submitted_at:%Y-%m-%d %H:%M}"
        assert accepted.ip == "127.0.0.1" and "dealflow-customer" in accepted.user_agent
        assert accepted.pdf_sha256 == hashlib.sha256((data_dir / "documents" / "EST-0001-R2.pdf").read_bytes()).hexdigest()
        assert deal.order is not None and deal.order.estimate_revision.revision == 2
        waits = {w.key: (w.status, w.proof, w.answered_by) for w in deal.waits}
        assert waits["decision-rev-2"] == ("answered", "signed link", "customer: Priya Raman")
        order_doc = s.scalars(select(Document).where(Document.kind == "order")).one()
        assert order_doc.context["accepted_online"]["name"] == "Priya Raman"
        # what Prefect and the tables keep of the customer's answer: no link anywhere
        tokens = [estimate_link(data_dir, n).rsplit("/", 1)[1] for n in (1, 2)]
        rows = str([w.answer for w in deal.waits]) + str([e.details for e in s.scalars(select(AuditEntry))]) \
            + str([e.context for e in s.scalars(select(Email))])
        assert not any(t in rows for t in tokens)
        assert "portal" not in waits_answer(deal, "decision-rev-2")  # the signed answer is proof, never recorded
    order_text = (data_dir / "documents" / "SO-0001.html").read_text()
    assert "Accepted online by Priya Raman on" in order_text
    assert outcome["phone"] == (2, "error: step: DEAL-0001 is not waiting for 'decision': "
                                   "the customer already answered online: accepted (Priya Raman, "
                                   f"{outcome['accepted_at']} UTC); the first answer wins\n")


def test_a_colleague_opens_a_deal_document_from_its_page_link_until_it_expires(new_deal, portal, customer, data_dir):
    """The deal's page in the Prefect UI links its documents through the portal: a signed, dated
    link any colleague's browser opens, not a path on the server; changed, it does not work;
    after DOCUMENT_LINK_DAYS it says where a fresh one is."""
    from itsdangerous import URLSafeTimedSerializer

    from models import Document
    from models.markdown import plain
    from models.portal import DOCUMENT_LINK_DAYS, DOCUMENT_SALT, read_document_token
    from services.keys import portal_secret
    from services.links import document_url
    from services.views import deal_page

    at_decision(new_deal)
    with session_scope() as s:
        doc_id = s.scalars(select(Document.id).where(Document.number == "EST-0001-R1")).one()
        page = plain(deal_page(s, deal_by_number(s, new_deal), document_url, link_days=DOCUMENT_LINK_DAYS))
    # the link as the page has it (a token made a second later differs: it carries its time)
    links = re.findall(re.escape(portal.url) + r"/d/[A-Za-z0-9._-]+", page)
    assert links and str(data_dir) not in page
    url = links[0]
    assert read_document_token(portal_secret(), url.rsplit("/", 1)[1]) == doc_id
    pdf = customer.open(url)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == (data_dir / "documents" / "EST-0001-R1.pdf").read_bytes()
    assert 'filename="EST-0001-R1.pdf"' in pdf.headers["content-disposition"]
    assert customer.open(url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")).status_code == 404
    made = int(time.time()) - DOCUMENT_LINK_DAYS * 86400 - 60  # made 7 days and a minute ago
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("itsdangerous.timed.TimestampSigner.get_timestamp", lambda self: made)
        old = URLSafeTimedSerializer(portal_secret(), salt=DOCUMENT_SALT,
                                     signer_kwargs={"digest_method": hashlib.sha256}).dumps(doc_id)
    expired = customer.open(f"{portal.url}/d/{old}")
    assert expired.status_code == 410 and "This link has expired" in expired.text
    assert "EST-0001" not in expired.text


def test_a_client_that_sends_its_headers_slowly_is_cut_off(db, monkeypatch):
    import socket
    import time

    from dealflow import slow_clients

    monkeypatch.setattr(slow_clients.HeadersInTime, "header_seconds", 1.0)
    with PortalThread() as served:
        host, port = served.url.removeprefix("http://").split(":")
        # a whole request in time is answered, and the connection then has as long for the next
        with socket.create_connection((host, int(port)), timeout=10) as quick:
            quick.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert quick.recv(200).startswith(b"HTTP/1.1 200")
        with socket.create_connection((host, int(port)), timeout=10) as slow:
            started = time.monotonic()
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")
            for _ in range(3):  # a header line now and then, never the end of the headers
                time.sleep(0.4)
                try:
                    slow.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    break
            closed = slow.recv(100)  # b"": the portal closed the connection, answering nothing
        assert closed == b"" and time.monotonic() - started < 5
