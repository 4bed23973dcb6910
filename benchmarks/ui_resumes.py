"""Resumes answered in the Prefect UI, in a real browser, with several deals moving at once, on
the Prefect server `dealflow up` starts by default (SQLite).

    .venv/bin/python benchmarks/ui_resumes.py                    # 5 deals at once, 100 resumes
    .venv/bin/python benchmarks/ui_resumes.py --prefect-defaults # a plain `prefect server start`
    .venv/bin/python benchmarks/ui_resumes.py --set PREFECT_SERVER_SERVICES_FOREMAN_ENABLED=false
    .venv/bin/python benchmarks/ui_resumes.py --deals 1 --resumes 10 --keep   # a quick look, logs kept

Everything happens in a new temporary data folder (its own database, secret key, PREFECT_HOME,
credential) on free ports: it runs `dealflow init` and `dealflow up` there (the environment's
PREFECT_*, DEALFLOW_*, DATABASE_URL and SMTP_* settings are left out, so the server is the default
one, on SQLite), adds staff accounts enrolled for one-time codes, starts deals and answers every
wait as a person would in the Prefect UI (Debian's chromium through playwright, never a downloaded
browser): open the deal's run, click Resume, fill the form (the code computed from the person's
enrolled secret, as their authenticator app would show it), Submit. Each deal goes qualify,
hand-off, estimate, changes asked, revision 2, approved, QA failed, QA passed, shipped, paid (10
resumes); a finished deal is replaced by a new one, so that --deals keep moving until --resumes
have been submitted. `dealflow down` stops what `up` started, also on failure or Ctrl-C.

A resume counts as failed when the /resume call the page makes answers non-2xx or does not
accept it, when the page shows an error toast (Prefect's "Oops. Something went wrong." or
"Failed to resume flow run"), or when the deal does not reach its next step within --move-timeout
seconds. A failed resume is submitted again, as a person would; every submit counts as tried.
Printed: resumes tried / succeeded / failed (and the toasts seen), the server's error records
grouped (endpoint or service, SQL statement, exception), p50/p95 from the click on Submit to the
deal's next step (its next wait opened, or the deal closed), how long the /resume call took, where
a person's time went, other answers that make the UI show its error toast (5xx, 401, 403), and the
settings (Prefect and SQLite versions, the server's command, database and environment, its
services on and off, CPU count, load average). The server is started with
PREFECT_SERVER_LOG_RETRYABLE_ERRORS=true so that what it answers with 503 is in its log (logging
only). Exit code 0 when every resume succeeded. Takes about 10 minutes on a 2-core machine
(`dealflow up` ~30 s, answering up to --time-limit, `dealflow down`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROLES = "sales_rep,sales_engineer,qa,delivery,finance"
LINE = {"sku": "VMC-850", "quantity": 1}
TOASTS = ".p-toast__card"  # the UI's notifications ("Flow run resumed", "Oops. Something went wrong.")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=5, help="deals moving at once, one browser page (person) each "
                                                              "(default 5)")
    parser.add_argument("--resumes", type=int, default=100, help="resumes to submit in all (default 100)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for `dealflow up` and so for the Prefect server it starts, "
                             "e.g. PREFECT_SERVER_SERVICES_FOREMAN_ENABLED=false; repeatable")
    parser.add_argument("--prefect-defaults", action="store_true",
                        help="the server as `prefect server start` runs it, without what `dealflow up` adds for "
                             "SQLite (DEALFLOW_SERVER_RETRIES=0: resumes begin as Prefect begins them, nothing "
                             "answered 503 is tried again): the 'before' measurement")
    parser.add_argument("--time-limit", type=float, default=540,
                        help="stop submitting after this many seconds of answering (default 540), and report")
    parser.add_argument("--move-timeout", type=float, default=120,
                        help="seconds a deal may take to reach its next step after a resume (default 120)")
    parser.add_argument("--browser", default=shutil.which("chromium") or shutil.which("chromium-browser") or "",
                        help="the browser executable (default: Debian's chromium)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder (logs, databases)")
    args = parser.parse_args()
    if not args.browser:
        parser.error("no chromium found: apt-get install chromium (this never downloads a browser)")
    for item in args.settings:
        if "=" not in item:
            parser.error(f"--set {item}: give NAME=VALUE")
    return args


def clean_env(data: Path, extra: dict[str, str]) -> dict[str, str]:
    """This shell's environment without its Prefect, dealflow, database and mail settings: the
    benchmark's own data folder and `dealflow up`'s defaults, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "DEALFLOW_", "SMTP_")) and k != "DATABASE_URL"}
    env.update({"DEALFLOW_DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{data / 'dealflow.db'}",
                "PREFECT_SERVER_LOG_RETRYABLE_ERRORS": "true"})
    env.update(extra)
    return env


