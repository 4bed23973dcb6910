"""Real use on this machine: a Prefect server, the deployments and worker(s) (`dealflow up`),
deals whose waits suspend, every answer given as soon as its wait opens.

    .venv/bin/python benchmarks/real_use.py --deals 5 --executors 1
    .venv/bin/python benchmarks/real_use.py --deals 5 --executors 2
    .venv/bin/python benchmarks/real_use.py --parked 100

Prints (a) answer -> next stage running: from `dealflow answer`'s resume to the deal's next wait
opened (the wait's `opened_at`; or the deal's `closed_at` after the last answer), p50 and p95; (b) complete deals per hour; (c) with --parked N, N deals
started and left waiting: flow processes held, and the server's memory before and after.
The Prefect server runs on SQLite here unless PREFECT_SERVER_DATABASE_CONNECTION_URL is set.

On Prefect's scaled topology (`dealflow up --api-replicas N --redis URL`; Prefect on PostgreSQL):

    PG=postgresql+asyncpg://root@127.0.0.1:5432/prefect_bench   # a fresh, empty database each run
    PREFECT_SERVER_DATABASE_CONNECTION_URL=$PG .venv/bin/python benchmarks/real_use.py --deals 20 \
        --api-replicas 2 --redis auto --database-url postgresql://root@127.0.0.1:5432/business_bench

(--redis auto: a redis-server of its own on a free port, no persistence.) Then each piece's CPU
seconds per deal are printed apart (each API replica, the services process, the executors, the
gateway with the machines' door, the worker, Redis, PostgreSQL, the answering script), the HTTP
requests the replicas answered per deal (from their access log: the benchmark runs them at
PREFECT_SERVER_LOGGING_LEVEL=INFO) and each database's transactions and rows written per deal
(PostgreSQL's pg_stat_database).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
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
            if int(_stat(stat.parent.name)[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state, ppid, ..., utime at [11])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _ticks(fields: list[str], children: bool = False) -> int:
    """utime + stime (and, for reaped children, cutime + cstime) in clock ticks."""
    return int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            total += _ticks(_stat(p))
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s() -> float:
    """CPU seconds of the local PostgreSQL: its live processes plus the ended ones it has reaped."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if "(postgres)" not in stat.read_text():
                continue
            fields = _stat(stat.parent.name)
            postmaster = "(postgres)" not in Path(f"/proc/{fields[1]}/stat").read_text()
            total += _ticks(fields, children=postmaster)
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def _pg_writes(names: list[str]) -> dict[str, dict[str, int]]:
    """Per database: transactions committed and rows inserted, updated and deleted so far."""
    from sqlalchemy import create_engine, text

    engine = create_engine("postgresql+psycopg://root@127.0.0.1:5432/postgres")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT datname, xact_commit, tup_inserted, tup_updated, tup_deleted "
                                 "FROM pg_stat_database WHERE datname = ANY(:n)"), {"n": names}).all()
    engine.dispose()
    return {r[0]: {"transactions": r[1], "rows written": r[2] + r[3] + r[4]} for r in rows}


def _requests(logs: Path) -> dict[str, int]:
    """HTTP requests each API replica logged (uvicorn's access log, one line per request)."""
    import re

    line = re.compile(r'"(GET|POST|PATCH|PUT|DELETE) /api/')
    return {f.stem: sum(1 for ln in f.read_text(errors="replace").splitlines() if line.search(ln))
            for f in sorted(logs.glob("server*.log"))}


def _redis(url: str) -> tuple[str, subprocess.Popen | None]:
    if url != "auto":
        return url, None
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return f"redis://127.0.0.1:{port}/0", proc


