"""The fault suite's mail check, end to end on a real stack: five deals through every wait on a
Prefect server with a deal executor, mail going to a real SMTP server on loopback, and the
executor killed (SIGKILL) at random moments, again and again. Every email must arrive exactly
once, and no row may be left `sending`.

The mail server runs as its own process, keeps every message it accepts in a spool folder, and is
slow to accept a recipient (up to 0.4 s), as a busy one is, so that many kills land while a
message is claimed but not yet handed over: the window the outbox must repair.
Runs with DEALFLOW_E2E=1 (CI: on PostgreSQL, for the business database and Prefect's own)."""

from __future__ import annotations

import collections
import contextvars
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from dealflow.scenario import SCRIPT, answer_for, start_scenario_deal
from models import Email, utcnow
from models.deal import deal_by_number
from services.config import PROJECT_ROOT
from services.db import session_scope

from .e2e_stack import await_wait, running_stack
from .helpers import answers
from .smtp_server import free_port
from .smtp_sink import received

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not os.environ.get("DEALFLOW_E2E"), reason="set DEALFLOW_E2E=1 (CI does)")]

DEALS = 5
KILLS = 20


def test_every_email_arrives_exactly_once_while_the_executor_is_killed_at_random(db, tmp_path, monkeypatch):
    port, spool = free_port(), tmp_path / "spool"
    smtp = subprocess.Popen([sys.executable, "-m", "tests.smtp_sink", "--port", str(port), "--spool", str(spool),
                             "--rcpt-delay", "0.4"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    assert smtp.stdout.readline().strip() == "ready"
    seed = int(os.environ.get("DEALFLOW_FAULT_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    print(f"fault seed {seed} (DEALFLOW_FAULT_SEED={seed} repeats this run's choices)")
    try:
        mail = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none"}
        with running_stack(tmp_path, DEALFLOW_MAIL_RETRY_SECONDS="1,2", **mail) as stack:
            for name, value in mail.items():  # for the person who resolves what the outbox shows
                monkeypatch.setenv(name, value)
            _play(stack, rng, spool)
    finally:
        smtp.terminate()
        smtp.wait(timeout=30)


def _play(stack, rng: random.Random, spool) -> None:
    from prefect.deployments import run_deployment

    from application.company import edit_company

    # new customers, on the company's terms: a 30 % deposit before shipping, as the scenario's own
    edit_company({"deposit_pct": "30", "deposit_before": "shipping"}, by="test")
    numbers = [start_scenario_deal(f"Faulty Customer {i}", restock=5) for i in range(1, DEALS + 1)]
    for number in numbers:
        run = run_deployment("deal/deal", parameters={"deal_number": number}, timeout=0,
                             idempotency_key=f"deal-{number}")
        from models import process
        with session_scope() as s:
            process.attach_flow_run(s, deal_by_number(s, number), str(run.id))
            s.commit()

    errors: list[BaseException] = []
    kills: list[float] = []
    killing_done = threading.Event()
    people_done = threading.Event()

    def person(number: str, seed: int) -> None:
        think = random.Random(seed)
        try:
            for i, move in enumerate(SCRIPT):
                key, _ = await_wait(number, move.step, timeout=600)
                if i == len(SCRIPT) - 1:  # the last payment waits until the executor has died often enough
                    killing_done.wait(900)
                time.sleep(think.uniform(0, 1.0))
                answers.answer(number, key, answer_for(number, move), settle_timeout=120)
                closed = answers.wait_closed(number, key, timeout=600)
                assert closed.status == "answered", (number, key, closed)
        except BaseException as exc:
            errors.append(exc)

    def killer() -> None:
        try:
            while len(kills) < KILLS and not people_done.is_set():
                _until_executor_polls(stack)
                time.sleep(rng.uniform(0.2, 3.0))
                stack.kill_executor()
                kills.append(utcnow())
                stack.start_executor()
        except BaseException as exc:
            errors.append(exc)
        finally:
            killing_done.set()

    started = time.monotonic()
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(person, n, rng.randrange(10**9)))
               for n in numbers]
    threads.append(threading.Thread(target=contextvars.copy_context().run, args=(killer,)))
    for t in threads:
        t.start()
    for t in threads[:-1]:
        t.join(timeout=1500)
    people_done.set()
    threads[-1].join(timeout=120)
    print(f"{len(kills)} kills in {time.monotonic() - started:.0f} s")
    if errors:
        _explain(numbers)
    assert not errors, errors
    assert len(kills) >= KILLS

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with session_scope() as s:
            statuses = [deal_by_number(s, n).status for n in numbers]
            unsettled = s.scalar(select(func.count()).select_from(Email).where(
                Email.status != "sent", ~((Email.status == "sending") & Email.handed_at.is_not(None))))
        if statuses == ["won"] * DEALS and unsettled == 0:
            break
        time.sleep(1)
    with session_scope() as s:
        assert [deal_by_number(s, n).status for n in numbers] == ["won"] * DEALS
        rows = [{"id": m.id, "kind": m.kind, "status": m.status, "attempts": m.attempts, "claimed_by": m.claimed_by,
                 "claimed_at": m.claimed_at, "handed_at": m.handed_at, "sent_at": m.sent_at,
                 "message_id": m.message_id,
                 "dedupe_key": m.dedupe_key, "error": m.last_error} for m in s.scalars(select(Email).order_by(Email.id))]
    by_status = collections.Counter(m["status"] for m in rows)
    retried = [m["id"] for m in rows if m["attempts"] > 1]
    arrived = _arrived(spool)
    windows = sorted(float(w) for w in re.findall(r"; ([0-9.]+) ms from its last line to marked sent",
                                                   (stack.home / "executor.log").read_text()))
    print(f"emails: {dict(by_status)}; sent again after a dead sender's claim was released: {retried}; "
          f"from the last line to marked sent (the window a kill leaves unknown): median "
          f"{windows[len(windows) // 2]:.1f} ms, max {windows[-1]:.1f} ms, {sum(windows) / 1000:.2f} s in all")
    unknown = [m for m in rows if m["status"] != "sent"]
    for m in unknown:
        print("fate unknown:", m, "arrived:", [k for k in arrived if f".{m['id']}." in k])
    # Nothing is stranded before it was handed over: a row not sent is one whose sender was
    # killed in the last milliseconds of the SMTP conversation (after the message's last line,
    # before the row was marked), the one window the README says stays unknown ...
    for m in unknown:
        assert m["status"] == "sending" and m["handed_at"] is not None, m
        assert any(timedelta(0) <= kill - m["handed_at"] <= timedelta(seconds=2) for kill in kills), (
            "a row left unmarked without a kill in its last-line window", m)
        assert arrived[m["message_id"] or message_id_of(m)] <= 1
    # ... and it was never sent twice; a person resolves it as the README says
    for m in unknown:
        mid = message_id_of(m)
        if arrived[mid]:
            _cli(["outbox", "confirm", str(m["id"]), "--by", "manager"])
        else:
            _cli(["outbox", "retry", str(m["id"]), "--force"])
    with session_scope() as s:
        rows = [{"id": m.id, "status": m.status, "message_id": m.message_id} for m in s.scalars(select(Email))]
    arrived = _arrived(spool)
    print(f"emails: {len(rows)}; of unknown fate (a kill in the last-line window), resolved by a person: "
          f"{[m['id'] for m in unknown]}")
    assert collections.Counter(m["status"] for m in rows) == {"sent": 12 * DEALS}  # the deposit's invoice and receipt too
    assert set(arrived) == {m["message_id"] for m in rows} and set(arrived.values()) == {1}, arrived.most_common(3)


def _arrived(spool) -> collections.Counter:
    return collections.Counter(BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)["Message-ID"]
                               for raw in received(spool))


def message_id_of(row: dict) -> str:
    from services.mailer import message_id

    return message_id(SimpleNamespace(id=row["id"], kind=row["kind"], dedupe_key=row["dedupe_key"]),
                      "sales@glocial.example")


def _cli(args: list[str]) -> None:
    from click.testing import CliRunner

    from dealflow.cli import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (args, result.output)


def _until_executor_polls(stack, timeout: float = 120) -> None:
    """Until the (re)started executor has written its status: it is up and taking runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(stack.status_file.read_text())["pid"] == stack.executor.pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise TimeoutError("the executor did not start polling")


def _explain(numbers: list[str]) -> None:
    """For a failed run: each deal's run, its states and the inputs stored for its waits."""
    from uuid import UUID

    from prefect import get_client

    with get_client(sync_client=True) as client:
        for number in numbers:
            with session_scope() as s:
                deal = deal_by_number(s, number)
                run_id, wait = deal.flow_run_id, deal.open_wait
                waiting = (wait.key, wait.status) if wait else None
            print(f"--- {number}: run {run_id}, waits at {waiting}")
            for st in client.read_flow_run_states(UUID(run_id)):
                d = st.state_details
                print(f"  {st.timestamp:%H:%M:%S.%f} {st.name:<12} pause_key={d.pause_key} "
                      f"keyset={'yes' if d.run_input_keyset else 'no'} {st.message or ''}"[:200])
            response = client.request("POST", "/flow_runs/{id}/input/filter", path_params={"id": run_id},
                                      json={"prefix": "", "limit": 100})
            print("  inputs:", sorted(i["key"] for i in response.json()))
