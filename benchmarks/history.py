"""Five years of deals for the history benchmarks: finished and open deals made by the domain's
own code paths, then copied many times over with new ids, numbers, people and dates.

    .venv/bin/python benchmarks/generate.py --history --finished 100000 --open 5000 \\
        --database-url postgresql://root@127.0.0.1:5432/history

How (and why so): a complete deal through the domain takes ~1.7 s here (its 9 PDFs, 10 emails),
so 100,000 of them would take two days. Instead a few dozen **template deals** are played through
`dealflow.scenario.play_direct` (the one driver the flow uses, without Prefect: the same rules,
transactions, numbers, audit log, stock moves, serials, outbox and documents' contexts): complete
ones, and open ones stopped at each of the deal's waits in turn. Their rows are then copied,
table by table, in the database's own dependency order, each copy (a *slot*) with

- every id moved past the last copy's (foreign keys with it; rows the seed made, such as the
  products and the staff, are shared, not copied);
- every document number in every text and JSON value renumbered in its own series: a copy takes
  the next numbers of each series, in the templates' order, so numbers stay unique, each series
  has no gaps and grows with time; the sequences are set to the last one;
- every date and time moved back: complete deals spread evenly over five years (the oldest
  first), open ones over the last 60 days; ISO dates inside texts and JSON moved with them;
- the rep and the engineer replaced by one of a pool of reps and engineers (`rep001`…, `eng001`…;
  their ids and, where the templates wrote a handle as text, their handles), so each person's
  share is a real team member's, not everyone's; QA, delivery and finance are teams and keep
  their queue whole;
- the keys that make a side effect happen once (`stock_moves.source_key`, `emails.dedupe_key`,
  `customer_answers.nonce`) and serial numbers suffixed with the slot, as they must stay unique.

Documents are stored as their context (rendered on demand), so the copies are references, and
the stock levels are recomputed from the copied ledger (the first template deal receives enough
of every product for all the templates, and that receipt is copied with each copy of the
complete deals, so the ledger adds up to consistent levels).
"""

from __future__ import annotations

import json
import random
import re
import time
from datetime import date, datetime, timedelta
from typing import Any

# Seeded by `dealflow init`, shared by every copy (not copied).
SHARED = {"company", "document_sequences", "exchange_rates", "failed_attempts", "products",
          "product_prices", "staff_users", "staff_sessions", "answer_seals", "answer_failures",
          "stock_levels"}
UNIQUE_KEYS = {("stock_moves", "source_key"), ("emails", "dedupe_key"), ("customer_answers", "nonce"),
               ("serials", "serial"), ("emails", "message_id")}
DATE_IN_TEXT = re.compile(r"\b(20\d\d)-(\d\d)-(\d\d)")
YEARS = 5


def _numbers_pattern() -> re.Pattern[str]:
    from models.numbering import PREFIXES

    return re.compile(r"\b(" + "|".join(sorted(PREFIXES.values(), key=len, reverse=True)) + r")-(\d{4,})\b")


def play_templates(finished: int, open_per_wait: int, log=print) -> dict[str, list[str]]:
    """Template deals in the current DATABASE_URL: ``finished`` complete ones, and for each wait
    of the deal ``open_per_wait`` stopped there (open, unanswered)."""
    from application import deals
    from dealflow.scenario import LEAD, SCRIPT_WITHOUT_DEPOSIT, play_direct, start_scenario_deal

    made: dict[str, list[str]] = {"finished": [], "open": []}
    t0 = time.perf_counter()
    keys: list[str] = []
    for i in range(finished):
        # one receipt of every product, before the first deal, for all the templates
        restock = 10 * (finished + open_per_wait * 12) if i == 0 else 0
        number = start_scenario_deal(f"{LEAD['company']} {i + 1}", restock=restock, restock_key="history")
        trail = play_direct(number, SCRIPT_WITHOUT_DEPOSIT)
        assert trail[-1]["outcome"].endswith("won"), trail[-1]
        made["finished"].append(number)
        if not keys:
            keys = [w["key"] for w in deals.waits_of(number)]
    log(f"  {finished} complete template deals in {time.perf_counter() - t0:.0f} s; their waits: "
        f"{', '.join(keys)}")
    t0 = time.perf_counter()
    for key in keys:
        for j in range(open_per_wait):
            number = start_scenario_deal(f"{LEAD['company']} open {key} {j + 1}")
            play_direct(number, SCRIPT_WITHOUT_DEPOSIT, until=key)
            made["open"].append(number)
    log(f"  {len(made['open'])} open template deals in {time.perf_counter() - t0:.0f} s")
    return made


