"""What a person waits for with five years of deals in the database (made by `generate.py
--history`): the wall time of each reading command as its user runs it, a new `dealflow` process
each time, and with --ui the Prefect UI's runs page filtered to one person's work, in a browser.

    DB=postgresql://root@127.0.0.1:5432/history
    .venv/bin/python benchmarks/generate.py --history --finished 100000 --open 5000 --database-url $DB
    .venv/bin/python benchmarks/history_reads.py --database-url $DB --runs 5
    .venv/bin/python benchmarks/history_reads.py --database-url $DB --ui --data-dir DIR   # + the UI

(--data-dir: the folder generate.py printed, whose key the staff's code secrets are sealed with.)
With --ui, `dealflow up` runs on a new PostgreSQL database for Prefect (--prefect-database),
`history.prefect_runs` gives every open deal its suspended run and every deal of the last 90
days its finished one, and a person signs in at the gateway in Debian's chromium and opens the
runs page filtered to their work (`/v2/runs?tags=assignee:HANDLE`) --runs times: the time from
asking for the page to their newest waiting deal's run shown in the list. `dealflow inbox` is
then timed again with the run states (PREFECT_API_URL set).

Prints, per command, min / median / max wall seconds over --runs runs, the number of lines it
printed, and the target (issue 26: inbox, deal show and stock ≤ 1 s; every report ≤ 2 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ["pipeline", "funnel", "stage-times", "sales", "stock", "aging", "discounts", "cash", "returns",
           "warranty"]


def _dealflow() -> str:
    exe = Path(sys.executable).parent / "dealflow"
    return str(exe) if exe.exists() else "dealflow"


def timed(args: list[str], env: dict[str, str], runs: int) -> tuple[list[float], int]:
    times, lines = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run([_dealflow(), *args], env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"dealflow {' '.join(args)} failed ({done.returncode}): {done.stderr[-1500:]}")
        lines = len(done.stdout.splitlines())
    return times, lines


def sample_deals(url: str) -> dict[str, str]:
    from sqlalchemy import text

    from services.db import engine_for

    with engine_for(url).connect() as conn:
        oldest = conn.execute(text("SELECT number FROM deals WHERE status <> 'open' ORDER BY created_at, id "
                                   "LIMIT 1")).scalar_one()
        newest_open = conn.execute(text("SELECT number FROM deals WHERE status = 'open' ORDER BY id DESC "
                                        "LIMIT 1")).scalar_one()
        counts = dict(conn.execute(text("SELECT status, COUNT(*) FROM deals GROUP BY status")).all())
        audit = conn.execute(text("SELECT COUNT(*) FROM audit_log")).scalar_one()
        open_waits = conn.execute(text("SELECT COUNT(*) FROM waits WHERE status = 'open'")).scalar_one()
    return {"oldest": oldest, "open": newest_open, "counts": counts, "audit": audit, "open_waits": open_waits}


def _code(handle: str) -> str:
    """The code ``handle``'s authenticator app shows now (from the enrolled secret)."""
    from datetime import UTC

    from application.uow import unit_of_work
    from models import identity, utcnow
    from models.staff import staff_member
    from services import keys

    with unit_of_work() as s:
        generator = identity.totp(staff_member(s, handle), keys.cipher())
        step = max(generator.timecode(utcnow().replace(tzinfo=UTC)), (staff_member(s, handle).totp_last_step or 0) + 1)
    while generator.timecode(utcnow().replace(tzinfo=UTC)) < step - 1:
        time.sleep(1)
    return generator.generate_otp(step)