def dealflow(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dealflow.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def server_settings(pid: int) -> dict:
    """What the running server was started with, read by Prefect's own settings from its environment."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    env = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
    code = ("import json, prefect, sqlite3\n"
            "from prefect.settings import get_current_settings\n"
            "s = get_current_settings().server\n"
            "sv = s.services\n"
            "on = {n: (sorted(getattr(sv, n).enabled_vacuum_types) if n == 'db_vacuum' else getattr(sv, n).enabled)"
            " for n in type(sv).model_fields}\n"
            "print(json.dumps({'prefect': prefect.__version__, 'sqlite': sqlite3.sqlite_version,"
            " 'url': s.database.connection_url.get_secret_value() if s.database.connection_url else None,"
            " 'timeout': s.database.timeout, 'services': on}))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        print(f"(could not read the server's settings: {done.stderr.strip()[-500:]})")
        return {}
    return json.loads(done.stdout)


def prefect_env_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
    return {k: v for k, v in pairs if (k.startswith("PREFECT_SERVER") and "AUTH" not in k) or k == "DEALFLOW_SERVER_RETRIES"}


LOG_RECORD = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| (\w+)\s*\| ([\w.]+) - (.*)")


def server_errors(log: Path) -> Counter:
    """The server's error records grouped by logger, the API endpoint or service they came from,
    the SQL statement's start and the exception (a failed request is logged twice, by Prefect's
    handler and by uvicorn: counted once)."""
    groups: Counter = Counter()
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return groups
    records, current = [], None
    for line in lines:
        m = LOG_RECORD.match(line)
        if m:
            current = [m.group(1), m.group(2), m.group(3), []] if m.group(1) in ("ERROR", "CRITICAL") else None
            if current:
                records.append(current)
        elif current is not None:
            current[3].append(line)
    for _level, logger, message, body in records:
        if logger == "uvicorn.error" and message.startswith("Exception in ASGI application"):
            continue  # the same failed request again, as uvicorn sees it
        endpoint = deepest = sql = exc = ""
        for line in body:
            f = re.search(r'prefect/server/(.+?)\.py", line \d+, in (\w+)', line)
            if f and f.group(1).startswith("api/") and not endpoint and f.group(1) not in ("api/server",):
                endpoint = f"{f.group(1)[4:]}.{f.group(2)}"
            elif f and not f.group(1).startswith(("database/", "utilities/", "api/server")):
                deepest = f"{f.group(1).rsplit('/', 1)[-1]}.{f.group(2)}"
            if line.startswith("[SQL: "):
                sql = " ".join(line[6:].split()[:3])
            if re.match(r"^[\w.]+(Error|Exception)\b", line):
                exc = re.sub(r"^sqlalchemy\.exc\.\w+: ", "", line)[:80]
        where = endpoint or deepest or "?"
        groups[f"{logger}: {UUID_RE.sub('<id>', message)[:50]} | {where} | {sql} | {exc}"] += 1
    return groups


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(q * len(ordered))) - 1)]


class People:
    """Staff accounts (every role a wait needs) enrolled for one-time codes; each answer is given
    by one whose code is still unused, as a team of people would. A code works once per person
    (the flow refuses a code step used before), so this spreads answers over people."""

    def __init__(self, count: int):
        from models import identity
        from models.staff import add_staff
        from services import keys
        from services.db import session_scope

        cipher = keys.cipher()
        self.generators, self.last = {}, {}
        with session_scope() as s:
            for i in range(1, count + 1):
                handle = f"ui{i:02d}"
                person = add_staff(s, handle, f"UI person {i}", f"{handle}@bench.example", ROLES)
                identity.enroll(s, person, cipher, by="benchmark")
                s.flush()
                self.generators[handle] = identity.totp(person, cipher)
                self.last[handle] = -1
            s.commit()

    async def take(self) -> tuple[str, str]:
        """A person and the code their app shows now (or the next one, valid one step ahead)."""
        while True:
            now = int(time.time()) // 30
            for handle in sorted(self.last, key=self.last.get):
                step = max(now, self.last[handle] + 1)
                if step <= now + 1:
                    self.last[handle] = step
                    return handle, self.generators[handle].generate_otp(step)
            await asyncio.sleep(1)


class Tally:
    def __init__(self, target: int, deadline: float):
        self.target, self.deadline = target, deadline
        self.tried = self.ok = 0
        self.failed: Counter = Counter()
        self.latencies: list[float] = []
        self.refused_by_flow = 0
        self.toasts: Counter = Counter()
        self.other_5xx: Counter = Counter()
        self.deals = 0
        self.deals_done = 0
        self.errors: list[str] = []
        self.shots: Path | None = None
        self.out_of_time = False
        self.phases: dict[str, list[float]] = defaultdict(list)
        self.resume_calls: list[float] = []
        self.failed_calls: list[float] = []
        self.cut_off = 0

    def phase(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.phases[name].append(now - since)
        return now

    def may_submit(self) -> bool:
        self.out_of_time = time.monotonic() >= self.deadline
        return self.tried < self.target and not self.out_of_time


# --- the business database and the Prefect API, from threads ------------------------------------

def new_deal(i: int) -> str:
    from prefect.deployments import run_deployment

    from dealflow.scenario import start_scenario_deal

    number = start_scenario_deal(f"UI Bench {i:03d} Ltd", restock=2, restock_key=f"ui-bench-{i}")
    run_deployment("deal/deal", parameters={"deal_number": number}, timeout=0)
    return number


def deal_now(number: str) -> dict:
    """The deal's state: its open wait (key, step, run, form stored, opened) or its end."""
    from datetime import UTC

    from models.deal import deal_by_number
    from services.db import session_scope

    with session_scope() as s:
        deal = deal_by_number(s, number)
        if deal.status != "open":
            return {"closed": deal.status, "at": deal.closed_at.replace(tzinfo=UTC).timestamp()}
        w = deal.open_wait
        if w is None:
            return {}
        return {"key": w.key, "step": w.step, "run": w.flow_run_id, "ready": w.form_stored_at is not None,
                "opened": w.opened_at.replace(tzinfo=UTC).timestamp()}


