"""A discount over its preparer's limit waits for a sales manager (``models.waits.discount``):
approved, lowered (the lines and totals recomputed) or sent back; nothing reaches the customer
before. On SQLite, and on PostgreSQL in CI."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dealflow.scenario import DISCOUNT_SCRIPT, SCRIPT, play_direct
from models import AuditEntry, Document, Email, StaffUser, ValidationError
from models.clock import working_hours
from models.deal import deal_by_number
from models.errors import DiscountNeedsApproval
from models.plan import next_step, whose_turn
from models.reminders import ReminderRules
from models.staff import DEFAULT_DISCOUNT_LIMIT
from models.waits import due_reminders
from services.db import session_scope
from services.views import deal_page, deal_summary
from tasks.deal_steps import open_wait

from .helpers import counts, record_answer, wait_row

ASKING = DISCOUNT_SCRIPT[2]  # Mark's revision 1: 15 % on the lathes


def _at_approval(number: str) -> None:
    play_direct(number, DISCOUNT_SCRIPT, until="discount-rev-1")


def _sent_to_customer(number: str) -> list[str]:
    with session_scope() as s:
        deal = deal_by_number(s, number)
        return [d.number for d in s.scalars(select(Document).where(Document.deal_id == deal.id,
                                                                   Document.kind == "estimate")
                                                    .order_by(Document.id))] + \
               [m.subject for m in s.scalars(select(Email).where(Email.deal_id == deal.id, Email.kind == "estimate")
                                             .order_by(Email.id))]


def test_limits_by_role_and_by_person(db):
    with session_scope() as s:
        mark, manager = (s.scalars(select(StaffUser).where(StaffUser.handle == h)).one() for h in ("mark", "manager"))
        assert (mark.discount_limit, manager.discount_limit) == (DEFAULT_DISCOUNT_LIMIT, None)
        mark.set_discount_limit("20")
        assert mark.discount_limit == Decimal(20)
        mark.set_discount_limit("unlimited")
        assert mark.discount_limit is None
        mark.set_discount_limit("default")
        assert mark.discount_limit == DEFAULT_DISCOUNT_LIMIT
        for bad in ("-1", "101", "ten", "1e999", "12.345", "nan"):
            with pytest.raises(ValidationError, match="^discount: must be a percentage"):
                mark.set_discount_limit(bad)
        assert mark.discount_limit == DEFAULT_DISCOUNT_LIMIT


def test_over_the_limit_the_deal_waits_for_a_manager_and_nothing_goes_out(new_deal):
    _at_approval(new_deal)
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        step = next_step(s, deal)
        assert (step.name, step.key, step.roles) == ("discount", "discount-rev-1", ("manager",))
        assert whose_turn(deal, step) == ("manager", None)  # the managers' queue
        rev = deal.estimate.latest
        assert (rev.status, rev.discount_asked_pct, rev.discount_limit_pct) == ("draft", 15, 10)
        with pytest.raises(DiscountNeedsApproval, match="a sales manager must approve it first"):
            rev.send(s)  # the entity itself refuses: no second door sends it
    assert _sent_to_customer(new_deal) == []
    description = wait_row(new_deal, "discount-rev-1")["description"]
    for said in ("approve the discount on estimate revision 1, prepared by Mark Henry", "up to **15 %**",
                 "limit of 10 %", "CNC-LATHE-2000", "**total ", "before this deal: 0 won, 0 lost, 0 open",
                 "open balance nothing"):
        assert said in description, said


def test_an_engineer_cannot_approve_their_own_discount(new_deal):
    _at_approval(new_deal)
    before = counts()
    result = record_answer.fn(new_deal, "discount-rev-1", {"by": "mark", "decision": "approve"})
    assert not result["accepted"] and "it needs the role manager" in result["reason"]
    after = counts()
    assert after == before  # nothing of the business written
    assert wait_row(new_deal, "discount-rev-1")["status"] == "refused"
    assert _sent_to_customer(new_deal) == []


def test_approved_as_asked_it_goes_out_and_the_page_says_who(new_deal):
    _at_approval(new_deal)
    result = record_answer.fn(new_deal, "discount-rev-1", {"by": "manager", "decision": "approve",
                                                           "reason": "Strategic account."})
    assert result["accepted"] and result["outcome"] == "revision 1: 15 % discount approved"
    play_direct(new_deal, DISCOUNT_SCRIPT, until="decision-rev-1")
    assert _sent_to_customer(new_deal)[0] == "EST-0001-R1"
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert [ln.discount_pct for ln in deal.estimate.latest.lines] == [15, 0, 0]
        page = str(deal_page(s, deal))
        summary = deal_summary(s, deal)
    assert 'Revision 1: 15 % discount asked by Mark Henry (limit 10 %), approved by Morgan Lee (sales manager): ' \
           '"Strategic account."' in page
    assert r"Morgan Lee (sales manager) answered the discount approval\: revision 1\: 15 % discount approved" in page
    assert summary["estimate_revisions"][0]["discount"] == {"asked_pct": "15.00", "limit_pct": "10.00",
                                                           "decision": "approved", "by": "manager",
                                                           "reason": "Strategic account."}


def test_lowered_the_lines_and_totals_are_recomputed_and_recorded(new_deal):
    _at_approval(new_deal)
    with session_scope() as s:
        asked_total = deal_by_number(s, new_deal).estimate.latest.totals.total
    play_direct(new_deal, DISCOUNT_SCRIPT, until="decision-rev-1")  # the manager lowers it to 12 %
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        rev = deal.estimate.latest
        assert (rev.status, rev.discount_decision, rev.discount_decided_by.handle) == ("sent", "lowered", "manager")
        assert [ln.discount_pct for ln in rev.lines] == [12, 0, 0]
        # 2 x 48,500 at 12 % instead of 15 %: 2,910.00 more net, with the lathe's 18 % tax 3,433.80 more
        assert rev.totals.total - asked_total == Decimal("3433.80")
        lowered = s.scalars(select(AuditEntry).where(AuditEntry.action == "estimate.discount_lowered")).one()
        assert (lowered.actor, lowered.details["lines"]) == (
            "manager", [{"sku": "CNC-LATHE-2000", "from": "15.00", "to": "12.00"}])
        sent = s.scalars(select(Document).where(Document.kind == "estimate")).one()
        assert [ln["discount_pct"] for ln in sent.context["lines"]][0] in ("12", "12.00")  # what the customer sees


def test_sent_back_the_engineer_drafts_again_with_the_reason(new_deal):
    _at_approval(new_deal)
    result = record_answer.fn(new_deal, "discount-rev-1", {"by": "manager", "decision": "send_back",
                                                           "reason": "Keep it at 10 %; offer free training instead."})
    assert result["accepted"], result
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        step = next_step(s, deal)
        assert (step.name, step.key) == ("estimate", "estimate-rev-2")
        assert deal.estimate.latest.status == "returned"
    play_direct(new_deal, [*DISCOUNT_SCRIPT[:4], SCRIPT[2]], until="decision-rev-2")  # now 5 %: within his limit
    description = wait_row(new_deal, "estimate-rev-2")["description"]
    assert ('prepare revision 2. Morgan Lee (sales manager) sent revision 1 back: "Keep it at 10 %; offer free '
            'training instead." The form starts with its lines') in description
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert [r.status for r in deal.estimate.revisions] == ["returned", "sent"]
        doc = s.scalars(select(Document).where(Document.kind == "estimate")).one()
        assert doc.number == "EST-0001-R2" and doc.context["changes"] == []  # nothing the customer saw before


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=st.sampled_from([
    {"decision": "lower"},  # no percentage
    {"decision": "lower", "discount_pct": "15"},  # not lower than asked
    {"decision": "lower", "discount_pct": "-1"},
    {"decision": "send_back", "reason": "  "},  # no reason
    {"decision": "maybe"},
]) | st.builds(lambda pct: {"decision": "lower", "discount_pct": str(pct)},
               st.decimals(min_value=15, max_value=10**6, allow_nan=False, places=2)))
def test_a_bad_decision_is_refused_in_one_line_with_nothing_written(new_deal, answer):
    with session_scope() as s:
        started = deal_by_number(s, new_deal).estimate is not None
    if not started:  # the first example: the deal goes to the approval (the others retry it)
        _at_approval(new_deal)
    with session_scope() as s:
        key = next_step(s, deal_by_number(s, new_deal)).key
    open_wait(new_deal, "discount", key, None)  # after a refusal: the retry's wait, as the flow opens it
    before = counts()
    result = record_answer.fn(new_deal, key, {"by": "manager", **answer})
    assert not result["accepted"] and "\n" not in result["reason"]
    assert result["reason"].split(":")[0] in ("discount_pct", "reason", "decision"), result["reason"]
    after = counts()
    assert after == before
    with session_scope() as s:
        rev = deal_by_number(s, new_deal).estimate.latest
        assert (rev.status, rev.discount_decision, [ln.discount_pct for ln in rev.lines]) == ("draft", None,
                                                                                              [15, 0, 0])


def test_working_hours_count_monday_to_friday_nine_to_five():
    friday_4pm = datetime(2026, 12, 4, 16, 0)
    assert working_hours(friday_4pm, datetime(2026, 12, 4, 18, 0)) == 1
    assert working_hours(friday_4pm, datetime(2026, 12, 7, 8, 0)) == 1  # the weekend does not count
    assert working_hours(friday_4pm, datetime(2026, 12, 7, 12, 0)) == 4
    assert working_hours(friday_4pm, datetime(2026, 12, 7, 12, 30)) == 4.5


@given(start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1)),
       a=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)),
       b=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)))
def test_working_hours_add_up_and_never_exceed_the_time_passed(start, a, b):
    middle, end = start + a, start + a + b
    assert working_hours(start, end) == pytest.approx(working_hours(start, middle) + working_hours(middle, end))
    assert 0 <= working_hours(start, end) <= (end - start).total_seconds() / 3600 * 8 / 24 + 8


def test_the_managers_are_reminded_after_four_working_hours_once_a_day(new_deal):
    _at_approval(new_deal)
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        wait = deal.open_wait
        wait.opened_at = datetime(2026, 12, 4, 16, 0)  # a Friday, 16:00 UTC
        s.commit()

    def due(at: datetime) -> list:
        with session_scope() as s:
            return [r for r in due_reminders(s, at, ReminderRules()) if r.rule == "discount-approval"]

    assert due(datetime(2026, 12, 7, 12, 0)) == []  # Monday noon: 4 working hours, not more
    [reminder] = due(datetime(2026, 12, 7, 13, 0))
    assert reminder.recipient == "manager@glocial.example" and "5 working hours" in reminder.subject
    from models import reminders

    with session_scope() as s:
        assert reminders.record(s, reminder) is not None
        s.commit()
    assert due(datetime(2026, 12, 7, 16, 0)) == []  # once a day
    assert len(due(datetime(2026, 12, 8, 9, 30))) == 1  # and again the next day while it waits


def test_staff_limit_and_the_discounts_report_on_the_command_line(new_deal):
    import json

    from click.testing import CliRunner

    from dealflow.cli import main
    from dealflow.cli.reports import REPORT_NAMES
    from services.reports import REPORTS

    assert REPORT_NAMES == REPORTS
    done = CliRunner().invoke(main, ["staff", "limit", "mark", "--discount", "20"])
    assert (done.exit_code, done.stdout) == (0, "mark: discount limit 20 %\n"), done.output
    bad = CliRunner().invoke(main, ["staff", "limit", "mark", "--discount", "120"])
    assert bad.exit_code == 2 and bad.stderr.strip() == ("error: discount: must be a percentage from 0 to 100 with at "
                                                         "most 2 decimals, got '120'"), bad.output
    play_direct(new_deal, DISCOUNT_SCRIPT[:3], until="decision-rev-1")  # 15 %: within his 20 % now, no approval
    done = CliRunner().invoke(main, ["staff", "limit", "mark", "--discount", "default"])
    assert done.stdout == "mark: discount limit 10 %\n"
    rows = json.loads(CliRunner().invoke(main, ["report", "discounts", "--json"]).stdout)
    # 2 x 48,500 at 15 %: 14,550.00 given, no approval needed
    assert [(r["prepared_by"], r["sent"], r["discounted"], r["largest_pct"], r["discount"], r["approved"])
            for r in rows] == [("mark", 1, 1, "15.00", "14550.00", 0)]
    with session_scope() as s:
        assert [e.details["discount_limit"] for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action == "staff.discount_limit").order_by(AuditEntry.id))] == ["20", "10"]
