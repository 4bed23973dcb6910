"""The reminder scan over a million follow-ups (target <= 1 s) and the pipeline report over a
million opportunities (target <= 2 s), on SQLite or PostgreSQL. Prints settings and figures.

    .venv/bin/python benchmarks/scale.py --database-url sqlite:////tmp/big.db --opportunities 1000000
    .venv/bin/python benchmarks/scale.py --database-url postgresql://root@127.0.0.1:5432/bench

Generates the data first (benchmarks/generate.py) unless the database already holds that many
opportunities; the database is a scratch one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/generate.py


def _timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.database_url

    from sqlalchemy import func, select

    from models import FollowUp, Opportunity, utcnow
    from models.reminders import ReminderRules, followup_digests
    from models.waits import due_reminders
    from services import reports
    from services.db import engine_for, session_scope

    try:
        with session_scope(args.database_url) as s:
            have = s.scalar(select(func.count()).select_from(Opportunity))
    except Exception:
        have = 0
    if have != args.opportunities:
        import generate
        print(f"generating {args.opportunities:,} rows per table ...", flush=True)
        generate.load(args.database_url, args.opportunities)
    with session_scope(args.database_url) as s:
        n_opp = s.scalar(select(func.count()).select_from(Opportunity))
        n_fu = s.scalar(select(func.count()).select_from(FollowUp))
        n_open = s.scalar(select(func.count()).select_from(FollowUp).where(FollowUp.done_at.is_(None)))
    now = utcnow()
    engine = engine_for(args.database_url)

    def scan_followups():
        with session_scope(args.database_url) as s:
            return list(followup_digests(s, now))

    def scan_all():
        with session_scope(args.database_url) as s:
            return due_reminders(s, now, ReminderRules())

    def pipeline():
        with session_scope(args.database_url) as s:
            return reports.pipeline(s)

    print("settings:")
    print(f"  database            {engine.dialect.name} {args.database_url.split('@')[-1]}")
    print(f"  opportunities       {n_opp:,}; follow-ups {n_fu:,} ({n_open:,} open)")
    print(f"  repeats             {args.repeat} (figures: median, min, max; first run included)")
    print(f"  machine             {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    t_fu, digests = _timed(scan_followups, args.repeat)
    t_all, due = _timed(scan_all, args.repeat)
    t_pipe, df = _timed(pipeline, args.repeat)
    items = sum(int(d.about.split()[0]) for d in digests)
    print("results:")
    print(f"  reminder scan, follow-ups due/overdue: median {statistics.median(t_fu):.3f} s "
          f"(min {min(t_fu):.3f}, max {max(t_fu):.3f}); {items:,} follow-ups in {len(digests)} digests  [target <= 1 s]")
    print(f"  reminder scan, all six rules:          median {statistics.median(t_all):.3f} s "
          f"(min {min(t_all):.3f}, max {max(t_all):.3f}); {len(due):,} reminders due")
    print(f"  pipeline report:                       median {statistics.median(t_pipe):.3f} s "
          f"(min {min(t_pipe):.3f}, max {max(t_pipe):.3f}); {len(df)} stage x owner rows  [target <= 2 s]")


if __name__ == "__main__":
    main()
