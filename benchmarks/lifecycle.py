"""How long one complete Glocial deal takes: (a) through the domain and the stage tasks called
directly, without Prefect, and (b) through the deal flow on a real Prefect API, every answer given
as soon as its wait opens. Prints per-deal mean and median of both, and their ratio.

    .venv/bin/python benchmarks/lifecycle.py --deals 5
    .venv/bin/python benchmarks/lifecycle.py --deals 5 --database-url postgresql://root@127.0.0.1:5432/test
    .venv/bin/python benchmarks/lifecycle.py --deals 5 --tryton-python /tmp/tryton-venv/bin/python

With --tryton-python, the same deal is also run through the Tryton ERP in the same run
(``benchmarks/tryton_deal.py`` in that Python, which has Tryton installed: see that script),
and its time per deal is printed beside (a) and (b).

Without PREFECT_API_URL a temporary local Prefect server is started (Prefect's test harness).
The business database is a fresh SQLite file in a temporary folder unless --database-url is
given (that database's dealflow tables are dropped and re-created: use a scratch database).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import dealflow  # noqa: E402, F401  (as every dealflow process: its Prefect settings before Prefect)


def _prepare(url: str) -> None:
    from sqlalchemy import text

    from models import Base, seed
    from services import keys
    from services.db import engine_for, migrate, session_scope

    if url.startswith("postgresql"):
        with engine_for(url).begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate(url)
    assert Base.metadata.tables
    with session_scope(url) as s:
        keys.ensure_key_file()  # the staff are enrolled: each answer is signed in its person's session
        seed.load(s, keys.cipher())
        s.commit()


def _new_deal(i: int) -> str:
    """A fresh lead and deal, with the scenario's machines restocked for it."""
    from dealflow.scenario import LEAD, start_scenario_deal

    return start_scenario_deal(f"{LEAD['company']} #{i}", restock=20, restock_key=f"bench-{i}")


def direct(deals: int) -> list[float]:
    from dealflow.scenario import SCRIPT_WITHOUT_DEPOSIT, play_direct

    times = []
    for i in range(deals):
        number = _new_deal(1000 + i)
        t0 = time.perf_counter()
        trail = play_direct(number, SCRIPT_WITHOUT_DEPOSIT)  # a new customer: no deposit
        times.append(time.perf_counter() - t0)
        assert trail[-1]["outcome"].endswith("won"), trail[-1]
    return times


def _answer_at_once(number: str, stop: threading.Event, errors: list[BaseException]) -> None:
    from dealflow import answers
    from dealflow.scenario import SCRIPT_WITHOUT_DEPOSIT as SCRIPT  # new customers: no deposit
    from dealflow.scenario import TEAM, answer_for

    try:
        for move in SCRIPT:
            key = answers.wait_for_turn(number, move.step, stop)
            if key is None:
                return
            answers.answer(number, move.step, answer_for(number, move), login=TEAM.login(move.by))
            answers.wait_closed(number, key)
    except BaseException as exc:
        errors.append(exc)


def through_prefect(deals: int, poll_interval: int, first: int = 2000) -> list[float]:
    from flows.deal import run_here

    times = []
    for i in range(deals):
        number = _new_deal(first + i)
        stop, errors = threading.Event(), []
        people = threading.Thread(target=_answer_at_once, args=(number, stop, errors), daemon=True)
        t0 = time.perf_counter()
        people.start()
        result = run_here(number, poll_interval=poll_interval, wait_timeout=600)
        times.append(time.perf_counter() - t0)
        stop.set()
        people.join(timeout=30)
        if errors:
            raise errors[0]
        assert result["status"] == "won", result
    return times


def tryton(python: str, deals: int) -> list[float]:
    """Tryton's wall time per deal, from ``tryton_deal.py --json`` run in ``python``."""
    script = Path(__file__).resolve().parent / "tryton_deal.py"
    done = subprocess.run([python, str(script), "--deals", str(deals), "--json"], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"tryton_deal.py failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  Tryton              {result['version']}, SQLite, in {python}")
    return result["wall"]


def _line(name: str, times: list[float]) -> str:
    return (f"{name:<28} deals {len(times):>3}  mean {statistics.mean(times):7.3f} s  "
            f"median {statistics.median(times):7.3f} s  min {min(times):7.3f} s  max {max(times):7.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=5, help="complete deals per path (default 5)")
    parser.add_argument("--poll-interval", type=int, default=1, help="pause poll interval, s (default 1)")
    parser.add_argument("--database-url", help="business database (default: a temporary SQLite file)")
    parser.add_argument("--tryton-python", help="a Python with Tryton installed: run the deal in Tryton too")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="dealflow-bench-")
    url = args.database_url or f"sqlite:///{tmp}/dealflow.db"
    os.environ["DATABASE_URL"] = url
    os.environ["DEALFLOW_DATA_DIR"] = tmp
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    _prepare(url)

    from prefect.testing.utilities import prefect_test_harness

    from dealflow.prefect_api import tune_temporary_server

    api = os.environ.get("PREFECT_API_URL")
    if not api:
        tune_temporary_server()  # as `dealflow demo` and `deal start` start theirs
    print("settings:")
    print(f"  deals per path      {args.deals}")
    print(f"  business database   {url.split('@')[-1]}")
    print(f"  Prefect API         {api or 'temporary local server (SQLite), started by this script'}")
    print(f"  pause poll interval {args.poll_interval} s; mail to .eml files in {tmp}/mail")
    print(f"  machine             {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("  Prefect server      " + ("as configured" if api else
                                     "dealflow's tuning (dealflow.stack.SERVER_TUNING; DEALFLOW_SERVER_TUNING=off: "
                                     "Prefect's defaults)"))

    a = direct(args.deals)
    with (nullcontext() if api else prefect_test_harness(server_startup_timeout=60)):
        through_prefect(1, args.poll_interval, first=3000)  # warm-up: imports, first flow registration
        b = through_prefect(args.deals, args.poll_interval)
    t = tryton(args.tryton_python, args.deals) if args.tryton_python else None
    print("results (per complete deal: 12 human answers, 7 automatic steps, 10 emails):")
    print("  " + _line("(a) tasks, no Prefect", a))
    print("  " + _line("(b) deal flow on Prefect", b))
    if t:
        print("  " + _line("Tryton (no documents, mail)", t))
    print(f"  ratio (b)/(a): mean {statistics.mean(b) / statistics.mean(a):.1f}×, "
          f"median {statistics.median(b) / statistics.median(a):.1f}×")
    if t:
        print(f"  ratio (b)/Tryton: mean {statistics.mean(b) / statistics.mean(t):.2f}×, "
              f"median {statistics.median(b) / statistics.median(t):.2f}×")


if __name__ == "__main__":
    main()