def wait_status(number: str, key: str) -> str:
    from models.deal import deal_by_number
    from services.db import session_scope

    with session_scope() as s:
        return next((w.status for w in deal_by_number(s, number).waits if w.key == key), "?")


def next_wait(number: str, after: str | None) -> dict | None:
    """The deal's end, or its open wait other than ``after`` once it can be answered (its form stored)."""
    d = deal_now(number)
    return d if "closed" in d or (d.get("key") != after and d.get("ready") and d.get("run")) else None


def moved(number: str, key: str) -> dict | None:
    """The deal's end, or its open wait once it is another than ``key``."""
    d = deal_now(number)
    return d if "closed" in d or (d and d.get("key") != key) else None


async def until(fn, *args, timeout: float, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(fn, *args)
        if value:
            return value
        await asyncio.sleep(every)
    return None


# --- a person in the browser ----------------------------------------------------------------------

def prop(dialog, label: str):
    """The form's property titled ``label`` (the UI adds " (Optional)" to optional ones)."""
    title = re.compile(rf"^\s*{re.escape(label)}( \(Optional\))?\s*$")
    return dialog.locator(".schema-form-property").filter(
        has=dialog.page.locator(".schema-form-property__label", has_text=title)).first


async def type_into(dialog, label: str, value: str) -> None:
    """Type ``value`` into the property's field, or pick it from its list if it has one."""
    p = prop(dialog, label)
    if await p.locator("button.p-select-button__control").count():
        await choose(dialog, label, value, prefix=True)
    else:
        await p.locator("textarea, input:not([type=checkbox])").first.fill(value)


async def switch(dialog, label: str, on: bool) -> None:
    toggle = prop(dialog, label).get_by_role("switch").first
    if (await toggle.get_attribute("aria-checked") == "true") != on:
        await toggle.click()


async def choose(dialog, label: str | None, option: str, prefix: bool = False) -> None:
    """Pick ``option`` from the list of the property ``label`` (None: the first list in
    ``dialog``); with ``prefix``, the option that starts with it."""
    button = (prop(dialog, label) if label else dialog).locator("button.p-select-button__control").first
    await button.click()
    options = dialog.page.locator(".p-select-option")
    if not await options.count():  # the list opens with the keyboard when a click does not open it
        await button.press("ArrowDown")
    text = re.compile(rf"^\s*{re.escape(option)}" + (r"\b" if prefix else r"\s*$"))
    await options.filter(has_text=text).first.click()


async def add_line(dialog, sku: str, quantity: int) -> None:
    """A line added as a person adds it: Add item, the product picked from its list, the quantity."""
    lines = prop(dialog, "Lines")
    await lines.get_by_role("button", name="Add item").click()
    item = lines.locator(".p-draggable-list__item").last
    await choose(item, None, sku, prefix=True)  # the product: its SKU, name, price and stock
    await type_into(item, "Quantity", str(quantity))


async def fill(dialog, step: str, seen: Counter) -> None:
    """What the scripted person types at ``step`` (the ``seen``-th time the deal is there)."""
    n = seen[step]
    if step == "qualify":
        await switch(dialog, "Qualified?", True)
        await type_into(dialog, "Timeline", "Q1 2027")
    elif step == "handoff":
        await type_into(dialog, "Sales engineer", "mark")
    elif step == "estimate":
        if await prop(dialog, "Lines").locator(".schema-form-property-array-list__empty").count():
            await add_line(dialog, LINE["sku"], LINE["quantity"])  # revision 1
        else:  # a revision starts with the previous one's lines: the 5 % the customer asked for
            await type_into(prop(dialog, "Lines").locator(".p-draggable-list__item").first, "Discount %", "5")
        await type_into(dialog, "Notes", f"revision {n}")
    elif step == "decision":
        await choose(dialog, "Customer's decision", "request_changes" if n == 1 else "approve")
        if n == 1:
            await type_into(dialog, "Changes wanted", "5 % off, please")
    elif step == "qa":  # a switch per check of the order's checklist (the first fails once), or Passed?
        checks = prop(dialog, "Checklist").get_by_role("switch")
        # the form may still be rendering: wait for its switches (the checklist's, or Passed? alone)
        await checks.first.or_(prop(dialog, "Passed?").get_by_role("switch").first).wait_for(timeout=30_000)
        if await prop(dialog, "Checklist").count() and await checks.count():
            for j in range(await checks.count()):
                if (await checks.nth(j).get_attribute("aria-checked") == "true") != (n > 1 or j > 0):
                    await checks.nth(j).click()
        else:
            await switch(dialog, "Passed?", n > 1)
        await type_into(dialog, "Notes", "pass" if n > 1 else "spindle runout too high: rework")
    elif step == "shipment":  # the form starts with every line left to ship, a machine's serial numbers too
        await type_into(dialog, "Carrier", "DHL Freight")
        await type_into(dialog, "Tracking number", f"UI-{int(time.time() * 1000) % 10**9}")
        serials = prop(dialog, "Serial numbers").locator("textarea, input:not([type=checkbox])")
        for j in range(await serials.count()):  # a machine received without one: typed from its plate
            if not await serials.nth(j).input_value():
                await serials.nth(j).fill(f"UI-SN-{time.time_ns() % 10**12}-{j}")
    # payment: the form starts with the amount due


async def person(i: int, browser, ui: str, credential: str, people: People, tally: Tally) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1400})
    page = await context.new_page()

    def on_response(r) -> None:  # what else makes the UI show "Oops": a 5xx, 401 or 403 of any call
        if (r.status >= 500 or r.status in (401, 403)) and "/api/" in r.url and not r.url.endswith("/resume"):
            tally.other_5xx[f"{r.status} {r.request.method} {UUID_RE.sub('{id}', r.url.split('/api', 1)[1])}"] += 1

    def on_failed(r) -> None:  # a call cut off: the page was left (no toast: the page is gone)
        if "/api/" in r.url:
            tally.cut_off += 1

    await page.goto(f"{ui}/runs", wait_until="domcontentloaded")
    await page.wait_for_url("**/login**", timeout=60_000)
    await page.locator("input[type=password]").fill(credential)
    await page.get_by_role("button", name="Login").click()
    await page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
    page.on("response", on_response)  # signed in: from now on a 401 would be a failure
    page.on("requestfailed", on_failed)

    try:
        await deals(i, page, ui, people, tally)
    except Exception:
        if tally.shots:
            await page.screenshot(path=str(tally.shots / f"person-{i}-error.png"), full_page=True)
        raise
    await context.close()