class Rows:
    """Every row of the copied tables, read once from the templates' database, split into the
    complete deals' rows and the open deals' rows (by the deal each row belongs to)."""

    def __init__(self, url: str, base: dict[str, int], made: dict[str, list[str]]) -> None:
        from sqlalchemy import select

        from models import Base
        from services.db import engine_for

        self.tables = [t for t in Base.metadata.sorted_tables if t.name not in SHARED]
        self.base = base
        engine = engine_for(url)
        self.rows: dict[str, list[dict[str, Any]]] = {}
        with engine.connect() as conn:
            for t in self.tables:
                assert "id" in t.c, t.name
                self.rows[t.name] = [dict(r._mapping) for r in conn.execute(
                    select(t).where(t.c.id > base.get(t.name, 0)).order_by(t.c.id))]
            seqs = dict(conn.execute(select(Base.metadata.tables["document_sequences"])).all())
        self.sequences = seqs
        self.span = {t.name: max((r["id"] for r in self.rows[t.name]), default=base.get(t.name, 0))
                     - base.get(t.name, 0) for t in self.tables}
        deal_ids = {r["number"]: r["id"] for r in self.rows["deals"]}
        self.open_deals = {deal_ids[n] for n in made["open"]}

    def owner_deal(self, table, row: dict[str, Any], cache: dict) -> int | None:
        """The deal a row belongs to, following its foreign keys (None: no deal, e.g. a restock)."""
        if table.name == "deals":
            return row["id"]
        if "deal_id" in table.c and row.get("deal_id") is not None:
            return row["deal_id"]
        for col in table.c:
            for fk in col.foreign_keys:
                parent = fk.column.table
                if parent.name in SHARED or row.get(col.name) is None:
                    continue
                found = cache.get((parent.name, row[col.name]))
                if found is not None:
                    return found
        return None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:40]


