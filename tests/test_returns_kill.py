"""A return's steps run by a process of their own that is killed (SIGKILL, no goodbye) at a chosen
moment, then run again from the top under the same run, as the executor's next attempt would:
the lathe is restocked once, one credit note is issued with one number (the CN and RFD series
without a gap), the RMA and the credit note are each emailed once, the refund is recorded once,
and the return ends closed. Killed right after the inspection's commit; after the credit note's
commit while the mail server takes its time over the recipient (the mail claimed, not handed
over); and, on PostgreSQL, inside each of those transactions, held there by a row lock.

The process runs the return's plan as ``flows.cases`` does (the same application calls in the
same order: the deal's mail first, then the case's next step, an automatic step or a wait opened
and answered), without Prefect's engine, so that it runs on both databases in the time CI has: a
wait's answer is read from ``ANSWERS/<key>.json``, where the test puts it as a Resume stores a
run's input; until it is there the process waits at the wait, as a run paused in its process
does. Run as ``python -m tests.test_returns_kill RUN_ID RMA-0001 DEAL-0001 ANSWERS``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from application import cases, deals
from models import AuditEntry, Deal, Document, DocumentSequence, Email, Wait
from models.catalog import StockLevel, StockMove
from models.credit_notes import CreditNote
from models.deal import deal_by_number
from models.products import product_by_sku
from models.returns import ReturnOrder
from services.db import read_only, session_scope

LATHE = "CNC-LATHE-2000"
REASON = "One lathe arrived with a cracked guard."
MAX_STEPS = 100  # as flows.cases: a plan that loops is a bug, not a wait

on_postgres = pytest.mark.skipif(not os.environ.get("DEALFLOW_TEST_DATABASE_URL"),
                                 reason="held inside a transaction by a row lock: PostgreSQL (SQLite takes its "
                                        "write lock at BEGIN, before anything is written)")


# --- the process that runs the return's steps ------------------------------------------------------

def run_steps(run_id: str, case: str, deal: str, answers: Path) -> dict:
    """The return's run from its top, as ``flows.cases._drive`` runs it."""
    from services.mailer import TransientMailError

    cases.attach_run(case, run_id)
    for _ in range(MAX_STEPS):
        if deals.mail_pending(deal):
            try:
                deals.deliver_mail(deal)
            except TransientMailError:  # it waits in the outbox and the run goes on (flows.mail)
                pass
        step = cases.next_step(case)
        if step["kind"] == "done":
            return {"case": case, "deal": deal, "status": step["status"]}
        if step["kind"] == "auto":
            cases.run_automatic(step["name"], case, step["key"])
            continue
        opened = step["opened"]
        if opened is None or opened["flow_run_id"] != run_id:  # else a re-entry: the wait is written
            deals.open_wait(deal, step["name"], step["key"], run_id)
        stored = answers / f"{step['key']}.json"
        print(f"paused at {step['key']}", flush=True)
        while not stored.exists():  # paused here until it is resumed
            time.sleep(0.05)
        deals.record_answer(deal, step["key"], json.loads(stored.read_text()))
    raise RuntimeError(f"{case} took more than {MAX_STEPS} steps; a rule must be looping")