async def deals(i: int, page, ui: str, people: People, tally: Tally) -> None:
    deal_no = i
    while tally.may_submit():
        number = await asyncio.to_thread(new_deal, deal_no)
        tally.deals += 1
        deal_no += 100
        seen: Counter = Counter()
        last_key = None
        while tally.may_submit():
            t = time.monotonic()
            state = await until(next_wait, number, last_key, timeout=180)
            tally.phase("deal until its form is stored", t)
            if state is None:
                tally.errors.append(f"{number}: no wait ready after {last_key}")
                return
            if "closed" in state:
                tally.deals_done += 1
                break
            key, step = state["key"], state["step"]
            seen[step] += 1
            moved = await answer(page, ui, number, state, seen, people, tally)
            if moved is None:  # out of time or resumes
                return
            last_key = key


async def open_form(page, ui: str, run_id: str):
    for _ in range(5):
        await page.goto(f"{ui}/runs/flow-run/{run_id}", wait_until="domcontentloaded")
        try:
            await page.get_by_role("button", name="Resume").first.click(timeout=30_000)
            dialog = page.get_by_role("dialog")
            await dialog.get_by_text("Your handle").first.wait_for(timeout=30_000)
            return dialog
        except Exception:  # noqa: BLE001 - not suspended yet on the page's last look: look again
            await asyncio.sleep(1)
    raise RuntimeError(f"no Resume form for run {run_id}")


