"""`dealflow deal cancel`: a manager cancels a deal's order before its first shipment, at each
stage it may be at (a decision wait, an order without its deposit, a deposit paid in part or in
full, refunded or kept as credit). Reservations are freed, a deposit invoice is reversed by one
credit note, the customer is told once; after a shipment, or by someone who is not a manager, it
is refused with one line and nothing written; repeated, or run again after the process was killed
between its commit and its mail, nothing is done or sent twice. On a real Prefect API, the deal's
run ends Cancelled with the reason, whether it was suspended (a deployment's) or paused here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from application import deals
from dealflow.cli import main
from dealflow.scenario import TEAM, play_direct
from models import Email, Product
from models.availability import reserved
from models.credit_notes import CreditNote
from models.deal import deal_by_number
from services.config import PROJECT_ROOT
from services.db import session_scope

from .helpers import code_of, wait_row
from .test_bad_input_cli import _fingerprint

REASON = "The customer's plant project was cancelled by their board."


@pytest.fixture
def manager(db) -> str:
    """Morgan, the manager, logged in (`dealflow login manager`): each cancel is signed with the session."""
    from dealflow.login import save

    save(TEAM.login("manager"))
    return "manager"


def cancel(deal: str, *args: str):
    return CliRunner().invoke(main, ["deal", "cancel", deal, "--reason", REASON, *args])


def notes_of(deal: str) -> list[dict]:
    with session_scope() as s:
        deal_id = deal_by_number(s, deal).id
        return [{"number": n.number, "invoice": n.invoice.number, "amount": n.amount, "settlement": n.settlement,
                 "refunded": n.refunded, "kept_as_credit": n.kept_as_credit, "method": n.refund_method,
                 "refund": n.refund_number}
                for n in s.scalars(select(CreditNote).where(CreditNote.deal_id == deal_id).order_by(CreditNote.id))]


def mails_of(deal: str, staff: bool = False) -> list[tuple[str, str, str]]:
    """(kind, subject, status) of the deal's emails to the customer (with ``staff``, the team's
    notices too), oldest first."""
    with session_scope() as s:
        deal_id = deal_by_number(s, deal).id
        return [(m.kind, m.subject, m.status) for m in
                s.scalars(select(Email).where(Email.deal_id == deal_id).order_by(Email.id))
                if staff or m.kind != "staff_notice"]


def notices_of(deal: str) -> dict[str, str]:
    """The team's notices of the deal: recipient -> plain text."""
    from services.rendering import render

    with session_scope() as s:
        deal_id = deal_by_number(s, deal).id
        return {m.to_addr: render("emails/staff_reminder.txt", m.context) for m in
                s.scalars(select(Email).where(Email.deal_id == deal_id, Email.kind == "staff_notice"))}


def held_by_orders() -> dict[str, int]:
    with session_scope() as s:
        skus = {p.id: p.sku for p in s.scalars(select(Product))}
        return {skus[pid]: qty for pid, qty in reserved(s).items()}


def deposit_of(deal: str) -> dict:
    return deals.deal_summary(deal)["deposit"]


def pay_deposit(deal: str, key: str, amount: str) -> None:
    answer = {"by": "finance", "amount": amount, "method": "bank_transfer", "reference": "RMW-DEP-PART"}
    assert deals.record_answer(deal, key, TEAM.signed(deal, key, answer))["accepted"]


# --- at each stage before the first shipment ----------------------------------------------------------