class Run:
    """One run of a return (its id kept across attempts) whose attempts are processes of their
    own; ``resume`` stores a wait's answer, signed by its person, where the process reads it."""

    def __init__(self, case: str, deal: str, folder: Path):
        self.id, self.case, self.deal = str(uuid.uuid4()), case, deal
        self.answers = folder / "answers"
        self.answers.mkdir(parents=True)
        self.folder = folder
        self.process: subprocess.Popen | None = None
        self.attempts = 0

    def start(self) -> None:
        """An attempt of the run: a new process that runs the return from its top."""
        from services.config import PROJECT_ROOT

        self.attempts += 1
        self.log = self.folder / f"attempt-{self.attempts}.log"
        with self.log.open("wb") as out:
            args = [self.id, self.case, self.deal, str(self.answers)]
            self.process = subprocess.Popen([sys.executable, "-m", "tests.test_returns_kill", *args],
                                            cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=out,
                                            stderr=subprocess.STDOUT)

    def resume(self, key: str, answer: dict) -> None:
        from dealflow.scenario import TEAM

        stored = self.answers / f"{key}.json"
        partial = stored.with_suffix(".part")
        partial.write_text(json.dumps(TEAM.signed(self.deal, key, answer)))
        partial.rename(stored)  # all at once: the process never reads half an answer

    def until(self, what: str, seen, every: float = 0.1, timeout: float = 60) -> None:
        """Until ``seen()`` (asked ``every`` seconds), with the process alive all along."""
        deadline = time.monotonic() + timeout
        while not seen():
            assert self.process.poll() is None, f"the run ended before {what}: {self.output()}"
            assert time.monotonic() < deadline, f"never {what}: {self.output()}"
            time.sleep(every)

    def paused_at(self, key: str) -> None:
        """Until this attempt waits at ``key`` (its wait open, for this run)."""
        self.until(f"paused at {key}", lambda: f"paused at {key}\n" in self.output()
                   and wait_of(self.deal, key) == ("open", self.id))

    def kill(self) -> None:
        assert self.process.poll() is None, self.output()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def finish(self, timeout: float = 60) -> dict:
        """The attempt's end: how the run ended, as the flow returns it."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the run did not end within {timeout} s: {self.output()}") from None
        assert code == 0, self.output()
        return json.loads(self.output().strip().splitlines()[-1])

    def output(self) -> str:
        """What this attempt printed (its last lines)."""
        return self.log.read_text(errors="replace")[-3000:]


# --- what the database and the mail server hold ----------------------------------------------------

def polled(statement) -> list:
    """Rows of a read that never takes SQLite's write lock: a poll does not hold the run up."""
    with read_only() as conn:
        return [tuple(row) for row in conn.execute(statement)]


def wait_of(deal: str, key: str) -> tuple[str, str | None] | None:
    rows = polled(select(Wait.status, Wait.flow_run_id).join(Deal, Wait.deal_id == Deal.id)
                  .where(Deal.number == deal, Wait.key == key))
    return rows[0] if rows else None


def status_of(number: str) -> str:
    return polled(select(ReturnOrder.status).where(ReturnOrder.number == number))[0][0]


def mail_status(kind: str) -> list[str]:
    return [status for status, in polled(select(Email.status).where(Email.kind == kind).order_by(Email.id))]


def on_hand(sku: str) -> int:
    with session_scope() as s:
        return s.get(StockLevel, product_by_sku(s, sku).id).on_hand


def sequences() -> dict[str, int]:
    with session_scope() as s:
        return {q.doc_type: q.last_value for q in s.scalars(select(DocumentSequence))}