async def answer(page, ui: str, number: str, state: dict, seen: Counter, people: People, tally: Tally):
    """Answer the open wait in the UI until a resume is taken and the deal moves on; every submit
    counts. True when the deal moved; None when out of resumes or time."""
    key = state["key"]
    t = time.monotonic()
    dialog = await open_form(page, ui, state["run"])
    t = tally.phase("open the run's page and its Resume form", t)
    await fill(dialog, state["step"], seen)
    handle, code = await people.take()
    await type_into(dialog, "Your handle", handle)
    await type_into(dialog, "One-time code", code)
    tally.phase("fill the form", t)
    failed_try = False
    for attempt in range(10):
        if not tally.may_submit():
            return None
        toasts_before = await page.locator(TOASTS).all_inner_texts()
        status, verdict = 0, ""
        sent = asyncio.ensure_future(page.wait_for_event(
            "request", lambda r: r.method == "POST" and r.url.endswith("/resume"), timeout=15_000))
        waiting = asyncio.ensure_future(page.wait_for_event(
            "response", lambda r: r.request.method == "POST" and r.url.endswith("/resume"), timeout=120_000))
        t_submit = time.time()
        await dialog.get_by_role("button", name="Submit").click()
        try:
            await sent
        except Exception:  # noqa: BLE001 - the page kept it: a field it finds invalid
            waiting.cancel()
            text = " ".join(t.strip() for t in await dialog.locator("[class*=error], .text-danger, .p-label__message")
                            .all_inner_texts() if t.strip())[:300]
            tally.errors.append(f"{number} {key}: the page did not send the form ({text or 'no message'})")
            if tally.shots:
                await page.screenshot(path=str(tally.shots / f"{number}-{key}-{attempt}.png"), full_page=True)
            return None
        tally.tried += 1
        try:
            response = await waiting
            (tally.resume_calls if 200 <= response.status < 300 else tally.failed_calls).append(time.time() - t_submit)
            status = response.status
            try:
                verdict = (await response.json()).get("status", "")
            except Exception:  # noqa: BLE001
                verdict = ""
        except Exception as exc:  # noqa: BLE001
            verdict = f"no answer ({type(exc).__name__})"
            if tally.shots:
                await page.screenshot(path=str(tally.shots / f"{number}-{key}-{attempt}.png"), full_page=True)
        await asyncio.sleep(1)  # the page's toast
        toasts = {" ".join(t.split()) for t in await page.locator(TOASTS).all_inner_texts()}
        new_errors = {t for t in toasts - {" ".join(b.split()) for b in toasts_before}
                      if re.search(r"Oops|Failed|error|wrong", t, re.I)}
        this_failed = not (200 <= status < 300) or verdict != "ACCEPT"
        # after a failed try in the same form, a late error toast is still that try's
        bad_toasts = new_errors if this_failed or not failed_try else set()
        for t in bad_toasts:
            tally.toasts[t[:100]] += 1
        failed_try = this_failed
        if failed_try:
            tally.failed[f"/resume answered {status or '-'} {verdict} ({state['step']})".strip()] += 1
            if tally.shots and sum(tally.failed.values()) <= 3:  # what the person saw
                await page.screenshot(path=str(tally.shots / f"{number}-{key}-{attempt}-{status}.png"))
            await asyncio.sleep(1)  # "submit again"
            if await dialog.count() and await dialog.get_by_role("button", name="Submit").count():
                continue
            dialog = await open_form(page, ui, state["run"])  # the dialog closed: open it again
            await fill(dialog, state["step"], seen)
            await type_into(dialog, "Your handle", handle)
            await type_into(dialog, "One-time code", code)
            continue
        if bad_toasts:
            tally.failed["error toast on an accepted resume"] += 1
            if tally.shots and tally.failed["error toast on an accepted resume"] <= 3:
                await page.screenshot(path=str(tally.shots / f"{number}-{key}-{attempt}-toast.png"))
        nxt = await until(moved, number, key, timeout=tally_move_timeout)
        if nxt is None:
            tally.failed[f"run did not move within {tally_move_timeout:.0f} s"] += 1
            return True
        if not bad_toasts:
            tally.ok += 1
            tally.latencies.append((nxt["at"] if "closed" in nxt else nxt["opened"]) - t_submit)
        if await asyncio.to_thread(wait_status, number, key) == "refused":
            tally.refused_by_flow += 1
        return True
    return True


