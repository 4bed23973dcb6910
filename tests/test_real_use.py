"""Real use, end to end: a `prefect server start`, `prefect deploy` from prefect.yaml, a deal
executor (`dealflow executor`), and two deals at once through every wait, answered as people
would (`dealflow answer`), with the executor killed twice on the way.

Slow (a few minutes): it runs when DEALFLOW_E2E=1, as CI does (on PostgreSQL, for the business
database and for Prefect's own). `pytest -m "not e2e"` leaves it out explicitly.
"""

from __future__ import annotations

import contextvars
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import func, select, text

from dealflow import answers
from dealflow import stack as dealflow_stack
from dealflow.scenario import SCRIPT, answer_for, start_scenario_deal
from models import Document, Email, Payment, Shipment, StockMove
from models.deal import deal_by_number
from services.config import PROJECT_ROOT
from services.db import engine_for, session_scope
from services.views import inbox

from .conftest import PG_URL
from .smtp_server import free_port

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not os.environ.get("DEALFLOW_E2E"), reason="set DEALFLOW_E2E=1 (CI does)")]

PREFECT = [sys.executable, "-m", "prefect"]


class Stack:
    """A Prefect server, the deployments and a deal executor, as separate processes."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env, self.executor = home, env, None
        self.api = env["PREFECT_API_URL"]
        self.status_file = home / "executor.json"
        self.server = subprocess.Popen([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port",
                                        self.api.split(":")[-1].split("/")[0]],
                                       env=env, cwd=PROJECT_ROOT, start_new_session=True,
                                       stdout=open(home / "server.log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.api}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError((home / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        for pool in (dealflow_stack.POOL, dealflow_stack.DEALS_POOL):
            self.prefect("work-pool", "create", pool, "--type", "process", "--overwrite")
        self.prefect("--no-prompt", "deploy", "--all")
        self.start_executor()

    def prefect(self, *args: str) -> str:
        done = subprocess.run([*PREFECT, *args], env=self.env, cwd=PROJECT_ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start_executor(self) -> None:
        self.executor = subprocess.Popen([sys.executable, "-m", "dealflow.cli", "executor", "--status-file",
                                          str(self.status_file), "--poll", dealflow_stack.executor_poll(self.env)],
                                         env=self.env, cwd=PROJECT_ROOT,
                                         start_new_session=True, stdout=open(self.home / "executor.log", "ab"),
                                         stderr=subprocess.STDOUT)

    def kill_executor(self) -> None:
        """The executor dies (SIGKILL, no goodbye), with whatever runs it had in hand."""
        os.kill(self.executor.pid, signal.SIGKILL)
        self.executor.wait(timeout=30)

    def runs_in_hand(self) -> list[str]:
        """The runs the executor is moving right now (it writes them down on every poll)."""
        try:
            return json.loads(self.status_file.read_text())["active_runs"]
        except (OSError, ValueError):
            return []

    def stop(self) -> None:
        for proc in (self.executor, self.server):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _prefect_database(tmp_path: Path) -> str:
    """Prefect's own database: PostgreSQL when the tests run on it (as in CI), else SQLite."""
    if not PG_URL:
        return f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"
    with engine_for(PG_URL.rsplit("/", 1)[0] + "/postgres").execution_options(
            isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS dealflow_e2e_prefect WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE dealflow_e2e_prefect"))
    base = PG_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/dealflow_e2e_prefect"


@pytest.fixture
def stack(db, tmp_path):
    home = tmp_path / "prefect-home"
    home.mkdir()
    api = f"http://127.0.0.1:{free_port()}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api,
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": _prefect_database(tmp_path),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "INFO"}
    s = Stack(home, env)
    try:
        from prefect.settings import PREFECT_API_URL, temporary_settings
        with temporary_settings(updates={PREFECT_API_URL: api}):
            os.environ["PREFECT_API_URL"] = api
            yield s
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        s.stop()


def _flow_processes(run_id: str) -> list[int]:
    """Processes on this machine running that flow run (a worker's child carries its id)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"PREFECT__FLOW_RUN_ID={run_id}".encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_two_deals_run_on_a_server_with_an_executor_through_every_wait(stack):
    from click.testing import CliRunner

    from dealflow.cli import _waiting_runs, main

    numbers = [start_scenario_deal(company, restock=5) for company in ("Alpha Tools Ltd", "Beta Forge Inc")]
    for number in numbers:
        with session_scope() as s:
            lead_id = deal_by_number(s, number).lead_id
        result = CliRunner().invoke(main, ["deal", "start", str(lead_id), "--json"])  # as a person would
        assert result.exit_code == 0, result.output

    suspended_seen: dict[str, int] = {n: 0 for n in numbers}
    errors: list[BaseException] = []
    restarted = threading.Event()
    both_waiting = threading.Barrier(2)
    killed_in_hand: list[str] = []

    def person(number: str) -> None:
        try:
            for i, move in enumerate(SCRIPT):
                key, run_id = _await_wait(number, move.step)
                state = _state(run_id)
                assert state == "Suspended", f"{number} at {key} is {state}"
                assert _not_held_within(stack, run_id, 15), f"{number} holds a process or thread at {key}"
                suspended_seen[number] += 1
                if i == 0:  # the inbox joins the business state with what the server holds
                    with session_scope() as s:
                        rows = inbox(s, None, _waiting_runs())
                    mine = next(r for r in rows if r["deal"] == number)
                    assert (mine["key"], mine["run"]) == ("qualify", "Suspended")
                payload = answer_for(number, move)
                if i == 6:  # both deals wait (suspended) at QA: the executor dies in the middle of the sale
                    both_waiting.wait(timeout=300)
                    if number == numbers[0]:
                        stack.kill_executor()
                        answers.answer(number, key, payload, settle_timeout=60)  # QA answers anyway
                        time.sleep(3)
                        stack.start_executor()  # and when it is back nothing is lost
                        restarted.set()
                    else:
                        restarted.wait(timeout=120)
                        answers.answer(number, key, payload, settle_timeout=60)
                elif i == 8 and number == numbers[0]:
                    # the first shipment: killed a moment after the answer, while the run is in
                    # its hands (claimed, running, or writing the shipment); the restarted
                    # executor takes the orphaned run over and the deal goes on from where it is
                    answers.answer(number, key, payload, settle_timeout=60)
                    deadline = time.monotonic() + 30
                    while _state(run_id) not in ("Pending", "Running") and time.monotonic() < deadline:
                        time.sleep(0.02)  # until the executor has it in hand
                    stack.kill_executor()
                    killed_in_hand.append(number)
                    time.sleep(1)
                    stack.start_executor()
                else:
                    answers.answer(number, key, payload, settle_timeout=60)
                closed = answers.wait_closed(number, key, timeout=180)
                assert closed.status == "answered", (number, key, closed)
        except BaseException as exc:
            errors.append(exc)

    # each thread runs in a copy of this context, so it talks to the stack's API, not a temporary one
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(person, n)) for n in numbers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    assert not errors, errors
    assert restarted.is_set()
    # the run the executor held when it was killed was taken over by the next one
    assert killed_in_hand == [numbers[0]]
    assert f"recovered {numbers[0]}" in (stack.home / "executor.log").read_text()

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with session_scope() as s:
            if all(deal_by_number(s, n).status == "won" for n in numbers):
                break
        time.sleep(1)
    with session_scope() as s:
        assert [deal_by_number(s, n).status for n in numbers] == ["won", "won"]
        counts = {m.__name__: s.scalar(select(func.count()).select_from(m))
                  for m in (Document, Email, Shipment, Payment)}
        moves = s.scalar(select(func.count()).select_from(StockMove).where(StockMove.reason == "shipment"))
        run_ids = [deal_by_number(s, n).flow_run_id for n in numbers]
    assert counts == {"Document": 18, "Email": 20, "Shipment": 4, "Payment": 4}
    assert moves == 14  # 4 + 3 lines shipped per deal, each once
    assert suspended_seen == {n: len(SCRIPT) for n in numbers}
    deadline = time.monotonic() + 60  # the last step commits a moment before the run reports
    while [_state(r) for r in run_ids] != ["Completed", "Completed"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [_state(r) for r in run_ids] == ["Completed", "Completed"]


def _not_held_within(stack: Stack, run_id: str, seconds: float) -> bool:
    """A suspended run leaves the executor's hands (its thread is free) right after it suspends,
    and no process on this machine runs it."""
    deadline = time.monotonic() + seconds
    while _flow_processes(run_id) or run_id in stack.runs_in_hand():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _await_wait(number: str, step: str, timeout: float = 180) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as s:
            w = deal_by_number(s, number).open_wait
            if w is not None and w.step == step and w.flow_run_id and _state(w.flow_run_id) == "Suspended":
                return w.key, w.flow_run_id
        time.sleep(0.3)
    raise TimeoutError(f"{number} never suspended at {step}")


def _state(run_id: str) -> str:
    from prefect import get_client
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id)).state.name


def _browser() -> str | None:
    import shutil

    return next((p for p in ("chromium", "chromium-browser", "google-chrome") if shutil.which(p)), None)


@pytest.mark.skipif(not os.environ.get("DEALFLOW_UI"), reason="set DEALFLOW_UI=1, with playwright and chromium installed")
def test_a_person_answers_a_wait_in_the_prefect_ui_and_the_deal_moves_on(stack, tmp_path):
    """The README's promise, in a real browser: the run is listed by deal number and customer,
    its Resume form shows the step's title, description and fields, and submitting it moves the
    deal to its next step. Not run by CI (it needs a browser): `DEALFLOW_UI=1 DEALFLOW_E2E=1
    pytest tests/test_real_use.py -k ui` after `pip install playwright` and `apt install chromium`."""
    import shutil

    from playwright.sync_api import sync_playwright

    number = start_scenario_deal("Gamma Presses GmbH", restock=5)
    from prefect.deployments import run_deployment
    run_deployment("deal/deal", parameters={"deal_number": number}, timeout=0)
    key, run_id = _await_wait(number, "qualify")
    ui = stack.api.removesuffix("/api")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which(_browser()), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{ui}/runs", wait_until="networkidle")
        page.get_by_text(f"{number}-gamma-presses-gmbh").first.wait_for(timeout=30_000)
        page.goto(f"{ui}/runs/flow-run/{run_id}", wait_until="networkidle")
        page.get_by_role("button", name="Resume").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Your handle").wait_for(timeout=30_000)
        assert "qualify the lead" in dialog.inner_text()  # the wait's description heads the form
        assert "Qualified?" in dialog.inner_text()
        page.screenshot(path=str(tmp_path / "resume-form.png"))
        dialog.locator("textarea").first.fill("sofia")
        dialog.get_by_role("switch").first.click()
        dialog.get_by_role("button", name="Submit").click()
        closed = answers.wait_closed(number, key, timeout=120)
        browser.close()
    assert (closed.status, closed.answered_by) == ("answered", "sofia")
    assert _await_wait(number, "handoff")[1] == run_id  # the same run went on to the next step
