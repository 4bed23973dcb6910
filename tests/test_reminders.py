"""The reminder rules with a controllable clock: each reminder once, on the right day."""

from __future__ import annotations

import threading
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from dealflow.scenario import play_direct
from models import Email, EstimateRevision, Invoice, SalesOrder, ValidationError, Wait, utcnow
from models.reminders import ReminderRules, ReminderSent
from services.db import session_scope
from tasks.reminders import queue_due_reminders, send_reminder_mail

RULES = ReminderRules().__dict__ | {"dunning_days": [1, 7, 14, 30]}


def run(at: datetime, **rules) -> list[dict]:
    queued = queue_due_reminders.fn(at.isoformat(), RULES | rules)
    send_reminder_mail.fn([q["email_id"] for q in queued])
    return queued


def opened_in_the_morning(key: str) -> datetime:
    """Moves a wait's opening to 09:00 of its day, so that "later the same day" stays the same day
    whenever the suite runs (a test run at 23:30 once crossed midnight and saw a new day's reminder)."""
    with session_scope() as s:
        wait = s.scalars(select(Wait).where(Wait.key == key)).one()
        morning = wait.opened_at = datetime.combine(wait.opened_at.date(), time(9))
        s.commit()
    return morning


def test_dunning_letters_fire_on_their_days_and_once(new_deal):
    play_direct(new_deal, until="payment-1")
    with session_scope() as s:
        due = s.scalars(select(Invoice.due_date).where(Invoice.kind == "final")).one()  # (the deposit is paid)
    fired = {}
    for day in range(-1, 40):
        for item in run(datetime.combine(due + timedelta(days=day), time(8))):
            if item["rule"].startswith("dunning"):
                fired.setdefault(day, []).append((item["rule"], item["about"], item["to"]))
    mail = "priya.raman@riverside-metal.example"
    assert fired == {1: [("dunning-1", "INV-0001 level 1", mail)], 7: [("dunning-2", "INV-0001 level 2", mail)],
                     14: [("dunning-3", "INV-0001 level 3", mail)], 30: [("dunning-4", "INV-0001 level 4", mail)]}


def test_a_missed_dunning_day_sends_only_the_step_reached(new_deal):
    play_direct(new_deal, until="payment-1")
    with session_scope() as s:
        due = s.scalars(select(Invoice.due_date).where(Invoice.kind == "final")).one()  # (the deposit is paid)
    dunning = lambda day: [q["rule"] for q in run(datetime.combine(due + timedelta(days=day), time(8)))  # noqa: E731
                           if q["rule"].startswith("dunning")]
    assert dunning(10) == ["dunning-2"]
    assert dunning(11) == []


def test_a_paid_invoice_gets_no_letter(new_deal):
    play_direct(new_deal)
    assert [q for q in run(utcnow() + timedelta(days=45)) if q["rule"].startswith("dunning")] == []


def test_an_unanswered_estimate_is_recalled_every_n_days_at_most_k_times(new_deal):
    play_direct(new_deal, until="decision-rev-1")
    with session_scope() as s:
        sent_at = s.scalars(select(EstimateRevision.sent_at)).one()
    got = {d: [q["about"] for q in run(sent_at + timedelta(days=d, minutes=1)) if q["rule"] == "estimate"]
           for d in (6, 7, 8, 13, 14, 21, 28)}
    assert got == {6: [], 7: ["EST-0001-R1, reminder 1"], 8: [], 13: [], 14: ["EST-0001-R1, reminder 2"],
                   21: [], 28: []}


def test_follow_ups_come_as_one_daily_digest_to_their_owner(new_deal):
    play_direct(new_deal, until="estimate-rev-1")  # Sofia's third follow-up is open, due in 10 days
    assert [q for q in run(utcnow() + timedelta(days=2)) if q["rule"] == "followup-digest"] == []
    later = (utcnow() + timedelta(days=11)).replace(hour=12, minute=0)  # an hour later is the same day
    digest = [q for q in run(later) if q["rule"] == "followup-digest"]
    assert [(q["to"], q["subject"]) for q in digest] == [("sofia@glocial.example", "1 follow-ups due today (1 overdue)")]
    assert [q for q in run(later + timedelta(hours=1)) if q["rule"] == "followup-digest"] == []
    assert len([q for q in run(later + timedelta(days=1)) if q["rule"] == "followup-digest"]) == 1