def test_cancelled_at_the_decision_the_wait_closes_and_no_order_or_credit_note_is_made(manager, new_deal):
    play_direct(new_deal, until="decision-rev-1")
    mails_before = mails_of(new_deal)
    result = cancel(new_deal)
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"{new_deal} cancelled by manager: {REASON}\n  mail: 1 sent\n")
    summary = deals.deal_summary(new_deal)
    assert (summary["status"], summary["lost_reason"], summary["order"]) == ("cancelled", REASON, None)
    assert wait_row(new_deal, "decision-rev-1")["status"] == "cancelled"
    assert notes_of(new_deal) == [] and held_by_orders() == {}
    # no order was confirmed, but the customer holds an estimate they could still accept: it is withdrawn
    assert mails_of(new_deal) == [*mails_before, ("cancellation", "Estimate EST-0001-R1 withdrawn", "sent")]
    with session_scope() as s:
        mail = s.scalars(select(Email).where(Email.kind == "cancellation")).one()
        from services.rendering import render
        text = render("emails/cancellation.txt", mail.context)
    assert "our estimate EST-0001-R1 is withdrawn. The reason: " + REASON in text


def test_cancelled_after_the_order_before_the_deposit_is_paid_the_deposit_invoice_is_credited_and_stock_freed(
        manager, new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    assert held_by_orders() == {"CNC-LATHE-2000": 3, "TOOL-KIT-PRO": 3, "CHUCK-3J-250": 3, "COOLANT-20L": 10}
    deposit = deposit_of(new_deal)
    assert (deposit["invoice"], deposit["paid"], deposit["status"]) == ("DEP-0001", "0.00", "open")
    result = cancel(new_deal, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["deal"], out["already"], out["order"], out["reason"]) == (new_deal, False, "SO-0001", REASON)
    assert out["credit_note"] == {"number": "CN-0001", "invoice": "DEP-0001", "amount": deposit["total"],
                                  "settlement": "none", "refunded": "0.00", "kept_as_credit": "0.00", "method": None}
    assert held_by_orders() == {}  # what the order held is free again
    assert notes_of(new_deal) == [{"number": "CN-0001", "invoice": "DEP-0001", "amount": Decimal(deposit["total"]),
                                   "settlement": "none", "refunded": Decimal("0.00"),
                                   "kept_as_credit": Decimal("0.00"), "method": "", "refund": None}]
    summary = deals.deal_summary(new_deal)
    assert (summary["order"]["status"], summary["deposit"]["status"]) == ("cancelled", "credited")
    assert wait_row(new_deal, "qa-attempt-1")["status"] == "cancelled"
    assert mails_of(new_deal)[-2:] == [
        ("credit_note", "Credit note CN-0001 for deposit invoice DEP-0001", "sent"),
        ("cancellation", "Order SO-0001 cancelled", "sent")]
    assert len(out["mail_sent"]) == 3  # and finance's notice of the reversed deposit invoice
    assert list(notices_of(new_deal)) == ["sales@glocial.example"]  # not released: delivery has nothing to undo


def test_a_deposit_paid_in_part_is_refunded_by_the_credit_note(manager, new_deal):
    play_direct(new_deal, until="deposit-1")
    pay_deposit(new_deal, "deposit-1", "10000.00")
    play_direct(new_deal, until="deposit-2")
    result = cancel(new_deal, "--settle", "refund", "--method", "bank transfer")
    assert result.exit_code == 0, result.output
    total = deposit_of(new_deal)["total"]
    assert f"  deposit invoice DEP-0001 reversed by credit note CN-0001 ({total} USD): 10000.00 USD refunded to " \
           f"the customer (bank_transfer)\n" in result.stdout
    assert notes_of(new_deal) == [{"number": "CN-0001", "invoice": "DEP-0001", "amount": Decimal(total),
                                   "settlement": "refund", "refunded": Decimal("10000.00"),
                                   "kept_as_credit": Decimal("0.00"), "method": "bank_transfer",
                                   "refund": "RFD-0001"}]  # the refund payment, numbered in its own series
    assert held_by_orders() == {}
    # finance (the company's address here) is told what to pay back; delivery, that the released
    # order goes back on the shelf
    notices = notices_of(new_deal)
    assert sorted(notices) == ["delivery@glocial.example", "sales@glocial.example"]
    assert "refund RFD-0001 to pay: 10000.00 USD by bank transfer" in notices["sales@glocial.example"]
    assert "it was released for picking: put it back on the shelf" in notices["delivery@glocial.example"]
    assert [m[0] for m in mails_of(new_deal)[-2:]] == ["credit_note", "cancellation"]


@pytest.mark.parametrize("settle", ["refund", "credit"])
def test_a_deposit_paid_in_full_is_refunded_or_kept_as_the_customers_credit(manager, new_deal, settle):
    play_direct(new_deal, until="shipment-1")  # QA passed and the deposit paid: the order waits to ship
    deposit = deposit_of(new_deal)
    assert deposit["paid"] == deposit["total"] and deposit["status"] == "paid"
    result = cancel(new_deal, "--settle", settle, "--json")
    assert result.exit_code == 0, result.output
    paid = Decimal(deposit["total"])
    [note] = notes_of(new_deal)
    assert (note["number"], note["settlement"], note["refunded"], note["kept_as_credit"], note["refund"]) == (
        "CN-0001", settle, paid if settle == "refund" else 0, paid if settle == "credit" else 0,
        "RFD-0001" if settle == "refund" else None)
    shown = json.loads(CliRunner().invoke(main, ["customer", "show", "1", "--json"]).stdout)
    assert shown["credit_balance"] == (str(paid) if settle == "credit" else "0")
    assert held_by_orders() == {}
    assert [m[:1] + m[2:] for m in mails_of(new_deal)[-2:]] == [("credit_note", "sent"), ("cancellation", "sent")]
    told, note = mail_text("cancellation"), mail_text("credit_note")
    assert "your order SO-0001 is cancelled. The reason: " + REASON in " ".join(told.split())
    assert "Please find attached credit note CN-0001. It cancels deposit invoice DEP-0001" in " ".join(note.split())
    said = {"refund": ("is refunded to you by", "We are refunding the"),
            "credit": ("stays with us as credit on your account", "stays with us as credit on your account")}[settle]
    assert said[0] in told and said[1] in note


def test_a_cancels_credit_note_mail_carries_its_portal_link_and_the_link_opens_the_credit_note(
        manager, new_deal, portal, data_dir):
    import html
    import re

    from dealflow.customer import PortalCustomer, link_in_mail

    play_direct(new_deal, until="shipment-1")
    assert cancel(new_deal, "--settle", "credit").exit_code == 0
    total = Decimal(deposit_of(new_deal)["total"])
    link = link_in_mail(data_dir / "mail", "Credit note CN-0001", kind="c")
    assert link and link.startswith(portal.url + "/c/"), mail_text("credit_note")
    assert "The credit note, with the invoice it cancels, at any time: " + link in " ".join(mail_text("credit_note").split())
    with PortalCustomer() as customer:
        page = customer.open(link)
        assert page.status_code == 200
        text = html.unescape(" ".join(re.sub(r"<style>.*?</style>|<[^>]+>", " ", page.text, flags=re.S).split()))
        for piece in ["Credit note CN-0001", "Deposit invoice DEP-0001 is cancelled in full: nothing is due on it.",
                      f"Kept as credit on your account: USD {total:,}, for your next order (on your account today: "
                      f"USD {total:,})", f"Reason: {REASON}"]:
            assert piece in text, (piece, text)
        assert "Return RMA" not in text
        pdf = customer.open(link + "/pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.content == (data_dir / "documents" / "CN-0001.pdf").read_bytes()


def mail_text(kind: str) -> str:
    """The plain-text part of the one email of ``kind`` written to the mail folder."""
    import email
    from email import policy
    from pathlib import Path

    [eml] = (Path(os.environ["DEALFLOW_DATA_DIR"]) / "mail").glob(f"*-{kind}.eml")
    return email.message_from_bytes(eml.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()


# --- refused: one line, nothing written ------------------------------------------------------------

def test_after_the_first_shipment_a_cancel_is_refused_and_nothing_is_written(manager, new_deal):
    play_direct(new_deal, until="shipment-2")
    before = _fingerprint()
    result = cancel(new_deal)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == ("error: order SO-0001 is partially shipped (shipment SHP-0001 has left): cannot cancel: "
                             "a shipped order is returned instead\n")
    assert _fingerprint() == before


def test_someone_who_is_not_a_manager_may_not_cancel_and_nothing_is_written(db, new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    before = _fingerprint()
    result = cancel(new_deal, "--by", "sofia", "--code", code_of("sofia"))
    assert (result.exit_code, result.stderr) == (
        2, "error: by: sofia (sales_rep) is not a manager: only a manager may cancel an order\n")
    result = cancel(new_deal, "--by", "manager")  # a manager, but without a code or a session
    assert result.exit_code == 2 and result.stderr.startswith("error: code: cancel is a manager's step and needs "
                                                              "proof: --code NNNNNN"), result.stderr
    assert _fingerprint() == before
    result = cancel(new_deal, "--by", "manager", "--code", code_of("manager"))  # a code proves it
    assert result.exit_code == 0, result.output


def test_with_codes_off_a_managers_handle_is_enough_and_anyone_elses_is_still_refused(db, new_deal, monkeypatch):
    monkeypatch.setenv("DEALFLOW_ANSWER_CODES", "off")  # a trial by one person: no codes, no sessions
    play_direct(new_deal, until="qa-attempt-1")
    refused = cancel(new_deal, "--by", "finance")
    assert (refused.exit_code, refused.stderr) == (
        2, "error: by: finance (finance) is not a manager: only a manager may cancel an order\n")
    result = cancel(new_deal, "--by", "manager")
    assert result.exit_code == 0 and result.stdout.startswith(f"{new_deal} cancelled by manager"), result.output


def test_a_repeated_cancel_does_nothing_twice_and_says_so(manager, new_deal):
    play_direct(new_deal, until="shipment-1")
    assert cancel(new_deal).exit_code == 0
    after_first = _fingerprint(), mails_of(new_deal)
    for _ in range(2):
        result = cancel(new_deal, "--settle", "credit")
        assert result.exit_code == 0, result.output
        assert result.stdout == (f"{new_deal} was already cancelled ({REASON}); nothing was cancelled again\n"
                                 f"  mail: nothing left to send\n")
    assert (_fingerprint(), mails_of(new_deal)) == after_first
    assert len(notes_of(new_deal)) == 1 and notes_of(new_deal)[0]["settlement"] == "refund"


# --- the process killed between the commit and the mail ----------------------------------------------

def test_a_cancel_killed_after_its_commit_sends_the_credit_note_and_the_cancellation_once_when_run_again(
        manager, new_deal, smtp):
    """The command runs as its own process and is killed (SIGKILL) while the mail server takes its
    time over the first email's recipient: the cancel is committed, its mail claimed and not handed
    over. Run again, it sends what was left, each email once, and cancels nothing twice."""
    play_direct(new_deal, until="shipment-1")
    smtp.rcpt_delay = 30
    child = subprocess.Popen([sys.executable, "-m", "dealflow.cli", "deal", "cancel", new_deal, "--reason", REASON],
                             cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not any(status == "sending" for _, _, status in mails_of(new_deal)):
        assert time.monotonic() < deadline and child.poll() is None, child.communicate()
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert deals.deal_summary(new_deal)["status"] == "cancelled"  # committed before it died
    smtp.rcpt_delay = 0
    received_before = len(smtp.received)
    result = cancel(new_deal)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{new_deal} was already cancelled") and "mail: 4 sent" in result.stdout
    assert sorted(r.message["Subject"] for r in smtp.received[received_before:]) == [
        "Cancelled: order SO-0001 (Riverside Metalworks Ltd)", "Cancelled: order SO-0001 (Riverside Metalworks Ltd)",
        "Credit note CN-0001 for deposit invoice DEP-0001", "Order SO-0001 cancelled"]  # finance's, delivery's
    assert len(notes_of(new_deal)) == 1
    with session_scope() as s:
        kinds = s.execute(select(Email.kind, func.count()).where(Email.kind.in_(["credit_note", "cancellation"]))
                          .group_by(Email.kind)).all()
    assert sorted(kinds) == [("cancellation", 1), ("credit_note", 1)]
    assert {m[0]: m[2] for m in mails_of(new_deal)[-2:]} == {"credit_note": "sent", "cancellation": "sent"}
    assert cancel(new_deal).stdout.endswith("  mail: nothing left to send\n")
    assert len(smtp.received) - received_before == 4


# --- the deal's run on a real Prefect API ----------------------------------------------------------

def _deployment_run(deal: str):
    """A run of a 'deal' deployment for the deal, as `deal start` makes on a server (the test's
    server has no worker: the run is run here, as the executor runs it)."""
    from prefect import get_client

    with get_client(sync_client=True) as c:
        deployment = c.create_deployment(flow_id=c.create_flow_from_name("deal"), name=f"deal-{deal.lower()}",
                                         entrypoint="flows/deal.py:deal_flow")
        return c.create_flow_run_from_deployment(deployment, parameters={"deal_number": deal})


def _run_as_the_executor(run_id):
    from flows.deal import deal_flow
    from services.orchestration import worker

    return worker.run(run_id, lambda client, flow_run: deal_flow)


def _state(run_id):
    from prefect import get_client

    with get_client(sync_client=True) as c:
        return c.read_flow_run(run_id).state


@pytest.mark.flow
def test_a_suspended_deal_run_ends_cancelled_with_the_reason_and_a_run_after_it_ends_so_too(
        prefect_api, manager, new_deal, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())  # as `dealflow up` sets it for a command
    run = _deployment_run(new_deal)
    _, ended, stopped = _run_as_the_executor(run.id)
    assert ended is None and type(stopped).__name__ == "Pause"  # it suspended at its first wait
    assert (_state(run.id).name, wait_row(new_deal, "qualify")["flow_run_id"]) == ("Suspended", str(run.id))

    result = cancel(new_deal)
    assert result.exit_code == 0, result.output
    assert f"  flow run {run.id}: Cancelled (was Suspended)\n" in result.stdout
    state = _state(run.id)
    assert (state.type.value, state.name, state.message) == ("CANCELLED", "Cancelled", f"{new_deal} cancelled: {REASON}")
    assert wait_row(new_deal, "qualify")["status"] == "cancelled"
    again = cancel(new_deal)
    assert f"  flow run {run.id}: already Cancelled\n" in again.stdout  # a run over is left as it is

    # a run of the deal that starts (or resumes) after the cancel finds it cancelled and ends so
    later = _deployment_run(new_deal)
    _, ended, stopped = _run_as_the_executor(later.id)
    assert stopped is None and ended.is_cancelled(), ended
    assert ended.message == f"{new_deal} cancelled: {REASON}"
    assert _state(later.id).name == "Cancelled"


def _run_cancelled_while_paused(deal: str, stop_run) -> tuple[object, dict]:
    """The deal's flow run in this process, paused at its first wait, cancelled from a thread
    (``stop_run``: how the cancel reaches the run, or None); its final state and what the cancel
    said (``at``: when it was done)."""
    from flows.deal import deal_flow

    from .helpers import in_background, wait_for_run

    said: dict = {}

    def cancel_when_paused() -> None:
        run_id = wait_for_run(deal, "qualify")
        deadline = time.monotonic() + 60
        while _state(run_id).name != "Paused":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proof = TEAM.login("manager").prove(deal, "cancel", deals.cancel_payload("manager", REASON, "refund",
                                                                                 "bank_transfer"))
        said.update(deals.cancel_deal(deal, "manager", REASON, proof=proof, stop_run=stop_run))
        said["at"] = time.monotonic()

    thread, errors = in_background([cancel_when_paused])
    state = deal_flow(deal_number=deal, poll_interval=1, wait_timeout=600, return_state=True)
    said["ended"] = time.monotonic()
    thread.join(timeout=60)
    assert not errors, errors
    return state, said


@pytest.mark.flow
def test_a_deal_run_paused_in_this_process_stops_waiting_and_ends_cancelled(prefect_api, manager, new_deal):
    from services.orchestration import runs

    started = time.monotonic()
    state, said = _run_cancelled_while_paused(new_deal, runs.cancel)
    assert said["ended"] - started < 60  # it did not wait out its timeout
    assert said["run"] == "Cancelled (was Paused)"
    assert state.is_cancelled() and state.message == f"{new_deal} cancelled: {REASON}"
    assert _state(state.state_details.flow_run_id).name == "Cancelled"
    assert deals.deal_summary(new_deal)["status"] == "cancelled"


@pytest.mark.flow
def test_a_deal_run_paused_where_the_cancel_cannot_reach_its_server_sees_it_in_the_database(
        prefect_api, manager, new_deal):
    """A deal started without `dealflow up` runs on its own temporary server, which `deal cancel`
    in another process cannot reach: the run sees the cancel in the database within seconds and
    ends Cancelled itself."""
    from flows.waits import CANCEL_LOOK_SECONDS

    state, said = _run_cancelled_while_paused(new_deal, None)
    assert said["run"] is None  # nothing reached the run from outside
    assert said["ended"] - said["at"] < CANCEL_LOOK_SECONDS + 10  # it did not wait out its timeout
    assert state.is_cancelled() and state.message == f"{new_deal} cancelled: {REASON}"
    assert _state(state.state_details.flow_run_id).name == "Cancelled"


# --- bad input, generated: one line, nothing written ---------------------------------------------

@pytest.fixture
def deal_with_order(manager, new_deal) -> str:
    play_direct(new_deal, until="qa-attempt-1")
    return new_deal


def _bad_cancels():
    from hypothesis import strategies as st

    from .test_bad_input_cli import BAD_HANDLE, HUGE, TEXT, WITH_CONTROL, longer_than

    options = {"--reason": REASON, "--settle": "refund", "--method": "bank_transfer"}
    with_option = lambda name: lambda v: {**options, name: v}  # noqa: E731
    return st.one_of(
        st.one_of(st.just(""), st.just("  \n "), longer_than(2000), WITH_CONTROL).map(with_option("--reason")),
        TEXT.filter(lambda t: t not in ("refund", "credit")).map(with_option("--settle")),
        st.one_of(TEXT.filter(lambda t: t.strip().lower().replace(" ", "_") not in (
            "bank_transfer", "card", "cheque", "cash")), WITH_CONTROL, st.just("account_credit"),
            st.just("credit on account")).map(with_option("--method")),
        BAD_HANDLE.filter(bool).map(lambda b: {**options, "--by": b}),
        st.just({**options, "--by": "sofia"}),  # logged in as the manager: not someone else
        st.one_of(TEXT, WITH_CONTROL, HUGE, st.just("DEAL-9999")).map(lambda d: {**options, "deal": d}),
    )


def test_a_cancel_with_bad_input_is_one_line_and_writes_nothing(deal_with_order):
    from hypothesis import HealthCheck, given, settings

    from .test_bad_input_cli import _audit_rows

    @settings(max_examples=int(os.environ.get("DEALFLOW_HYPOTHESIS_EXAMPLES", "25")), deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(options=_bad_cancels())
    def refused(options: dict) -> None:
        deal = options.pop("deal", deal_with_order)
        before, audit_before = _fingerprint(), _audit_rows()
        result = CliRunner().invoke(main, ["deal", "cancel", *[x for kv in options.items() for x in kv], "--", deal])
        lines = result.stderr.splitlines()
        assert result.exit_code == 2 and result.stdout == "", (options, result.output[-300:])
        assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) <= 600, (options, result.stderr)
        assert (_fingerprint(), _audit_rows()) == (before, audit_before), options

    refused()
    assert deals.deal_summary(deal_with_order)["status"] == "open"
