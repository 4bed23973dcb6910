"""What the customer hears of a warranty claim: an acknowledgement when it is opened (its number,
the unit, the issue as given, the warranty's end, what happens next), the diagnosis and what is
done about it (an engineer comes, or the machine comes back under an RMA that follows in its own
email), and the close note. Each is queued by the step that causes it, sent once also when every
step runs twice, received by a real mail server; what people typed reads as typed in the plain
text and is escaped in the HTML."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy import func, select

from application import deals
from models import Email
from services.db import session_scope
from services.rendering import render_email

from .test_returns import LATHE, RECEIVE, SHIP_BACK, _claim, drive_case, shipped_serials

CUSTOMER = "priya.raman@riverside-metal.example"
HOSTILE_ISSUE = 'Spindle <script>alert(1)</script> & "noise" {{ 7*7 }}\nsecond line [here](http://evil.example)'
HOSTILE_DIAGNOSIS = "Bearing <b>worn</b> & seal {% raw %} gone"
HOSTILE_NOTE = "Replaced <img src=x onerror=alert(1)> bearing;\n\tcall <i>Dana</i>"
ON_SITE = {"by": "mark", "diagnosis": "Spindle bearing worn.", "resolution": "repair_on_site"}
CLOSE = {"by": "mark", "note": "Bearing replaced on site, run for an hour."}


@pytest.fixture
def staff(db):
    from dealflow.login import save
    from dealflow.scenario import TEAM

    save(TEAM.login("manager"))
    return "manager"


@pytest.fixture
def quiet(won_deal, smtp):
    """The won deal's own mail already sent, so the server records only the claim's."""
    deals.deliver_mail(won_deal)
    smtp.received.clear()
    return smtp


def claim_mails() -> list[Email]:
    with session_scope() as s:
        mails = list(s.scalars(select(Email).where(Email.kind.like("claim_%")).order_by(Email.id)))
        s.expunge_all()
    return mails


def tags(html: str) -> list[str]:
    return re.findall(r"<[a-zA-Z/!][^>]*>", html)


def test_a_claim_repaired_on_site_tells_the_customer_three_times_once_each_also_when_each_step_runs_twice(
        won_deal, staff, quiet):
    sn = shipped_serials(won_deal, LATHE)[0]
    number = _claim(sn, "Spindle overheats after an hour.")
    steps = drive_case(number, {"claim_diagnose": ON_SITE, "claim_close": CLOSE}, repeat=2)
    assert [s["key"] for s in steps] == ["wc-0001-diagnose", "wc-0001-close"] and all(s["accepted"] for s in steps)
    deals.deliver_mail(won_deal)

    mails = claim_mails()
    assert [(m.kind, m.dedupe_key, m.status, m.to_addr) for m in mails] == [
        ("claim_opened", "claim_opened:WC-0001", "sent", CUSTOMER),
        ("claim_diagnosed", "claim_diagnosed:WC-0001", "sent", CUSTOMER),
        ("claim_closed", "claim_closed:WC-0001", "sent", CUSTOMER)]
    assert [r.message["Subject"] for r in quiet.received] == [
        f"Warranty claim WC-0001 received (serial {sn})",
        f"Warranty claim WC-0001: diagnosis (serial {sn})",
        f"Warranty claim WC-0001 closed (serial {sn})"]
    assert all(r.rcpt_tos == [CUSTOMER] for r in quiet.received)

    opened, diagnosed, closed = (render_email(m.template, m.context)[0] for m in mails)
    assert opened.startswith("Dear Priya Raman,\n")
    for piece in [f"We have opened warranty claim WC-0001 for your CNC lathe GL-2000, 2 m bed ({LATHE}), "
                  f"serial number {sn}, from order SO-0001. Its warranty runs until {mails[0].context['warranty_end']}.",
                  "What you told us:\nSpindle overheats after an hour.\n",
                  "What happens next: one of our engineers looks at the fault",
                  "reply to this email or call us, quoting WC-0001."]:
        assert piece in opened, (piece, opened)
    for piece in ["Our engineer has diagnosed your warranty claim WC-0001", "The diagnosis:\nSpindle bearing worn.\n",
                  "an engineer of ours comes to repair the machine at your site", "We will call you to agree on the day.",
                  "Kind regards,\nMark Henry\n"]:
        assert piece in diagnosed, (piece, diagnosed)
    assert "RMA" not in diagnosed and "returned to us" not in diagnosed
    assert "How it was resolved:\nBearing replaced on site, run for an hour.\n" in closed
    assert "is closed." in closed and "under return" not in closed

    # a step's mail queued again (a re-run after the commit) is the same row
    from models.claim_mail import closed_mail, diagnosed_mail, opened_mail
    from models.warranty import claim_by_number

    with session_scope() as s:
        claim = claim_by_number(s, number)
        for queue in (opened_mail, diagnosed_mail, closed_mail):
            queue(s, claim)
        s.commit()
        assert s.scalar(select(func.count()).select_from(Email).where(Email.kind.like("claim_%"))) == 3


def test_a_claim_returned_for_repair_announces_the_rma_which_follows_once_in_its_own_email(won_deal, staff):
    sn = shipped_serials(won_deal, LATHE)[0]
    number = _claim(sn)
    steps = drive_case(number, {
        "claim_diagnose": {"by": "mark", "diagnosis": "Spindle bearing worn.", "resolution": "return"},
        "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
        "return_inspect": {"by": "qa", "notes": "Bearing replaced.", "lines": [
            {"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "repair"}]},
        "return_ship_back": SHIP_BACK,
        "claim_close": {"by": "mark", "note": "Bearing replaced, unit shipped back."}}, repeat=2)
    assert steps[-1]["key"] == "wc-0001-close" and all(s.get("accepted", True) for s in steps), steps
    with session_scope() as s:
        kinds = [m.kind for m in s.scalars(select(Email).where(Email.kind.in_(
            ["claim_opened", "claim_diagnosed", "rma", "shipment", "claim_closed"])).order_by(Email.id))]
    # the won deal's shipment mails come first; then the claim's, the RMA right after its announcement
    assert kinds[-5:] == ["claim_opened", "claim_diagnosed", "rma", "shipment", "claim_closed"], kinds
    assert kinds.count("rma") == 1 and kinds.count("claim_diagnosed") == 1
    mails = {m.kind: m for m in claim_mails()}
    diagnosed = render_email(mails["claim_diagnosed"].template, mails["claim_diagnosed"].context)[0]
    assert ("What we will do: the machine is to be returned to us for repair, under warranty and at no charge. "
            "The return authorization RMA-0001 follows in a separate email") in diagnosed
    assert "within 30 days" not in diagnosed and "outside of every package" not in diagnosed  # the RMA says those
    closed = render_email(mails["claim_closed"].template, mails["claim_closed"].context)[0]
    assert "is closed (repaired at our works under return RMA-0001)." in closed
    assert "How it was resolved:\nBearing replaced, unit shipped back.\n" in closed


def test_what_people_typed_is_escaped_in_the_html_and_as_typed_in_the_plain_text(won_deal, staff):
    sn = shipped_serials(won_deal, LATHE)[0]
    number = _claim(sn, HOSTILE_ISSUE)
    drive_case(number, {"claim_diagnose": {**ON_SITE, "diagnosis": HOSTILE_DIAGNOSIS},
                        "claim_close": {**CLOSE, "note": HOSTILE_NOTE}})
    typed = {"claim_opened": HOSTILE_ISSUE, "claim_diagnosed": HOSTILE_DIAGNOSIS, "claim_closed": HOSTILE_NOTE}
    for mail in claim_mails():
        text, html = render_email(mail.template, mail.context)
        assert typed[mail.kind] in text, (mail.kind, text)
        assert str(escape(typed[mail.kind])) in html, (mail.kind, html)
        for raw in ("<script>", "<b>", "<img", "<i>", '<a href="http://evil.example'):
            assert raw not in html, (mail.kind, raw)


TYPED = st.text(st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\t<>&\"'{}%#[]()*_`"),
                min_size=1, max_size=60).filter(lambda t: t.strip())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(issue=TYPED, diagnosis=TYPED, note=TYPED)
def test_any_typed_issue_diagnosis_and_note_reads_as_typed_and_adds_no_markup(won_deal, issue, diagnosis, note):
    """Each example opens, diagnoses and closes a claim on the same lathe by the domain's steps."""
    from models import StaffUser
    from models.serials import serial_by_number
    from models.warranty import close_claim, diagnose, open_claim

    sn = shipped_serials(won_deal, LATHE)[0]
    with session_scope() as s:
        mark = s.scalars(select(StaffUser).where(StaffUser.handle == "mark")).one()
        claim = open_claim(s, serial_by_number(s, sn), issue, "mark")
        diagnose(s, claim, mark, diagnosis, "repair_on_site")
        close_claim(s, claim, mark, note)
        kept = {"claim_opened": ("issue", claim.issue), "claim_diagnosed": ("diagnosis", claim.diagnosis),
                "claim_closed": ("note", claim.close_note)}
        mails = list(s.scalars(select(Email).where(Email.dedupe_key.endswith(f":{claim.number}"))))
        s.commit()
        assert sorted(m.kind for m in mails) == sorted(kept)
        for mail in mails:
            field, value = kept[mail.kind]
            text, html = render_email(mail.template, mail.context)
            _, plain_html = render_email(mail.template, {**mail.context, field: "typed"})
            assert value in text
            assert str(escape(value)) in html
            assert tags(html) == tags(plain_html)  # no tag from what was typed