tally_move_timeout = 120.0


async def drive(args, ui: str, credential: str, people: People, tally: Tally) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=args.browser, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
        tally.browser = browser.version
        results = await asyncio.gather(*(person(i + 1, browser, ui, credential, people, tally)
                                         for i in range(args.deals)), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                tally.errors.append(f"{type(r).__name__}: {str(r)[:300]}")
        await browser.close()


def main() -> int:
    global tally_move_timeout
    args = parse_args()
    tally_move_timeout = args.move_timeout
    extra = dict(item.split("=", 1) for item in args.settings)
    if args.prefect_defaults:
        extra.setdefault("DEALFLOW_SERVER_RETRIES", "0")
    data = Path(tempfile.mkdtemp(prefix="dealflow-ui-resumes-"))
    env = clean_env(data, extra)
    port, portal_port = free_port(), free_port()
    load_start = os.getloadavg()
    t0 = time.monotonic()
    started = False
    try:
        init = dealflow("init", "--demo-data", env=env)
        if init.returncode != 0:
            print(init.stdout + init.stderr, file=sys.stderr)
            return 1
        started = True
        up = dealflow("up", "--port", str(port), "--portal-port", str(portal_port), "--json", env=env)
        if up.returncode != 0:
            print(up.stdout + up.stderr, file=sys.stderr)
            return 1
        info = json.loads(up.stdout)
        print(f"dealflow up in {time.monotonic() - t0:.0f} s: {info['ui']} (data {data})", flush=True)
        credential = Path(info["credential_file"]).read_text().strip()
        os.environ.update(env)
        os.environ.update({"PREFECT_API_URL": info["api"], "PREFECT_API_AUTH_STRING": credential,
                           "PREFECT_LOGGING_LEVEL": "WARNING"})
        people = People(4 * args.deals)
        tally = Tally(args.resumes, time.monotonic() + args.time_limit)
        if args.keep:
            tally.shots = data / "screenshots"
            tally.shots.mkdir()
        t_answer = time.monotonic()
        asyncio.run(drive(args, info["ui"], credential, people, tally))
        wall = time.monotonic() - t_answer
        report(args, tally, info, data, wall, load_start, extra)
        return 0 if tally.tried and not sum(tally.failed.values()) and not tally.errors else 2
    finally:
        if started:
            down = dealflow("down", env=env, timeout=200)
            print(f"dealflow down: {'ok' if down.returncode == 0 else down.stderr.strip()[-300:]}", flush=True)
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)