def test_qa_waiting_too_long_and_a_stuck_deal_reach_the_right_people(new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    with session_scope() as s:
        created = s.scalars(select(SalesOrder.created_at)).one()
    at = created + timedelta(days=5, minutes=1)
    got = sorted((q["rule"], q["to"]) for q in run(at) if q["rule"] in ("qa-pending", "stuck-wait"))
    assert got == [("qa-pending", "qa@glocial.example"), ("stuck-wait", "manager@glocial.example"),
                   ("stuck-wait", "sofia@glocial.example")]


def test_two_overlapping_runs_send_each_reminder_once(new_deal):
    play_direct(new_deal, until="payment-1")
    with session_scope() as s:
        due = s.scalars(select(Invoice.due_date).where(Invoice.kind == "final")).one()  # (the deposit is paid)
    at = datetime.combine(due + timedelta(days=7), time(8))
    barrier = threading.Barrier(2)
    results: list[list[dict]] = []

    def one_run() -> None:
        barrier.wait()
        results.append(queue_due_reminders.fn(at.isoformat(), RULES))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2
    combined = [(q["rule"], q["about"], q["to"]) for q in results[0] + results[1]]
    assert ("dunning-2", "INV-0001 level 2", "priya.raman@riverside-metal.example") in combined
    assert len(combined) == len(set(combined))  # nothing queued by both runs
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(ReminderSent)) == len(combined)
        assert s.scalar(select(func.count()).select_from(Email).where(Email.dedupe_key.like("reminder:%"))) == len(combined)


def test_rules_are_checked():
    with pytest.raises(ValidationError, match="^dunning_days: must be increasing"):
        ReminderRules(dunning_days=(7, 1))
    with pytest.raises(ValidationError, match="^qa_pending_days: must be at least 1"):
        ReminderRules(qa_pending_days=0)


@pytest.mark.flow
def test_the_reminders_flow_sends_and_leaves_a_table_of_what_it_sent(prefect_api, new_deal, data_dir):
    import json

    from prefect.artifacts import Artifact

    from flows.reminders import reminders_flow
    from models.markdown import plain

    play_direct(new_deal, until="payment-1")
    with session_scope() as s:
        due = s.scalars(select(Invoice.due_date).where(Invoice.kind == "final")).one()  # (the deposit is paid)
    at = datetime.combine(due + timedelta(days=7), time(8)).isoformat()
    queued = reminders_flow(as_of=at)
    assert ("dunning-2", "INV-0001 level 2") in [(q["rule"], q["about"]) for q in queued]
    table = json.loads(Artifact.get("reminders").data)
    assert {(r["rule"], plain(r["to"]), r["sent"]) for r in table} >= {
        ("dunning-2", "priya.raman@riverside-metal.example", True)}
    assert len(list((data_dir / "mail").glob("*-dunning.eml"))) == 1
    assert (data_dir / "documents" / "INV-0001-D2.pdf").exists()
    assert reminders_flow(as_of=at) == []  # the same day again: nothing twice


def test_mail_waiting_over_an_hour_is_told_to_the_managers_once_a_day_and_shown_by_the_outbox(new_deal):
    from click.testing import CliRunner

    from dealflow.cli import main
    from tasks.deal_steps import send_estimate

    from .helpers import record_answer

    play_direct(new_deal, until="estimate-rev-1")
    record_answer.fn(new_deal, "estimate-rev-1", {"by": "mark", "lines": [{"sku": "VMC-850", "quantity": 1}]})
    send_estimate.fn(new_deal)  # the estimate email is pending: as if the mail server were down
    created = utcnow()
    assert [q["rule"] for q in queue_due_reminders.fn((created + timedelta(minutes=59)).isoformat(), RULES)
            if q["rule"] == "mail-waiting"] == []
    later = created + timedelta(hours=2, minutes=5)
    queued = [q for q in queue_due_reminders.fn(later.isoformat(), RULES) if q["rule"] == "mail-waiting"]
    assert [(q["to"], q["about"]) for q in queued] == [("manager@glocial.example", "1 emails in the outbox")]
    with session_scope() as s:
        digest = s.get(Email, queued[0]["email_id"])
        assert digest.context["lines"][0].startswith("1 pending for over 1 h 00 min; the oldest (email 1, Estimate "
                                                     "EST-0001-R1 for Riverside Metalworks Ltd) has waited 2 h 0")
    assert [q for q in queue_due_reminders.fn(later.isoformat(), RULES) if q["rule"] == "mail-waiting"] == []
    result = CliRunner().invoke(main, ["outbox"])
    assert result.exit_code == 0
    assert "2 pending; the oldest (email 1) has waited 0 min" in result.stdout  # the estimate and the digest