def a_return_of_one_lathe(deal: str, run_folder: Path) -> tuple[Run, dict, str]:
    """RMA-0001 for one of the deal's lathes by its serial, its run not started yet, the four
    answers that take it to its credit note (a 10 % restocking fee, refunded by bank transfer)
    and the lathe's serial number."""
    from dealflow.scenario import TEAM
    from models.serials import serials_shipped_to

    with session_scope() as s:
        sn = min(u.serial for u in serials_shipped_to(s, deal_by_number(s, deal)) if u.product.sku == LATHE)
    lines = f"{LATHE}:1:{sn}"
    proof = TEAM.login("manager").prove(deal, "return", cases.return_payload("manager", lines, REASON))
    number = cases.ask_for_return(deal, lines, REASON, "manager", proof)["number"]
    assert number == "RMA-0001"
    answers = {
        "rma-0001-authorize": {"by": "manager", "decision": "authorize", "restocking_fee_pct": 10, "note": ""},
        "rma-0001-receive": {"by": "delivery", "note": "Crate intact.",
                             "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
        "rma-0001-inspect": {"by": "qa", "notes": "Guard replaced; as new.",
                             "lines": [{"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "restock"}]},
        "rma-0001-credit": {"by": "finance", "settle": "refund", "method": "bank_transfer"},
    }
    return Run(number, deal, run_folder), answers, sn


def assert_done_once(number: str, deal: str, stock_before: int, sequences_before: dict[str, int], smtp,
                     serial: str) -> None:
    """Everything the return does, done exactly once."""
    from models.serials import serial_by_number

    assert on_hand(LATHE) == stock_before + 1
    assert sequences() == {**sequences_before, **{t: sequences_before[t] + 1 for t in ("return", "credit_note",
                                                                                     "refund")}}  # no gap
    with session_scope() as s:
        ret = s.scalars(select(ReturnOrder).where(ReturnOrder.number == number)).one()
        assert ret.status == "closed" and ret.lines[0].restock_qty == 1
        moves = s.scalars(select(StockMove).where(StockMove.reason == "return")).all()
        assert [(m.quantity, m.reference, m.source_key) for m in moves] == [(1, number, f"return:{number}:1")]
        notes = s.scalars(select(CreditNote)).all()
        assert [(n.number, n.return_id, n.settlement, n.refund_number) for n in notes] == [
            ("CN-0001", ret.id, "refund", "RFD-0001")]
        note = notes[0]
        assert note.refunded == note.amount > 0 and note.kept_as_credit == 0
        kinds = [d.kind for d in s.scalars(select(Document).where(Document.deal_id == ret.deal_id))]
        assert (kinds.count("rma"), kinds.count("credit_note")) == (1, 1), kinds
        mails = [(m.kind, m.status) for m in s.scalars(select(Email).where(
            Email.deal_id == ret.deal_id, Email.kind.in_(["rma", "credit_note"])))]
        assert sorted(mails) == [("credit_note", "sent"), ("rma", "sent")], mails
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.subject.in_(
            [number, note.number, "rma-0001-inspect", "rma-0001-credit"]))))
        assert (actions.count("return.inspected"), actions.count("credit_note.issued"),
                actions.count("return.closed")) == (1, 1, 1), actions
        events = [e.event for e in serial_by_number(s, serial).events]
        assert (events.count("return_received"), events.count("restocked")) == (1, 1), events
        assert serial_by_number(s, serial).status == "in_stock"
    subjects = sorted(r.message["Subject"] for r in smtp.received)
    assert subjects == [f"Credit note CN-0001 for your return {number}",
                        f"Return authorized: {number} for order SO-0001"], subjects
    assert all(r.rcpt_tos == ["priya.raman@riverside-metal.example"] for r in smtp.received)
    assert cases.case_summary(number)["credit_note"] == "CN-0001"
    assert deals.mail_pending(deal) is False


@pytest.fixture
def counted(won_deal, smtp):
    """The won deal's stock of lathes and its numbers before the return, its mail already sent
    (the mail server records only the return's)."""
    deals.deliver_mail(won_deal)
    smtp.received.clear()
    return on_hand(LATHE), sequences()


# --- killed after a commit ---------------------------------------------------------------------------

def test_a_return_killed_just_after_its_inspection_committed_restocks_once_when_its_run_goes_on(
        won_deal, smtp, counted, tmp_path):
    """The kill lands as soon as the inspection is seen committed, wherever the process then is
    (looking for mail, at the next step, opening finance's wait): the next attempt of the run
    finds the inspection done and goes on to the credit note."""
    stock_before, sequences_before = counted
    run, answers, serial = a_return_of_one_lathe(won_deal, tmp_path / "run")
    run.start()
    for key in ("rma-0001-authorize", "rma-0001-receive"):
        run.paused_at(key)
        run.resume(key, answers[key])
    run.paused_at("rma-0001-inspect")
    run.resume("rma-0001-inspect", answers["rma-0001-inspect"])
    run.until("inspected", lambda: status_of(run.case) == "inspected", every=0.01)
    run.kill()
    assert on_hand(LATHE) == stock_before + 1  # committed before it died

    run.start()  # the executor's next attempt: the same run from its top
    run.paused_at("rma-0001-credit")
    assert on_hand(LATHE) == stock_before + 1  # not restocked again
    run.resume("rma-0001-credit", answers["rma-0001-credit"])
    assert run.finish() == {"case": "RMA-0001", "deal": won_deal, "status": "closed"}
    assert run.attempts == 2
    assert_done_once(run.case, won_deal, stock_before, sequences_before, smtp, serial)


def test_a_return_killed_after_its_credit_note_committed_sends_it_once_and_issues_no_second(
        won_deal, smtp, counted, tmp_path):
    """Killed while the mail server takes its time over the credit note's recipient: the note,
    its refund and the return's close are committed, its email claimed and not handed over. The
    next attempt sends it, once, and issues nothing again."""
    stock_before, sequences_before = counted
    run, answers, serial = a_return_of_one_lathe(won_deal, tmp_path / "run")
    for key in ("rma-0001-authorize", "rma-0001-receive", "rma-0001-inspect"):
        run.resume(key, answers[key])  # answered ahead: each is read as the run reaches it
    run.start()
    run.paused_at("rma-0001-credit")
    assert mail_status("rma") == ["sent"]
    smtp.rcpt_delay = 30
    run.resume("rma-0001-credit", answers["rma-0001-credit"])
    run.until("sending the credit note", lambda: mail_status("credit_note") == ["sending"], every=0.05)
    run.kill()
    assert status_of(run.case) == "closed"  # committed before it died
    assert len(smtp.received) == 1  # the RMA; the credit note's connection died before DATA

    smtp.rcpt_delay = 0
    run.start()
    assert run.finish() == {"case": "RMA-0001", "deal": won_deal, "status": "closed"}
    assert_done_once(run.case, won_deal, stock_before, sequences_before, smtp, serial)


# --- killed inside a transaction (PostgreSQL) -----------------------------------------------------------

@on_postgres
def test_a_return_killed_inside_its_inspection_and_its_credit_note_leaves_nothing_half_done(
        won_deal, smtp, counted, tmp_path):
    """The inspection is held by a lock on the lathe's stock level, and the credit note by one on
    the refund series, after it drew its CN number: each killed there, nothing of it is written
    (no stock, no number used up); the next attempt applies the stored answer once, CN-0001 and
    RFD-0001 with no gap."""
    from .helpers import a_backend_waits_for_a_lock

    stock_before, sequences_before = counted
    run, answers, serial = a_return_of_one_lathe(won_deal, tmp_path / "run")
    for key in ("rma-0001-authorize", "rma-0001-receive"):
        run.resume(key, answers[key])
    run.start()
    run.paused_at("rma-0001-inspect")
    with session_scope() as holder:
        holder.scalars(select(StockLevel).where(StockLevel.product_id == product_by_sku(holder, LATHE).id)
                       .with_for_update()).one()
        run.resume("rma-0001-inspect", answers["rma-0001-inspect"])
        assert a_backend_waits_for_a_lock(), run.output()
        run.kill()
        holder.rollback()
    assert (status_of(run.case), wait_of(won_deal, "rma-0001-inspect")) == ("received", ("open", run.id))
    assert on_hand(LATHE) == stock_before
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(StockMove).where(StockMove.reason == "return")) == 0

    run.start()
    run.paused_at("rma-0001-credit")
    assert on_hand(LATHE) == stock_before + 1
    with session_scope() as holder:
        holder.scalars(select(DocumentSequence).where(DocumentSequence.doc_type == "refund")
                       .with_for_update()).one()
        run.resume("rma-0001-credit", answers["rma-0001-credit"])
        assert a_backend_waits_for_a_lock(), run.output()
        run.kill()
        holder.rollback()
    numbers = ("credit_note", "refund")
    assert {t: sequences()[t] for t in numbers} == {t: sequences_before[t] for t in numbers}  # given back
    assert status_of(run.case) == "inspected" and mail_status("credit_note") == []

    run.start()
    assert run.finish() == {"case": "RMA-0001", "deal": won_deal, "status": "closed"}
    assert run.attempts == 3
    assert_done_once(run.case, won_deal, stock_before, sequences_before, smtp, serial)


if __name__ == "__main__":  # an attempt of the run (see the module's docstring)
    print(json.dumps(run_steps(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]))), flush=True)