def _sample_memory(pids: dict[str, int], every: float) -> tuple[dict[str, list[tuple[float, float]]],
                                                                   threading.Event]:
    """Each process's RSS (with its children), as (seconds since the start, MB), now and every
    ``every`` seconds until the event is set, and once more then."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
    done, t0 = threading.Event(), time.monotonic()

    def sample() -> None:
        while True:
            last = done.wait(every) if samples[next(iter(pids))] else False
            for name, pid in pids.items():
                samples[name].append((time.monotonic() - t0, _rss_mb(pid)))
            if last:
                return

    threading.Thread(target=sample, daemon=True).start()
    return samples, done


def _print_memory(samples: dict[str, list[tuple[float, float]]], every: float, wall: float) -> None:
    """Per Prefect server process: its memory at the start, after the first tenth of the run (warmed
    up), at the end and at most, and the slope from the first tenth on (a leak shows as MB/hour)."""
    for name, series in samples.items():
        if len(series) < 3:
            continue
        warm = max(1, len(series) // 10)
        (t_warm, mb_warm), (t_end, mb_end) = series[warm], series[-1]
        print(f"  memory of {name} (RSS, every {every:.0f} s over {wall / 60:.0f} min): start {series[0][1]:.0f} MB, "
              f"warm {mb_warm:.0f}, end {mb_end:.0f}, max {max(mb for _, mb in series):.0f}; from warm to end "
              f"{(mb_end - mb_warm) * 3600 / max(t_end - t_warm, 1):+.0f} MB/hour")


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
    parser.add_argument("--deals", type=int, default=5, help="complete deals, every answer given as soon as asked")
    parser.add_argument("--at-once", type=int, default=0,
                        help="how many of them move at the same time (default: all); 1 measures latency alone")
    parser.add_argument("--database-url", default="", help="business database (default: SQLite in a temp dir)")
    parser.add_argument("--executors", "--workers", dest="executors", type=int, default=1,
                        help="deal executors (dealflow executor) started by `dealflow up`")
    parser.add_argument("--parked", type=int, default=0, help="deals started and left at their first wait")
    parser.add_argument("--port", type=int, default=4277)
    parser.add_argument("--api-replicas", type=int, default=1, help="Prefect API replicas (scaled topology)")
    parser.add_argument("--redis", default="", help="Redis URL for the scaled topology, or 'auto' (one of its own)")
    parser.add_argument("--memory-every", type=float, default=60,
                        help="seconds between samples of the Prefect servers' memory while deals move")
    args = parser.parse_args()
    scaled = args.api_replicas > 1 or bool(args.redis)
    redis_proc = None
    if scaled:
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "INFO")  # the replicas' access log: requests
        args.redis, redis_proc = _redis(args.redis or "auto")

    data = tempfile.mkdtemp(prefix="dealflow-real-")
    api = f"http://127.0.0.1:{args.port}/api"
    os.environ.update({"DEALFLOW_DATA_DIR": data, "DATABASE_URL": args.database_url or f"sqlite:///{data}/dealflow.db",
                       "PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING"})
    # the API `up` starts takes its credential only; Prefect reads it once, when it is imported
    from dealflow.api_credential import ensure_credential

    os.environ["PREFECT_API_AUTH_STRING"] = ensure_credential(Path(data))[0]

    from dealflow import answers, stack
    from dealflow.scenario import SCRIPT_WITHOUT_DEPOSIT as SCRIPT  # new customers: no deposit
    from dealflow.scenario import TEAM, answer_for, start_scenario_deal
    from models import seed
    from models.deal import deal_by_number
    from services import keys
    from services.db import migrate, session_scope

    migrate()
    with session_scope() as s:
        keys.ensure_key_file()  # the staff are enrolled: each answer is signed in its person's session
        seed.load(s, keys.cipher())
        s.commit()
    info = stack.up(port=args.port, executors=args.executors, say=lambda *_: None,
                    **({"api_replicas": args.api_replicas, "redis": args.redis} if scaled else {}))
    try:
        from prefect.deployments import run_deployment

        def new_deal(i: int) -> str:
            number = start_scenario_deal(f"Bench {i}", restock=10, restock_key=f"bench-{i}")  # its largest line: 10
            run_deployment("deal/deal", parameters={"deal_number": number}, timeout=0)
            return number

        def wait_open(number: str, step: str | None, timeout: float = 300, after: str = "") -> tuple[str, float]:
            """Until the deal waits at ``step`` under a key other than ``after`` (the one just answered);
            returns the key and when it opened (the wait's own timestamp: the poll can be slow)."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with session_scope() as s:
                    deal = deal_by_number(s, number)
                    w = deal.open_wait
                    if step is None and deal.status != "open":
                        return deal.status, deal.closed_at.replace(tzinfo=UTC).timestamp()
                    if w is not None and w.step == step and w.flow_run_id and w.key != after:
                        return w.key, w.opened_at.replace(tzinfo=UTC).timestamp()
                time.sleep(0.25)
            raise TimeoutError(f"{number} never reached {step}")

        latencies: list[float] = []
        lock = threading.Lock()

        def person(i: int) -> None:
            number = new_deal(i)
            key, _ = wait_open(number, SCRIPT[0].step)
            for i, move in enumerate(SCRIPT):
                answers.answer(number, key, answer_for(number, move), settle_timeout=120,
                               login=TEAM.login(move.by))
                t0 = time.time()  # the run is resumed
                nxt = SCRIPT[i + 1].step if i + 1 < len(SCRIPT) else None
                key, t1 = wait_open(number, nxt, after=key)
                with lock:
                    latencies.append(t1 - t0)

        pids = {"server": int(info["server_pid"]),
                **{f"executor-{i + 1}": int(p) for i, p in enumerate(info["executor_pids"])}}
        if scaled:
            pids = {**{f"API replica {i + 1}": int(p) for i, p in enumerate(info["replica_pids"])},
                    "services": int(info["services_pid"]),
                    **{f"executor-{i + 1}": int(p) for i, p in enumerate(info["executor_pids"])},
                    "gateway (+ machines' door)": int(info["gateway_pid"]), "worker": int(info["worker_pid"]),
                    **({"redis": redis_proc.pid} if redis_proc else {})}
        databases = [u.rsplit("/", 1)[-1].split("?")[0] for u in (
            os.environ["DATABASE_URL"], os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL", ""))
            if u.startswith("postgresql")]
        logs = Path(str(info["logs"]))

        def cpu() -> dict[str, float]:
            return {**{name: _cpu_s(pid) for name, pid in pids.items()}, "postgresql": _postgres_cpu_s(),
                    "answering (this script)": time.process_time()}

        if args.deals:
            writes_before = _pg_writes(databases) if databases else {}
            requests_before = _requests(logs)
            cpu_before = cpu()
            t_start = time.monotonic()
            at_once = args.at_once or args.deals
            servers = {k: v for k, v in pids.items() if k == "server" or k.startswith(("API replica", "services"))}
            memory, done = _sample_memory(servers, args.memory_every)
            with ThreadPoolExecutor(max_workers=at_once) as people:
                list(people.map(person, range(args.deals)))
            wall = time.monotonic() - t_start
            done.set()
            cpu_used = {k: v - cpu_before[k] for k, v in cpu().items()}
            lat = sorted(latencies)
            p95 = lat[max(0, int(round(0.95 * len(lat))) - 1)]
            print("settings:")
            from weasyprint.text.ffi import harfbuzz_subset

            print(f"  {args.deals} deals, {at_once} at a time, {len(SCRIPT)} answers each; executors {args.executors} "
                  f"(dealflow executor: 8 slots, poll 0.25 s); Prefect server on "
                  f"{os.environ.get('PREFECT_SERVER_DATABASE_CONNECTION_URL', 'SQLite').split('@')[-1]}; "
                  f"business database {os.environ['DATABASE_URL'].split('@')[-1].split('://')[0]}; "
                  f"PDF font subsetting by {'HarfBuzz' if harfbuzz_subset else 'fontTools'}; {os.cpu_count()} cores")
            print("results:")
            print(f"  (a) answer -> next stage running: {len(lat)} answers, p50 {statistics.median(lat):.2f} s, "
                  f"p95 {p95:.2f} s, max {lat[-1]:.2f} s   [target p95 <= 2 s]")
            print(f"  (b) {args.deals} complete deals in {wall:.0f} s: {3600 * args.deals / wall:.0f} deals/hour "
                  f"with {args.executors} executor(s)   [target >= 600]")
            print(f"  CPU seconds per complete deal ({os.cpu_count()} cores give {os.cpu_count() * wall / args.deals:.0f} "
                  f"per deal at this rate): " + ", ".join(f"{k} {v / args.deals:.2f}" for k, v in cpu_used.items()))
            if scaled:
                print(f"  topology: {args.api_replicas} API replica(s), services apart, Redis "
                      f"{'of its own' if redis_proc else 'given'}, {args.executors} executor(s), the gateway")
            requests = {k: v - requests_before.get(k, 0) for k, v in _requests(logs).items()}
            if any(requests.values()):
                print("  HTTP requests per deal answered by each API replica: " + ", ".join(
                    f"{k} {v / args.deals:.0f}" for k, v in requests.items())
                    + f" (total {sum(requests.values()) / args.deals:.0f})")
            _print_memory(memory, args.memory_every, wall)
            if databases:
                after = _pg_writes(databases)
                for db in databases:
                    b, a = writes_before.get(db, {}), after.get(db, {})
                    print(f"  database {db}: per deal " + ", ".join(
                        f"{k} {(a[k] - b.get(k, 0)) / args.deals:.0f}" for k in a))
        if args.parked:
            server_pid = int(info["server_pid"])
            before = _rss_mb(server_pid)
            t0 = time.monotonic()
            numbers = [new_deal(1000 + i) for i in range(args.parked)]  # one after the other
            created_in = time.monotonic() - t0
            for n in numbers:
                wait_open(n, "qualify", timeout=3600)
            parked_in = time.monotonic() - t0
            time.sleep(5)
            import json

            in_hand = sum(len(json.loads(f.read_text())["active_runs"]) for f in Path(data, "run").glob("executor-*.json"))
            executors_mb = sum(_rss_mb(int(p)) for p in info["executor_pids"])
            print(f"  (c) {args.parked} deals created and started in {created_in:.0f} s, all parked at 'qualify' "
                  f"{parked_in:.0f} s after the first: flow processes held "
                  f"{_flow_processes()}, runs in an executor's hands {in_hand}; server memory {before:.0f} MB "
                  f"before, {_rss_mb(server_pid):.0f} MB after; executor(s) {executors_mb:.0f} MB   "
                  f"[target 0 processes]")
    finally:
        stack.down(say=lambda *_: None)
        if redis_proc:
            redis_proc.terminate()


if __name__ == "__main__":
    main()
