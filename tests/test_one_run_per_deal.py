"""One live flow run per deal: a second run would open every wait twice. The rule is the deal's
(``Deal.drive_by``), so every door that starts a run meets it: ``dealflow deal start`` (see
tests/test_deal_flow.py), and a run started any other way (the UI's "Run" on the deal
deployment, a script), which fails at its first step."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models import AuditEntry, Deal
from models.deal import deal_by_number
from models.errors import DealAlreadyRunning, DomainError
from services.db import session_scope

from .helpers import answers, audit_actions, in_background, wait_for_run, wait_row

FIRST, SECOND = "0b9d1f6e-0000-4000-8000-000000000001", "0b9d1f6e-0000-4000-8000-000000000002"


class Liveness:
    """A stand-in for the Prefect API: the state of each live run, and the runs asked about."""

    def __init__(self, **live: str):
        self.live = live
        self.asked: list[str] = []

    def __call__(self, run_id: str) -> str | None:
        self.asked.append(run_id)
        return self.live.get(run_id)


def a_deal(flow_run_id: str | None = None) -> Deal:
    return Deal(number="DEAL-0007", flow_run_id=flow_run_id)


# --- the rule, without a database -------------------------------------------------------------------

def test_a_deal_without_a_run_is_driven_by_the_first_that_comes_without_asking_anyone():
    deal, liveness = a_deal(), Liveness()
    assert deal.drive_by(FIRST, liveness) is True
    assert deal.flow_run_id == FIRST and liveness.asked == []


def test_the_run_that_drives_the_deal_changes_nothing_when_it_comes_again():
    deal, liveness = a_deal(FIRST), Liveness(**{FIRST: "Running"})
    assert deal.drive_by(FIRST, liveness) is False
    assert deal.flow_run_id == FIRST and liveness.asked == []  # a re-entry after a resume asks nobody


def test_a_second_run_is_refused_while_the_first_is_live_naming_it_and_its_state():
    deal = a_deal(FIRST)
    with pytest.raises(DealAlreadyRunning) as refused:
        deal.drive_by(SECOND, Liveness(**{FIRST: "Suspended"}))
    assert str(refused.value) == (f"lead: deal DEAL-0007 already runs as flow run {FIRST} (Suspended); "
                                  f"answer its waits with `dealflow answer`")
    assert isinstance(refused.value, DomainError)
    assert deal.flow_run_id == FIRST


def test_a_new_run_takes_over_once_the_first_has_ended_or_is_unknown_to_the_server():
    deal, liveness = a_deal(FIRST), Liveness()  # Crashed, Completed, or on another server: not live
    assert deal.drive_by(SECOND, liveness) is True
    assert deal.flow_run_id == SECOND and liveness.asked == [FIRST]


def test_before_a_run_exists_a_start_is_refused_by_the_same_rule():
    with pytest.raises(DealAlreadyRunning, match=r"\(Paused\)"):
        a_deal(FIRST).refuse_second_run(Liveness(**{FIRST: "Paused"}))
    a_deal(FIRST).refuse_second_run(Liveness())
    a_deal().refuse_second_run(Liveness(**{FIRST: "Paused"}))


# --- attaching a run, in the database -----------------------------------------------------------------

def attach(number: str, run_id: str, liveness) -> bool:
    from models import process

    with session_scope() as s:
        changed = process.attach_flow_run(s, deal_by_number(s, number), run_id, liveness)
        s.commit()
        return changed


def flow_attached(number: str) -> int:
    with session_scope() as s:
        deal_id = deal_by_number(s, number).id
        return s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.deal_id == deal_id, AuditEntry.action == "deal.flow_attached"))


def test_attaching_records_the_run_once_and_a_refused_second_run_leaves_the_deal_as_it_was(new_deal):
    assert attach(new_deal, FIRST, Liveness()) is True
    assert attach(new_deal, FIRST, Liveness()) is False
    with pytest.raises(DealAlreadyRunning):
        attach(new_deal, SECOND, Liveness(**{FIRST: "Running"}))
    with session_scope() as s:
        assert deal_by_number(s, new_deal).flow_run_id == FIRST
    assert flow_attached(new_deal) == 1
    assert attach(new_deal, SECOND, Liveness()) is True  # the first ended
    assert flow_attached(new_deal) == 2


def test_attaching_reads_the_run_recorded_by_another_session_not_a_stale_one(new_deal):
    """The deal row is read again, locked: two runs attaching at once cannot both win."""
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert deal.flow_run_id is None  # read before the other run attached
        s.commit()  # (its transaction over: on SQLite it held the write lock) the object stays as read
        assert attach(new_deal, FIRST, Liveness()) is True  # another session, committed
        from models import process

        with pytest.raises(DealAlreadyRunning):
            process.attach_flow_run(s, deal, SECOND, Liveness(**{FIRST: "Pending"}))


def test_of_two_runs_attaching_at_once_the_second_waits_for_the_first_and_is_refused(new_deal):
    """The first holds the deal's row until it commits (PostgreSQL: SELECT … FOR UPDATE; SQLite:
    its write lock); the second then reads the first's run, live, and is refused."""
    import threading

    from models import process

    outcome: dict[str, object] = {}

    def second() -> None:
        try:
            outcome["attached"] = attach(new_deal, SECOND, Liveness(**{FIRST: "Running"}))
        except DealAlreadyRunning as exc:
            outcome["refused"] = str(exc)

    with session_scope() as s:
        assert process.attach_flow_run(s, deal_by_number(s, new_deal), FIRST, Liveness()) is True
        racer = threading.Thread(target=second)
        racer.start()
        racer.join(timeout=1)
        assert racer.is_alive(), outcome  # it waits: the first has not committed
        s.commit()
    racer.join(timeout=30)
    assert outcome == {"refused": f"lead: deal {new_deal} already runs as flow run {FIRST} (Running); "
                                  f"answer its waits with `dealflow answer`"}
    assert flow_attached(new_deal) == 1


# --- on a real Prefect API -------------------------------------------------------------------------

@pytest.mark.flow
def test_a_second_flow_run_of_a_deal_paused_at_a_wait_fails_at_once_and_the_deal_is_unchanged(
        prefect_api, new_deal):
    from flows.deal import deal_flow

    seen: dict = {}

    def second_run() -> None:
        seen["first"] = wait_for_run(new_deal, "qualify")
        before = wait_row(new_deal, "qualify"), audit_actions()
        with pytest.raises(DealAlreadyRunning) as refused:
            deal_flow(deal_number=new_deal, poll_interval=1, wait_timeout=60)
        seen["message"] = str(refused.value)
        seen["unchanged"] = (wait_row(new_deal, "qualify"), audit_actions()) == before
        with session_scope() as s:
            deal = deal_by_number(s, new_deal)
            seen["deal"] = deal.flow_run_id, deal.status, deal.open_wait.key
        answers.answer(new_deal, "qualify", {"by": "sofia", "qualified": False, "notes": "no budget"})
        answers.wait_closed(new_deal, "qualify")

    thread, errors = in_background([second_run])
    result = deal_flow(deal_number=new_deal, poll_interval=1, wait_timeout=120)
    thread.join(timeout=60)
    assert not errors, errors
    assert seen["message"] == (f"lead: deal {new_deal} already runs as flow run {seen['first']} (Paused); "
                               f"answer its waits with `dealflow answer`")
    assert seen["unchanged"]
    assert seen["deal"] == (seen["first"], "open", "qualify")
    assert result["status"] == "lost"  # the first run went on with the answer
    assert audit_actions().count("deal.flow_attached") == 1
