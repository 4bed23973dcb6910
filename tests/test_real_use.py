"""Real use, end to end: a `prefect server start`, `prefect deploy` from prefect.yaml, a deal
executor (`dealflow executor`), and two deals at once through every wait, answered as people
would (`dealflow answer`), with the executor killed twice on the way.

Slow (a few minutes): it runs when DEALFLOW_E2E=1, as CI does (on PostgreSQL, for the business
database and for Prefect's own). `pytest -m "not e2e"` leaves it out explicitly.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time

import pytest
from sqlalchemy import func, select

from application.company import edit_company
from dealflow.scenario import LEAD, SCRIPT, answer_for, start_scenario_deal
from models import Document, Email, Payment, Shipment, StockMove
from models.deal import deal_by_number
from services.db import session_scope
from services.views import inbox

from .e2e_stack import Stack, api_status, await_wait, browser_path, flow_processes, run_state, running_stack
from .helpers import answers

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not os.environ.get("DEALFLOW_E2E"), reason="set DEALFLOW_E2E=1 (CI does)")]

FIRST_QA, FIRST_SHIPMENT = (next(i for i, m in enumerate(SCRIPT) if m.step == step) for step in ("qa", "shipment"))


@pytest.fixture
def stack(db, tmp_path):
    with running_stack(tmp_path) as s:
        yield s


def _the_api_answers_only_a_client_with_the_credential(stack):
    """The whole e2e suite runs with the server's authentication on: a stranger gets 401, its
    clients (this process's too) get their answers; the health check stays open for probes."""
    assert api_status(stack.api, "/admin/version") == 401
    assert api_status(stack.api, "/admin/version", auth="dealflow-e2e:wrong") == 401
    assert api_status(stack.api, "/admin/version", auth=stack.auth) == 200
    assert api_status(stack.api, "/health") == 200
    from prefect import get_client

    with get_client(sync_client=True) as client:
        assert client.read_deployment_by_name("deal/deal").name == "deal"  # deployed with it, too


def test_two_deals_run_on_a_server_with_an_executor_through_every_wait(stack):
    """Two deals through every wait on a server with an executor (and, first, the server's
    credential: checked here rather than on a server of its own)."""
    _the_api_answers_only_a_client_with_the_credential(stack)
    from click.testing import CliRunner

    from dealflow.cli import main
    from dealflow.cli.waits import _states_of

    # both pay a 30 % deposit before shipping, as in the scenario: the scenario's own customer by its
    # terms, a new customer by the company's (its default for customers without terms of their own)
    edit_company({"deposit_pct": "30", "deposit_before": "shipping"}, by="test")
    numbers = [start_scenario_deal(company, restock=5) for company in (LEAD["company"], "Beta Forge Inc")]
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
                key, run_id = await_wait(number, move.step)
                state = run_state(run_id)
                assert state == "Suspended", f"{number} at {key} is {state}"
                assert _not_held_within(stack, run_id, 15), f"{number} holds a process or thread at {key}"
                suspended_seen[number] += 1
                if i == 0:  # the inbox joins the business state with what the server holds
                    with session_scope() as s:
                        rows = inbox(s, None, _states_of(inbox(s)))
                    mine = next(r for r in rows if r["deal"] == number)
                    assert (mine["key"], mine["run"]) == ("qualify", "Suspended")
                payload = answer_for(number, move)
                if i == FIRST_QA:  # both deals wait (suspended) at QA: the executor dies in the middle of the sale
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
                elif i == FIRST_SHIPMENT and number == numbers[0]:
                    # the first shipment: killed a moment after the answer, while the run is in
                    # its hands (claimed, running, or writing the shipment); the restarted
                    # executor takes the orphaned run over and the deal goes on from where it is
                    answers.answer(number, key, payload, settle_timeout=60)
                    deadline = time.monotonic() + 30
                    while run_state(run_id) not in ("Pending", "Running") and time.monotonic() < deadline:
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
        # each paid its deposit in one payment, and its final invoice is the order less the deposit
        for n in numbers:
            deal = deal_by_number(s, n)
            deposit = deal.deposit_invoice
            assert (deposit.status, len(deposit.payments)) == ("paid", 1), n
            assert deal.invoice.totals.total == deal.order.totals.total - deposit.totals.total, n
        counts = {m.__name__: s.scalar(select(func.count()).select_from(m))
                  for m in (Document, Email, Shipment, Payment)}
        moves = s.scalar(select(func.count()).select_from(StockMove).where(StockMove.reason == "shipment"))
        run_ids = [deal_by_number(s, n).flow_run_id for n in numbers]
    # per deal: 2 estimates, the order, the deposit invoice, the receipt, 2 delivery notes, the
    # invoice and 3 payment receipts (the deposit's and two on the invoice); a mail for each but
    # the receipt, and the finance notice
    assert counts == {"Document": 22, "Email": 24, "Shipment": 4, "Payment": 6}
    assert moves == 14  # 4 + 3 lines shipped per deal, each once
    assert suspended_seen == {n: len(SCRIPT) for n in numbers}
    deadline = time.monotonic() + 60  # the last step commits a moment before the run reports
    while [run_state(r) for r in run_ids] != ["Completed", "Completed"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [run_state(r) for r in run_ids] == ["Completed", "Completed"]


def _not_held_within(stack: Stack, run_id: str, seconds: float) -> bool:
    """A suspended run leaves the executor's hands (its thread is free) right after it suspends,
    and no process on this machine runs it."""
    deadline = time.monotonic() + seconds
    while flow_processes(run_id) or run_id in stack.runs_in_hand():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


UI = pytest.mark.skipif(not os.environ.get("DEALFLOW_UI"),
                        reason="set DEALFLOW_UI=1, with playwright and chromium installed (CI does)")


def _browser(p):
    import shutil

    # the system's chromium, never a downloaded one; no background traffic to Google on a closed network
    return p.chromium.launch(executable_path=shutil.which(browser_path()), args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])


def _sign_in(page, stack: Stack, handle: str, code: str | None = None, at: str = "/runs") -> None:
    """As a person would: the gateway sends a stranger to its sign-in page (handle, the code their
    authenticator app shows), and then back to the page asked for."""
    from .test_ui_forms import _code

    gateway = stack.gateway()
    page.goto(f"{gateway}{at}", wait_until="domcontentloaded")
    page.wait_for_url("**/dealflow/sign-in**", timeout=30_000)
    page.get_by_label("Your handle").fill(handle)
    page.get_by_label("One-time code").fill(code or _code(handle))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/dealflow/sign-in" not in url, timeout=30_000)  # back where it was sent from


HOSTILE = {"company": "<script>alert(1)</script> [x](javascript:alert(1))",
           "contact_name": "![](http://evil.example/x)",
           "notes": "<img src=http://evil.example/n onerror=alert(2)> **bold** www.evil.example"}
HOSTILE_NAME = "![](http://evil.example/by) [x](javascript:alert(3))"


@UI
def test_what_people_typed_shows_as_typed_in_the_prefect_ui_never_as_markup(stack, tmp_path):
    """A customer named like a script, a contact named like an image and a colleague named like an
    image and a link: the wait's form (which says who is signed in) and the deal's page in the
    Prefect UI, through the gateway, show these characters, and the browser gets no link, no
    image, runs no script and asks evil.example for nothing."""
    from playwright.sync_api import sync_playwright
    from prefect.deployments import run_deployment

    from models import identity, process
    from models.pipeline import add_lead
    from models.staff import add_staff
    from services import keys

    with session_scope() as s:
        lead = add_lead(s, **(LEAD | HOSTILE))
        number = process.start_deal(s, lead.id).number
        identity.enroll(s, add_staff(s, "eve", HOSTILE_NAME, "eve@glocial.example", "sales_rep"), keys.cipher(), "test")
        s.commit()
    run_deployment("deal/deal", parameters={"deal_number": number}, timeout=0)
    key, run_id = await_wait(number, "qualify")
    ui = stack.gateway()
    requests, dialogs = [], []

    def nothing_live(where) -> None:
        assert where.locator("img[src*='evil'], img[src*='http']").count() == 0
        live = where.locator("a[href*='evil'], a[href^='javascript'], a[href^='mailto']")
        assert live.count() == 0, [(a.get_attribute("href"), a.inner_text()) for a in live.all()]
        assert where.locator("script:has-text('alert')").count() == 0

    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        _sign_in(page, stack, "eve", at=f"/runs/flow-run/{run_id}")
        page.goto(f"{ui}/runs/flow-run/{run_id}", wait_until="networkidle")  # the older UI's link: sent on to /v2
        assert "/v2/runs/flow-run/" in page.url, page.url
        page.get_by_role("button", name="Open menu").first.click(timeout=60_000)
        page.get_by_role("menuitem", name="Resume").click()
        dialog = page.get_by_role("dialog").filter(has_text="Resume Flow Run")
        dialog.get_by_text("You answer as ").wait_for(timeout=30_000)
        text = dialog.inner_text().replace("\u2060", "")  # the word joiners that keep addresses text: unseen
        assert f"You answer as {HOSTILE_NAME} (eve)" in text, text[-600:]
        assert HOSTILE["contact_name"] in text and HOSTILE["notes"] in text, text[:1000]
        assert "Your handle" not in text and "One-time code" not in text  # the gateway names the person
        nothing_live(dialog)
        page.screenshot(path=str(tmp_path / "hostile-form.png"))
        dialog.get_by_role("switch").first.click()
        dialog.get_by_role("button", name="Resume").click()
        closed = answers.wait_closed(number, key, timeout=120)
        assert (closed.status, closed.answered_by) == ("answered", "eve")
        await_wait(number, "handoff")

        page.goto(f"{ui}/artifacts/key/deal-{number.lower()}", wait_until="networkidle")
        nothing_live(page.locator("body"))  # the page's versions, titled by its (escaped) description
        assert f"{number} · {HOSTILE['company']}" in page.locator("body").inner_text()
        page.locator("a[href*='/artifacts/artifact/']").first.click()  # the newest version: the page itself
        page.get_by_text("Timeline").first.wait_for(timeout=30_000)
        body = page.locator("body")
        page.get_by_text("Timeline").first.wait_for(timeout=30_000)
        text = body.inner_text().replace("\u2060", "")
        assert f"{HOSTILE_NAME} (eve)" in text, text[:2000]  # who answered, as named
        assert f"{number} · {HOSTILE['company']}" in text, text[:1500]
        nothing_live(body)
        page.screenshot(path=str(tmp_path / "hostile-page.png"), full_page=True)
        browser.close()
    assert dialogs == []
    assert [u for u in requests if "evil" in u] == []
