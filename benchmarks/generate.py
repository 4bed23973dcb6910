"""Synthetic data at scale for the benchmarks: N leads, each with its deal, opportunity and
follow-up, with realistic spreads (stages, amounts, owners, dates, how many follow-ups are done).

    .venv/bin/python benchmarks/generate.py --opportunities 1000000 --database-url sqlite:////tmp/big.db
    .venv/bin/python benchmarks/generate.py --opportunities 1000000 --database-url postgresql://root@127.0.0.1:5432/bench

With --history, five years of deals instead (`benchmarks/history.py`: template deals played
through the domain, then copied with new ids, numbers, people and dates):

    .venv/bin/python benchmarks/generate.py --history --finished 100000 --open 5000 \\
        --database-url postgresql://root@127.0.0.1:5432/history

The database's dealflow tables are dropped and created anew: use a scratch database.
PostgreSQL is loaded with COPY, SQLite with batched inserts.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STAGE_SPREAD = {"prospecting": 0.15, "qualification": 0.20, "needs_analysis": 0.15, "proposal": 0.12,
                "negotiation": 0.08, "closed_won": 0.15, "closed_lost": 0.15}
REPS = 40
CHUNK = 100_000


def _prepare(url: str) -> None:
    from sqlalchemy import text

    from models import seed
    from models.staff import StaffUser
    from services.db import engine_for, migrate, session_scope

    engine = engine_for(url)
    if url.startswith("postgresql"):
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    else:
        path = Path(url.split("///", 1)[1])
        engine.dispose()
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
    migrate(url)
    with session_scope(url) as s:
        seed.load(s)
        for i in range(REPS):
            s.add(StaffUser(handle=f"rep{i:02d}", name=f"Rep {i:02d}", email=f"rep{i:02d}@glocial.example",
                            roles="sales_rep"))
        s.commit()


def _columns(n: int, start: int, rng: np.random.Generator, now: datetime, rep_ids: list[int]) -> dict:
    ids = np.arange(start + 1, start + n + 1)
    stages = rng.choice(list(STAGE_SPREAD), size=n, p=list(STAGE_SPREAD.values()))
    from models.crm import STAGES
    prob = np.array([STAGES[s] for s in stages])
    amount = np.round(rng.lognormal(mean=11.2, sigma=0.7, size=n), 2)  # median ~73,000
    owner = rng.choice(rep_ids, size=n)
    now64 = np.datetime64(now, "s")
    created = now64 - pd_days(rng.integers(0, 720, size=n)) - pd_seconds(rng.integers(0, 86400, size=n))
    due = created + pd_days(rng.integers(1, 45, size=n))
    due_ts = due.astype("datetime64[us]").astype(datetime)
    done = (due < np.datetime64(now - timedelta(days=2), "s")) & (rng.random(n) < 0.97)
    status = np.where(stages == "closed_won", "won", np.where(stages == "closed_lost", "lost", "open"))
    return {"ids": ids, "stages": stages, "prob": prob, "amount": amount, "owner": owner,
            "created": created.astype("datetime64[us]").astype(datetime), "due": due_ts, "done": done,
            "status": status}


def pd_days(a):
    return a.astype("timedelta64[D]")


def pd_seconds(a):
    return a.astype("timedelta64[s]")


def _rows(c: dict, now: datetime):
    kinds = ("call", "email", "meeting", "demo", "site_visit")
    for k in range(len(c["ids"])):
        i = int(c["ids"][k])
        created, owner = c["created"][k], int(c["owner"][k])
        yield {
            "leads": (i, f"Company {i}", f"Contact {i}", f"c{i}@example.com", "", "", "web",
                      "converted", "", "", None, "", owner, None, created, created),
            "opportunities": (i, i, 1, f"Company {i}: machinery", str(c["stages"][k]), int(c["prob"][k]),
                              float(c["amount"][k]), None, owner, None, created),
            "deals": (i, f"DEAL-{i:07d}", i, 1, i, owner, "USD", str(c["status"][k]), "", None, created,
                      None if c["status"][k] == "open" else created),
            "followups": (i, i, kinds[i % 5], c["due"][k], owner, "", "done" if c["done"][k] else "",
                          c["due"][k] if c["done"][k] else None, created),
        }


COLS = {
    "leads": "id, company, contact_name, email, phone, address, source, status, notes, qualification_notes, "
             "budget, timeline, owner_id, customer_id, created_at, qualified_at",
    "opportunities": "id, lead_id, customer_id, name, stage, probability, expected_amount, expected_close, "
                     "owner_id, engineer_id, created_at",
    "deals": "id, number, lead_id, customer_id, opportunity_id, owner_id, currency, status, lost_reason, "
             "flow_run_id, created_at, closed_at",
    "followups": "id, opportunity_id, kind, due_at, owner_id, notes, outcome, done_at, created_at",
}


def load(url: str, n: int, seed: int = 7) -> float:
    from sqlalchemy import insert, select, text

    from models import Base, Customer, StaffUser
    from services.db import engine_for, session_scope

    _prepare(url)
    now = datetime.utcnow().replace(microsecond=0)
    with session_scope(url) as s:
        s.add(Customer(id=1, name="Synthetic customers", email="synthetic@example.com"))
        s.commit()
        rep_ids = list(s.scalars(select(StaffUser.id).where(StaffUser.handle.like("rep%"))))
    rng = np.random.default_rng(seed)
    engine = engine_for(url)
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        rows = list(_rows(_columns(size, start, rng, now, rep_ids), now))
        if url.startswith("postgresql"):
            raw = engine.raw_connection()
            try:
                with raw.cursor() as cur:
                    for table in ("leads", "opportunities", "deals", "followups"):
                        with cur.copy(f"COPY {table} ({COLS[table]}) FROM STDIN") as copy:
                            for r in rows:
                                copy.write_row(r[table])
                raw.commit()
            finally:
                raw.close()
        else:
            with engine.begin() as conn:
                for table in ("leads", "opportunities", "deals", "followups"):
                    t = Base.metadata.tables[table]
                    names = [c.strip() for c in COLS[table].split(",")]
                    conn.execute(insert(t), [dict(zip(names, r[table], strict=True)) for r in rows])
        print(f"  {start + size:>9,} rows per table", flush=True)
    with engine.begin() as conn:
        conn.execute(text("UPDATE document_sequences SET last_value = :n WHERE doc_type = 'deal'"), {"n": n})
        if url.startswith("postgresql"):
            for table in ("leads", "opportunities", "deals", "followups"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n})"))
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--history", action="store_true",
                        help="five years of complete and open deals (benchmarks/history.py)")
    parser.add_argument("--finished", type=int, default=100_000, help="with --history: complete deals")
    parser.add_argument("--open", type=int, default=5_000, help="with --history: open deals")
    parser.add_argument("--templates", type=int, default=20,
                        help="with --history: complete deals played through the domain to copy (default 20)")
    args = parser.parse_args()
    if args.history:
        _history(args)
        return
    print(f"generating {args.opportunities:,} leads, deals, opportunities and follow-ups into "
          f"{args.database_url.split('@')[-1]}")
    seconds = load(args.database_url, args.opportunities)
    print(f"done in {seconds:.1f} s")


def _history(args) -> None:
    import os
    import tempfile

    from benchmarks import history

    tmp = tempfile.mkdtemp(prefix="dealflow-history-")
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DEALFLOW_DATA_DIR", tmp)
    print(f"generating {args.finished:,} complete and {args.open:,} open deals into "
          f"{args.database_url.split('@')[-1]} (templates' mail and keys in {os.environ['DEALFLOW_DATA_DIR']})")
    out = history.build(args.database_url, args.finished, args.open, templates_finished=args.templates)
    print(f"done in {out['seconds']:.0f} s (copying {out['copy_seconds']:.0f} s)")
    print(f"  deals by status: {out['status']}")
    print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in out["counts"].items()))


if __name__ == "__main__":
    main()