def report(args, tally: Tally, info: dict, data: Path, wall: float, load_start, extra: dict) -> None:
    settings = server_settings(int(info["server_pid"]))
    failed = sum(tally.failed.values())
    print("\nsettings:")
    print(f"  Prefect {settings.get('prefect')}, SQLite {settings.get('sqlite')}; server database "
          f"{re.sub(r'//.*/', '//…/', str(settings.get('url')))} (statement timeout {settings.get('timeout')} s)")
    services = settings.get("services", {})
    print(f"  server services on: {', '.join(n for n, v in services.items() if v and v is not False) or '-'}")
    print(f"  server services off: {', '.join(n for n, v in services.items() if not v) or '-'}")
    try:
        command = Path(f"/proc/{info['server_pid']}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        command = "?"
    print(f"  server command: {command.replace(sys.executable, 'python')}")
    print(f"  server environment (PREFECT_SERVER_*, DEALFLOW_SERVER_RETRIES): {prefect_env_of(int(info['server_pid']))}")
    print(f"  benchmark --set: {extra or '-'}")
    print(f"  {args.deals} deals moving at once (one chromium {getattr(tally, 'browser', '?')} page each), "
          f"{tally.deals} deals started, {tally.deals_done} finished; 1 executor "
          f"(dealflow up's default); CPU count {os.cpu_count()}; load average at start "
          f"{load_start[0]:.2f}, at end {os.getloadavg()[0]:.2f} (the machine is shared)")
    print("results:")
    print(f"  resumes tried {tally.tried}, succeeded {tally.ok}, failed {failed} in {wall:.0f} s"
          f"{' (time limit reached)' if tally.out_of_time and tally.tried < args.resumes else ''}")
    for what, n in tally.failed.most_common():
        print(f"    {n:4d} × {what}")
    for what, n in tally.toasts.most_common():
        print(f"    toast {n:4d} × {what}")
    if tally.refused_by_flow:
        print(f"  (of the accepted resumes, {tally.refused_by_flow} were answers the flow refused: the deal "
              f"waited again, which is its next step)")
    if tally.latencies:
        lat = tally.latencies
        print(f"  submit -> deal's next step: p50 {statistics.median(lat):.2f} s, p95 {pct(lat, 0.95):.2f} s, "
              f"max {max(lat):.2f} s ({len(lat)} resumes)")
    if tally.resume_calls:
        print(f"  the /resume call itself (click to answer): p50 {statistics.median(tally.resume_calls):.2f} s, "
              f"p95 {pct(tally.resume_calls, 0.95):.2f} s" + (
                  f"; answered non-2xx after p50 {statistics.median(tally.failed_calls):.2f} s, max "
                  f"{max(tally.failed_calls):.2f} s" if tally.failed_calls else ""))
    print("  where a person's time went (mean per resume): " + ", ".join(
        f"{name} {statistics.mean(v):.1f} s" for name, v in tally.phases.items()))
    print(f"  other answers that make the UI show its error toast (5xx, 401, 403): {sum(tally.other_5xx.values())}"
          f" (and {tally.cut_off} calls cut off by leaving a page)")
    for what, n in tally.other_5xx.most_common(8):
        print(f"    {n:4d} × {what}")
    errors = server_errors(data / "logs" / "server.log")
    print(f"  server log errors: {sum(errors.values())}")
    for what, n in errors.most_common(12):
        print(f"    {n:4d} × {what}")
    for e in tally.errors:
        print(f"  benchmark error: {e}")
    if args.keep:
        print(f"  logs: {data / 'logs'}")


if __name__ == "__main__":
    sys.exit(main())