def test_a_deal_waiting_for_its_deposit_is_told_to_the_managers_and_finance_once_a_day(new_deal):
    play_direct(new_deal, until="deposit-1")
    opened = opened_in_the_morning("deposit-1")

    def told(at: datetime) -> list[tuple[str, str]]:
        return sorted((q["to"], q["subject"]) for q in run(at) if q["rule"] == "deposit-waiting")

    assert told(opened + timedelta(days=2, hours=23)) == []
    at = opened + timedelta(days=3, minutes=1)
    subject = "Waiting for deposit 3 days: DEAL-0001 (Riverside Metalworks Ltd)"
    assert told(at) == [("finance@glocial.example", subject), ("manager@glocial.example", subject)]
    assert told(at + timedelta(minutes=30)) == []  # once a day
    assert len(told(at + timedelta(days=1))) == 2
    with session_scope() as s:
        mail = s.scalars(select(Email).where(Email.kind == "staff_reminder", Email.subject == subject)).first()
        assert "DEP-0001: 52255.10 USD, paid 0.00, due 52255.10" in str(mail.context), mail.context


def test_an_order_on_credit_hold_over_n_working_hours_is_told_to_credit_control_and_the_managers(new_deal):
    from models import StaffUser, Wait
    from models.customers import edit_customer, find_customer

    with session_scope() as s:
        edit_customer(s, find_customer(s, "priya.raman@riverside-metal.example"), {"credit_limit": "100000"})
        s.scalars(select(StaffUser).where(StaffUser.handle == "finance")).one().roles = "finance,credit"
        s.commit()
    play_direct(new_deal, until="credit-rev-2")
    monday_9 = datetime(2026, 11, 30, 9, 0)
    with session_scope() as s:
        s.scalars(select(Wait).where(Wait.key == "credit-rev-2")).one().opened_at = monday_9
        s.commit()

    def told(at: datetime) -> list[str]:
        return sorted(q["to"] for q in run(at) if q["rule"] == "credit-hold")

    assert told(monday_9 + timedelta(hours=3)) == []  # within 4 working hours
    assert told(monday_9 + timedelta(hours=5)) == ["finance@glocial.example", "manager@glocial.example"]
    assert told(monday_9 + timedelta(hours=6)) == []  # once a day
    with session_scope() as s:
        mail = s.scalars(select(Email).where(Email.kind == "staff_reminder", Email.to_addr == "manager@glocial.example")
                         .order_by(Email.id.desc())).first()
        assert mail.subject == "Order on credit hold 5 working hours: DEAL-0001 (Riverside Metalworks Ltd)"


def test_a_return_waiting_too_long_on_a_won_deal_reaches_those_who_can_answer_it_and_the_managers(won_deal):
    from tests.test_returns import AUTHORIZE, LATHE, _ask, drive_case, shipped_serials

    number = _ask(won_deal, f"{LATHE}:1:{shipped_serials(won_deal, LATHE)[0]}")
    drive_case(number, {"return_authorize": AUTHORIZE})  # now it waits for delivery to receive the goods
    opened = opened_in_the_morning("rma-0001-receive")
    assert [q for q in run(opened + timedelta(days=2)) if q["rule"] == "stuck-wait"] == []
    got = sorted((q["to"], q["subject"]) for q in run(opened + timedelta(days=5, minutes=1))
                 if q["rule"] == "stuck-wait")
    assert got == [(to, f"RMA-0001 of {won_deal} (Riverside Metalworks Ltd) has waited 5 days for return_receive")
                   for to in ("delivery@glocial.example", "manager@glocial.example")]
    assert [q for q in run(opened + timedelta(days=5, hours=1)) if q["rule"] == "stuck-wait"] == []  # once a day