def build(url: str, finished: int, open_: int, templates_finished: int = 20, open_per_wait: int = 2,
          reps: int = 100, engineers: int = 40, seed: int = 7, log=print) -> dict[str, Any]:
    """Templates, then copies until ``finished`` complete and ``open_`` open deals exist."""
    from sqlalchemy import func, select, text

    from benchmarks.lifecycle import _prepare  # the database made anew, seeded, the staff enrolled
    from models import Base, StaffUser
    from models.numbering import PREFIXES
    from services.db import engine_for, session_scope

    rng = random.Random(seed)
    _prepare(url)
    engine = engine_for(url)
    with engine.connect() as conn:
        base = {t.name: conn.execute(select(func.coalesce(func.max(t.c.id), 0))).scalar_one()
                for t in Base.metadata.sorted_tables if t.name not in SHARED and "id" in t.c}
    t_start = time.perf_counter()
    made = play_templates(templates_finished, open_per_wait, log)
    rows = Rows(url, base, made)
    per_deal = sum(len(v) for v in rows.rows.values()) / (len(made["finished"]) + len(made["open"]))
    log(f"  template rows: {sum(len(v) for v in rows.rows.values()):,} in {len(rows.tables)} tables "
        f"(~{per_deal:.0f} per deal)")

    # Split every row into the complete deals' set and the open deals' set.
    cache: dict[tuple[str, int], int] = {}
    sets: dict[str, dict[str, list[dict[str, Any]]]] = {"finished": {}, "open": {}}
    # deals first, then parents before children; a row's deal is found through its parents
    by_name = {t.name: t for t in rows.tables}
    order = ["deals"] + [t.name for t in rows.tables if t.name != "deals"]
    for name in order:
        table = by_name[name]
        for r in rows.rows[name]:
            deal = rows.owner_deal(table, r, cache)
            cache[(name, r["id"])] = deal
    # leads, opportunities and customers are the deals' parents: find them from the deals
    for d in rows.rows["deals"]:
        for col, parent in (("lead_id", "leads"), ("opportunity_id", "opportunities"), ("customer_id", "customers")):
            cache[(parent, d[col])] = d["id"]
    for name in order:  # children of those (contacts, follow-ups, stage changes) again
        table = by_name[name]
        for r in rows.rows[name]:
            if cache.get((name, r["id"])) is None:
                cache[(name, r["id"])] = rows.owner_deal(table, r, cache)
    # rows with no foreign key to a deal (stock moves) belong to the deal whose document they name
    numbers = _numbers_pattern()
    by_number = {r["number"]: cache[(t.name, r["id"])] for t in rows.tables if "number" in t.c
                 for r in rows.rows[t.name] if r["number"] and cache[(t.name, r["id"])] is not None}
    unowned = {}
    for t in rows.tables:
        for r in rows.rows[t.name]:
            deal = cache[(t.name, r["id"])]
            if deal is None:
                named = [by_number[m[0]] for v in r.values() if isinstance(v, str)
                         for m in numbers.finditer(v) if m[0] in by_number]
                deal = named[0] if named else None
            part = "open" if deal in rows.open_deals else "finished"
            if deal is None:  # restocks of the templates: with the complete deals' copies
                unowned[t.name] = unowned.get(t.name, 0) + 1
                part = "finished"
            sets[part].setdefault(t.name, []).append(r)
    log(f"  rows of no deal (the templates' restocks), copied with the complete deals: {unowned}")

    # The copies replace the templates: the database made anew (the seed gives the same ids).
    _prepare(url)
    # The pool of reps and engineers, and who in the templates they stand for.
    from models.identity import enroll
    from services import keys

    cipher = keys.cipher()
    with session_scope(url) as s:
        people = {p.handle: p for p in s.scalars(select(StaffUser))}
        rep = next(p for p in people.values() if "sales_rep" in p.roles.split(","))
        engineer = next(p for p in people.values() if "sales_engineer" in p.roles.split(","))
        pool: dict[int, list[int]] = {rep.id: [rep.id], engineer.id: [engineer.id]}
        handles: dict[str, list[str]] = {rep.handle: [rep.handle], engineer.handle: [engineer.handle]}
        for handle, n, who, title in (("rep", reps, rep, "Sales rep"), ("eng", engineers, engineer, "Engineer")):
            for i in range(1, n):
                person = StaffUser(handle=f"{handle}{i:03d}", name=f"{title} {i:03d}",
                                   email=f"{handle}{i:03d}@staff.example", roles=who.roles)
                s.add(person)
                s.flush()
                enroll(s, person, cipher, by="history")  # each can sign in, as a real colleague
                pool[who.id].append(person.id)
                handles[who.handle].append(person.handle)
        s.commit()
    # rows the pool's enrolment wrote (the audit log's): the copies' ids go after them
    with engine.connect() as conn:
        extra = {t.name: conn.execute(select(func.coalesce(func.max(t.c.id), 0))).scalar_one() - base.get(t.name, 0)
                 for t in rows.tables}
    # their handles where the templates wrote them as text (the audit log's actor, answers' "by")
    handle_words = re.compile(r"\b(" + "|".join(map(re.escape, handles)) + r")\b")
    staff_tables = {"staff_users"}

    prefix_type = {v: k for k, v in PREFIXES.items()}
    # Each set's numbers, per series, in order: a copy of a set takes the next numbers of each series.
    used: dict[str, dict[str, set[int]]] = {}
    for part, tables in sets.items():
        found = used.setdefault(part, {})
        for part_rows in tables.values():
            for r in part_rows:
                for v in r.values():
                    if isinstance(v, str | dict | list):
                        for m in numbers.finditer(v if isinstance(v, str) else json.dumps(v, default=str)):
                            found.setdefault(m[1], set()).add(int(m[2]))
    both = {p: used["finished"].get(p, set()) & used["open"].get(p, set()) for p in PREFIXES.values()}
    assert not any(both.values()), f"numbers in both the complete and the open deals: {both}"
    index = {part: {p: {n: i + 1 for i, n in enumerate(sorted(ns))} for p, ns in found.items()}
             for part, found in used.items()}

    n_fin_templates, n_open_templates = len(made["finished"]), len(made["open"])
    slots_fin = -(-finished // n_fin_templates)
    slots_open = -(-open_ // n_open_templates)
    plans = []  # (part, days back, {prefix: the number before this copy's first})
    last = dict.fromkeys(PREFIXES.values(), 0)

    def plan(part: str, days: float) -> None:
        plans.append((part, days, dict(last)))
        for p, ns in index[part].items():
            last[p] += len(ns)

    for s_ in range(slots_fin):  # oldest first: numbers grow with time
        plan("finished", 5 + YEARS * 365 * (slots_fin - 1 - s_) / max(slots_fin, 1) + rng.random())
    for _ in range(slots_open):
        plan("open", rng.uniform(0, 60))
    log(f"  copies: {slots_fin} of the {n_fin_templates} complete deals, {slots_open} of the "
        f"{n_open_templates} open ones ({slots_fin * n_fin_templates:,} + {slots_open * n_open_templates:,} deals)")

    def shift_iso(m: re.Match[str], delta: timedelta) -> str:
        try:
            return (date(int(m[1]), int(m[2]), int(m[3])) - delta).isoformat()
        except ValueError:
            return m[0]

    def transformer(table):
        """A function (slot, days back, row) -> the copied row's values, in column order."""
        steps = []
        for col in table.c:
            name = col.name
            fks = list(col.foreign_keys)
            parent = fks[0].column.table.name if fks else None
            if name == "id":
                steps.append(("id", table.name))
            elif parent in staff_tables:
                steps.append(("staff", None))
            elif parent and parent not in SHARED:
                steps.append(("fk", parent))
            elif parent:
                steps.append(("same", None))
            elif (table.name, name) in UNIQUE_KEYS:
                steps.append(("unique", None))
            elif name in ("flow_run_id",):
                steps.append(("none", None))
            else:
                try:
                    kind = col.type.python_type
                except NotImplementedError:
                    kind = None
                if kind is datetime:
                    steps.append(("datetime", None))
                elif kind is date:
                    steps.append(("date", None))
                elif kind is str:
                    steps.append(("text", None))
                elif kind in (dict, list) or col.type.__class__.__name__ == "JSON":
                    steps.append(("json", None))
                else:
                    steps.append(("same", None))
        cols = [c.name for c in table.c]

        def copy(slot: int, part: str, days: float, first: dict[str, int], row: dict[str, Any]) -> tuple:
            delta = timedelta(days=days)
            day_delta = timedelta(days=int(days))
            own = index[part]
            renum = lambda m: f"{m[1]}-{first[m[1]] + own[m[1]][int(m[2])]:04d}"  # noqa: E731
            person = lambda m: handles[m[1]][slot % len(handles[m[1]])]  # noqa: E731
            out = []
            for name, (how, arg) in zip(cols, steps, strict=True):
                v = row[name]
                if v is None:
                    out.append(None)
                elif how == "id":
                    out.append(v + extra[arg] + slot * rows.span[arg])
                elif how == "fk":
                    out.append(v if v <= base.get(arg, 0) else v + extra[arg] + slot * rows.span[arg])
                elif how == "staff":
                    choices = pool.get(v)
                    out.append(choices[slot % len(choices)] if choices else v)
                elif how == "unique":
                    out.append(f"{numbers.sub(renum, v)}~{slot}")
                elif how == "none":
                    out.append(None)
                elif how == "datetime":
                    out.append(v - delta)
                elif how == "date":
                    out.append(v - day_delta)
                elif how == "text":
                    out.append(handle_words.sub(person, DATE_IN_TEXT.sub(lambda m: shift_iso(m, day_delta),
                                                                          numbers.sub(renum, v))))
                elif how == "json":
                    dumped = json.dumps(v, default=str)
                    out.append(handle_words.sub(person, DATE_IN_TEXT.sub(lambda m: shift_iso(m, day_delta),
                                                                          numbers.sub(renum, dumped))))
                else:
                    out.append(v)
            return tuple(out)

        return copy, cols, [s for s, _ in steps]

    plans_by_table = {t.name: transformer(t) for t in rows.tables}
    t0 = time.perf_counter()
    postgres = url.startswith("postgresql")
    chunk = 200
    written = 0
    for start in range(0, len(plans), chunk):
        batch = list(enumerate(plans))[start:start + chunk]
        if postgres:
            raw = engine.raw_connection()
            try:
                with raw.cursor() as cur:
                    for t in rows.tables:
                        copy, cols, _ = plans_by_table[t.name]
                        with cur.copy(f"COPY {t.name} ({', '.join(_quote(c) for c in cols)}) FROM STDIN") as cp:
                            for slot, (part, days, first) in batch:
                                for r in sets[part].get(t.name, ()):
                                    cp.write_row(copy(slot, part, days, first, r))
                                    written += 1
                raw.commit()
            finally:
                raw.close()
        else:
            from sqlalchemy import insert

            with engine.begin() as conn:
                for t in rows.tables:
                    copy, cols, kinds = plans_by_table[t.name]
                    values = []
                    for slot, (part, days, first) in batch:
                        for r in sets[part].get(t.name, ()):
                            v = copy(slot, part, days, first, r)
                            values.append({c: (json.loads(x) if k == "json" and x is not None else x)
                                           for c, x, k in zip(cols, v, kinds, strict=True)})
                    if values:
                        conn.execute(insert(t), values)
                        written += len(values)
        done = min(start + chunk, len(plans))
        log(f"  {done:>6,} of {len(plans):,} copies, {written:,} rows, {time.perf_counter() - t0:.0f} s", )

    with engine.begin() as conn:
        for p, doc_type in prefix_type.items():
            conn.execute(text("UPDATE document_sequences SET last_value = :v WHERE doc_type = :t"),
                         {"v": last[p], "t": doc_type})
        conn.execute(text("UPDATE stock_levels SET on_hand = (SELECT COALESCE(SUM(quantity), 0) FROM stock_moves "
                          "WHERE stock_moves.product_id = stock_levels.product_id)"))
        if postgres:
            for t in rows.tables:
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), "
                                  f"(SELECT COALESCE(MAX(id), 1) FROM {t.name}))"))
        conn.execute(text("ANALYZE"))
        counts = {name: conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
                  for name in ("deals", "audit_log", "documents", "emails", "stock_moves", "waits", "serials")}
        status = dict(conn.execute(text("SELECT status, COUNT(*) FROM deals GROUP BY status")).all())
    return {"seconds": time.perf_counter() - t_start, "copy_seconds": time.perf_counter() - t0,
            "counts": counts, "status": status, "templates": made}


