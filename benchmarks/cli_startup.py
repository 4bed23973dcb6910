"""How much CPU each `dealflow` command costs from the process's start to its end, measured as a
user runs it: a new process each time, on a fresh `dealflow init` with one finished deal and one
open one, no Prefect server (PREFECT_API_URL unset). Prints min and median over --runs.

    .venv/bin/python benchmarks/cli_startup.py --runs 7

CPU time (user + system, of the command's process and its children) is what the targets are set
in; wall time is printed too. A loaded machine moves wall time far more than CPU time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEALFLOW = str(Path(sys.executable).parent / "dealflow")


def _prepare(data_dir: str) -> tuple[str, str]:
    """init, then a finished deal (the stage tasks called directly) and one waiting at its first step."""
    subprocess.run([DEALFLOW, "init", "--demo-data"], check=True, capture_output=True)
    from dealflow.scenario import play_direct, start_scenario_deal

    finished = start_scenario_deal("Riverside Metalworks Ltd")
    play_direct(finished)
    waiting = start_scenario_deal("Harbour Tools GmbH")
    return finished, waiting


def _measure(argv: list[str], runs: int) -> tuple[list[float], list[float]]:
    cpu, wall = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen([DEALFLOW, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall.append(time.perf_counter() - t0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"dealflow {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.read().decode()}")
        cpu.append(usage.ru_utime + usage.ru_stime)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (default 7)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="dealflow-cli-")
    os.environ["DEALFLOW_DATA_DIR"] = tmp
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("PREFECT_API_URL", None)
    finished, waiting = _prepare(tmp)
    commands = [
        ["--help"],
        ["stock"],
        ["inbox"],
        ["deal", "show", finished],
        ["deal", "show", waiting],
        ["product", "list"],
        ["customer", "list"],
        ["report", "pipeline"],
    ]
    load = os.getloadavg()[0]
    print("settings:")
    print(f"  runs per command  {args.runs} (a new process each)")
    print(f"  data              {tmp} (SQLite; one finished deal, one open); no PREFECT_API_URL")
    print(f"  machine           {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load:.1f}")
    print(f"{'command':<34}{'CPU min':>9}{'CPU median':>12}{'wall median':>13}")
    for argv in commands:
        cpu, wall = _measure(argv, args.runs)
        shown = " ".join("DEAL" if a in (finished, waiting) else a for a in argv if "/" not in a)
        shown += " (finished)" if finished in argv else " (waiting)" if waiting in argv else ""
        print(f"dealflow {shown:<25}{min(cpu):>8.3f}s{statistics.median(cpu):>11.3f}s"
              f"{statistics.median(wall):>12.3f}s")


if __name__ == "__main__":
    main()