def test_a_claim_whose_issue_spans_lines_and_runs_long_can_still_be_returned_for_repair(won_deal, staff):
    """The return's reason is one line of at most 500 characters; the diagnosis 'return' of an
    issue typed on several lines, or longer, was refused with 'reason: must be one line'."""
    from models.returns import return_by_number

    sn = shipped_serials(won_deal, LATHE)[0]
    issue = HOSTILE_ISSUE + "\n\n" + "The chuck rattles. " * 60
    number = _claim(sn, issue)
    steps = drive_case(number, {"claim_diagnose": {"by": "mark", "diagnosis": HOSTILE_DIAGNOSIS,
                                                   "resolution": "return"}})
    assert steps[0]["accepted"], steps
    with session_scope() as s:
        reason = return_by_number(s, "RMA-0001").reason
    assert "\n" not in reason and len(reason) == 500 and reason.endswith("…")
    assert reason.startswith('Warranty claim WC-0001: Spindle <script>alert(1)</script> & "noise" {{ 7*7 }} second '
                             "line [here](http://evil.example) The chuck rattles.")
    mails = {m.kind: m for m in claim_mails()}
    assert render_email(mails["claim_opened"].template, mails["claim_opened"].context)[0].count(
        "The chuck rattles.") == 60  # the customer's words whole, in the acknowledgement
    text, html = render_email(mails["claim_diagnosed"].template, mails["claim_diagnosed"].context)
    assert f"The diagnosis:\n{HOSTILE_DIAGNOSIS}\n" in text and "<b>worn</b>" not in html
    assert "The return authorization RMA-0001 follows in a separate email" in text