def ui(args, env: dict[str, str]) -> None:
    from sqlalchemy import create_engine, text

    from benchmarks import history

    pg = args.prefect_database
    if not args.reuse_runs:
        admin = create_engine(pg.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = pg.rsplit("/", 1)[1]
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    api = f"http://127.0.0.1:{args.port}/api"
    os.environ.update({"DEALFLOW_DATA_DIR": args.data_dir, "DATABASE_URL": args.database_url, "PREFECT_API_URL": api,
                       "PREFECT_LOGGING_LEVEL": "WARNING",
                       "PREFECT_SERVER_DATABASE_CONNECTION_URL": pg.replace("postgresql://", "postgresql+asyncpg://")})
    from dealflow.api_credential import ensure_credential

    os.environ["PREFECT_API_AUTH_STRING"] = ensure_credential(Path(args.data_dir))[0]
    from dealflow import stack

    info = stack.up(port=args.port, executors=1, say=lambda *_: None)
    try:
        if not args.reuse_runs:
            made = history.prefect_runs(args.database_url)
            print(f"  Prefect runs made: {made}")
        server = int(info["server_pid"])
        from sqlalchemy import text as sql

        from services.db import engine_for

        with engine_for(args.database_url).connect() as conn:
            newest = conn.execute(sql(
                "SELECT d.number FROM deals d JOIN waits w ON w.deal_id = d.id AND w.status = 'open' "
                "JOIN opportunities o ON o.id = d.opportunity_id JOIN staff_users s ON s.id = o.engineer_id "
                "WHERE s.handle = :h AND w.roles LIKE '%sales_engineer%' ORDER BY d.id DESC LIMIT 1"),
                {"h": args.handle}).scalar_one()
        from playwright.sync_api import sync_playwright

        gateway = str(info["gateway"]).rstrip("/")
        times = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            page = context.new_page()
            page.goto(f"{gateway}/v2/runs", wait_until="domcontentloaded")
            page.wait_for_url("**/dealflow/sign-in**", timeout=30_000)
            page.get_by_label("Your handle").fill(args.handle)
            page.get_by_label("One-time code").fill(_code(args.handle))
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "/dealflow/sign-in" not in url, timeout=30_000)
            for i in range(args.runs + 1):  # the first loads the UI's scripts into the cache: not counted
                page.goto("about:blank")
                t0 = time.perf_counter()
                page.goto(f"{gateway}/v2/runs?tags=assignee:{args.handle}", wait_until="commit")
                page.get_by_text(newest, exact=False).first.wait_for(timeout=60_000)
                if i:
                    times.append(time.perf_counter() - t0)
            shown = page.get_by_text("DEAL-", exact=False).count()
            browser.close()
        print(f"{'the runs page filtered to assignee:' + args.handle:<52} {min(times):7.3f} "
              f"{statistics.median(times):7.3f} {max(times):7.3f}  {shown:>6}  ≤ 3 s"
              + ("  OVER" if statistics.median(times) > 3 else ""))
        env_api = {**env, "PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": os.environ["PREFECT_API_AUTH_STRING"],
                   "DEALFLOW_DATA_DIR": args.data_dir}
        for cmd in (["inbox"], ["inbox", "--role", "qa"]):
            t, lines = timed(cmd, env_api, args.runs)
            print(f"{'dealflow ' + ' '.join(cmd) + ' (with run states)':<52} {min(t):7.3f} "
                  f"{statistics.median(t):7.3f} {max(t):7.3f}  {lines:>6}  ≤ 1 s" + ("  OVER" if statistics.median(t) > 1
                                                                                    else ""))
        # a colleague's laptop: signed in at the gateway, no database, no Prefect credential
        import tempfile

        laptop = {k: v for k, v in env.items() if not k.startswith(("DATABASE_URL", "PREFECT_", "DEALFLOW_DATA"))}
        laptop["DEALFLOW_CONFIG_DIR"] = tempfile.mkdtemp(prefix="dealflow-laptop-")
        subprocess.run([_dealflow(), "login", args.handle, "--gateway", gateway, "--code", _code(args.handle)],
                       env=laptop, check=True, capture_output=True)
        facts = sample_deals(args.database_url)
        for cmd in (["inbox"], ["inbox", "--role", "qa"], ["deal", "show", facts["oldest"], "--history"],
                    ["deal", "show", facts["open"]]):
            t, lines = timed(cmd, laptop, args.runs)
            print(f"{'dealflow ' + ' '.join(cmd) + ' (through the gateway)':<52} {min(t):7.3f} "
                  f"{statistics.median(t):7.3f} {max(t):7.3f}  {lines:>6}  ≤ 1 s" + ("  OVER" if statistics.median(t) > 1
                                                                                    else ""))
        print(f"  Prefect server: {_rss_mb(server):.0f} MB resident")
    finally:
        stack.down(say=lambda *_: None)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ui", action="store_true", help="also the Prefect UI's runs page, in chromium")
    parser.add_argument("--data-dir", default="", help="with --ui: the data folder generate.py printed")
    parser.add_argument("--prefect-database", default="postgresql://root@127.0.0.1:5432/history_prefect",
                        help="with --ui: made anew for Prefect's server (default %(default)s)")
    parser.add_argument("--handle", default="mark", help="with --ui: whose work the page shows (default mark)")
    parser.add_argument("--port", type=int, default=4288)
    parser.add_argument("--skip-commands", action="store_true", help="only the --ui part")
    parser.add_argument("--reuse-runs", action="store_true",
                        help="with --ui: Prefect's database and its runs as an earlier --ui run left them")
    args = parser.parse_args()
    if args.ui and not args.data_dir:
        parser.error("--ui needs --data-dir: the folder generate.py printed")

    sys.path.insert(0, str(ROOT))
    env = {**os.environ, "DATABASE_URL": args.database_url}
    env.pop("PREFECT_API_URL", None)  # the business database only: the run states are the UI's part
    env.pop("DEALFLOW_GATEWAY_URL", None)
    facts = sample_deals(args.database_url)
    print("settings:")
    print(f"  database      {args.database_url.split('@')[-1]}: deals {facts['counts']}, "
          f"audit entries {facts['audit']:,}, open waits {facts['open_waits']:,}")
    print(f"  runs          {args.runs} per command, each a new process (wall time, Python start included)")
    print(f"  machine       {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start")
    commands = [
        (["inbox"], 1.0, "every open wait"),
        (["inbox", "--role", "qa"], 1.0, "QA's queue"),
        (["inbox", "--role", "sales_engineer"], 1.0, "the engineers' waits"),
        (["deal", "show", facts["oldest"]], 1.0, "the oldest deal"),
        (["deal", "show", facts["oldest"], "--history"], 1.0, "the oldest deal with its audit log"),
        (["deal", "show", facts["open"]], 1.0, "an open deal"),
        (["stock"], 1.0, ""),
        *[(["report", r], 2.0, "") for r in REPORTS],
    ]
    print(f"{'command':<52} {'min':>7} {'median':>7} {'max':>7}  {'lines':>6}  target")
    over = []
    for cmd, target, note in ([] if args.skip_commands else commands):
        times, lines = timed(cmd, env, args.runs)
        med = statistics.median(times)
        label = "dealflow " + " ".join(cmd) + (f" ({note})" if note else "")
        print(f"{label:<52} {min(times):7.3f} {med:7.3f} {max(times):7.3f}  {lines:>6}  ≤ {target:.0f} s"
              + ("  OVER" if med > target else ""), flush=True)
        if med > target:
            over.append(label)
    if args.ui:
        ui(args, env)
    print(f"commands over target by the median: {', '.join(over) if over else 'none'}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