def _quote(name: str) -> str:
    return f'"{name}"'


def prefect_runs(url: str, recent_days: int = 90, concurrency: int = 8, log=print) -> dict[str, int]:
    """Prefect's side of the history, on the Prefect API of PREFECT_API_URL (its `deal`
    deployment made by `dealflow up`): for each open deal a run of the deal flow suspended at its
    open wait's key, tagged as the flow tags it (``application.deals.run_tags``) and recorded on
    the deal and its wait as the flow records it; for each deal finished in the last
    ``recent_days`` (Prefect's retention as `dealflow up` sets it: older runs are deleted) a
    Completed run. No task runs, logs or events: the runs pages list flow runs."""
    import asyncio

    from sqlalchemy import text

    from application.deals import run_tags
    from services.db import engine_for

    engine = engine_for(url)
    with engine.connect() as conn:
        open_rows = conn.execute(text(
            "SELECT d.number, w.key, w.step FROM deals d JOIN waits w ON w.deal_id = d.id AND w.status = 'open' "
            "WHERE d.status = 'open' ORDER BY d.id")).all()
        done_rows = conn.execute(text(
            "SELECT number FROM deals WHERE status <> 'open' AND closed_at >= :since ORDER BY id"),
            {"since": datetime.utcnow() - timedelta(days=recent_days)}).all()
    t0 = time.perf_counter()
    # the tags as the flow sets them, read from the business database (before any run exists)
    jobs = [(n, key, run_tags(n, step)) for n, key, step in open_rows]
    jobs += [(n, None, run_tags(n, "done")) for (n,) in done_rows]
    log(f"  tags for {len(jobs):,} runs in {time.perf_counter() - t0:.0f} s")

    async def make() -> list[tuple[str, str | None, str]]:
        from prefect.client.orchestration import get_client
        from prefect.states import Completed, Suspended

        made: list[tuple[str, str | None, str]] = []
        gate = asyncio.Semaphore(concurrency)
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("deal/deal")

            async def one(number: str, key: str | None, tags: list[str]) -> None:
                slug = next((t.split(":", 1)[1] for t in tags if t.startswith("customer:")), "")
                # made in its state at once: the server sets a new run's given state without rules
                state = Completed() if key is None else Suspended(pause_key=key, timeout_seconds=30 * 86400)
                async with gate:
                    run = await client.create_flow_run_from_deployment(
                        deployment.id, parameters={"deal_number": number}, name=f"{number}-{slug}", tags=tags,
                        state=state)
                made.append((number, key, str(run.id)))
                if len(made) % 1000 == 0:
                    log(f"  {len(made):,} runs", flush=True)

            await asyncio.gather(*(one(*j) for j in jobs))
        return made

    made = asyncio.run(make())
    with engine.begin() as conn:
        for number, key, run_id in made:
            if key is None:
                continue
            conn.execute(text("UPDATE deals SET flow_run_id = :r WHERE number = :n"), {"r": run_id, "n": number})
            conn.execute(text("UPDATE waits SET flow_run_id = :r, form_stored_at = opened_at WHERE key = :k AND "
                              "status = 'open' AND deal_id = (SELECT id FROM deals WHERE number = :n)"),
                         {"r": run_id, "k": key, "n": number})
    return {"suspended": sum(k is not None for _, k, _ in made), "completed": sum(k is None for _, k, _ in made),
            "seconds": round(time.perf_counter() - t0)}
