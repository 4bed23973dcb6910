"""Real use on this machine: a Prefect server, the deployments and worker(s) (`dealflow up`),
deals whose waits suspend, every answer given as soon as its wait opens.

    .venv/bin/python benchmarks/real_use.py --deals 5 --workers 1
    .venv/bin/python benchmarks/real_use.py --deals 5 --workers 2
    .venv/bin/python benchmarks/real_use.py --parked 100

Prints (a) answer -> next stage running: from `dealflow answer`'s resume to the deal's next wait
opened (or the deal won), p50 and p95; (b) complete deals per hour; (c) with --parked N, N deals
started and left waiting: flow processes held, and the server's memory before and after.
The Prefect server runs on SQLite here unless PREFECT_SERVER_DATABASE_CONNECTION_URL is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _rss_mb(pid: int) -> float:
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _flow_processes() -> int:
    n = 0
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if b"PREFECT__FLOW_RUN_ID=" in environ.read_bytes():
                n += 1
        except OSError:
            continue
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=5, help="complete deals, answered at once")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--parked", type=int, default=0, help="deals started and left at their first wait")
    parser.add_argument("--port", type=int, default=4277)
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="dealflow-real-")
    api = f"http://127.0.0.1:{args.port}/api"
    os.environ.update({"DEALFLOW_DATA_DIR": data, "DATABASE_URL": f"sqlite:///{data}/dealflow.db",
                       "PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING"})

    from dealflow import answers, stack
    from dealflow.scenario import SCRIPT, answer_for, start_scenario_deal
    from models import seed
    from models.deal import deal_by_number
    from services.db import migrate, session_scope

    migrate()
    with session_scope() as s:
        seed.load(s)
        s.commit()
    info = stack.up(port=args.port, workers=args.workers, say=lambda *_: None)
    try:
        from prefect.deployments import run_deployment

        def new_deal(i: int) -> str:
            number = start_scenario_deal(f"Bench {i}", restock=5, restock_key=f"bench-{i}")
            run_deployment("deal/deal", parameters={"deal_number": number}, timeout=0)
            return number

        def wait_open(number: str, step: str | None, timeout: float = 300, after: str = "") -> tuple[str, float]:
            """Until the deal waits at ``step`` under a key other than ``after`` (the one just answered)."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with session_scope() as s:
                    deal = deal_by_number(s, number)
                    w = deal.open_wait
                    if step is None and deal.status != "open":
                        return deal.status, time.monotonic()
                    if w is not None and w.step == step and w.flow_run_id and w.key != after:
                        return w.key, time.monotonic()
                time.sleep(0.05)
            raise TimeoutError(f"{number} never reached {step}")

        latencies: list[float] = []
        lock = threading.Lock()

        def person(number: str) -> None:
            key, _ = wait_open(number, SCRIPT[0].step)
            for i, move in enumerate(SCRIPT):
                answers.answer(number, key, answer_for(number, move), settle_timeout=120)
                t0 = time.monotonic()
                nxt = SCRIPT[i + 1].step if i + 1 < len(SCRIPT) else None
                key, t1 = wait_open(number, nxt, after=key)
                with lock:
                    latencies.append(t1 - t0)

        if args.deals:
            t_start = time.monotonic()
            numbers = [new_deal(i) for i in range(args.deals)]
            threads = [threading.Thread(target=person, args=(n,)) for n in numbers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - t_start
            lat = sorted(latencies)
            p95 = lat[max(0, int(round(0.95 * len(lat))) - 1)]
            print("settings:")
            print(f"  deals {args.deals} at once, {len(SCRIPT)} answers each; workers {args.workers} "
                  f"(process pool, PREFECT_WORKER_QUERY_SECONDS=2); Prefect server on "
                  f"{os.environ.get('PREFECT_SERVER_DATABASE_CONNECTION_URL', 'SQLite').split('@')[-1]}; "
                  f"business database SQLite; {os.cpu_count()} cores")
            print("results:")
            print(f"  (a) answer -> next stage running: {len(lat)} answers, p50 {statistics.median(lat):.2f} s, "
                  f"p95 {p95:.2f} s, max {lat[-1]:.2f} s   [target p95 <= 2 s]")
            print(f"  (b) {args.deals} complete deals in {wall:.0f} s: {3600 * args.deals / wall:.0f} deals/hour "
                  f"with {args.workers} worker(s)   [target >= 600]")
        if args.parked:
            server_pid = int(info["server_pid"])
            before = _rss_mb(server_pid)
            numbers = [new_deal(1000 + i) for i in range(args.parked)]
            t0 = time.monotonic()
            for n in numbers:
                wait_open(n, "qualify", timeout=3600)
            parked_in = time.monotonic() - t0
            time.sleep(5)
            print(f"  (c) {args.parked} deals parked at 'qualify' in {parked_in:.0f} s: flow processes held "
                  f"{_flow_processes()}; server memory {before:.0f} MB before, {_rss_mb(server_pid):.0f} MB after "
                  f"[target 0 processes]")
    finally:
        stack.down(say=lambda *_: None)


if __name__ == "__main__":
    main()
