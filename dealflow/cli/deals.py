"""``dealflow deal`` (start one, look at one, list them), and the opportunity it carries:
``followup`` and ``opportunity`` (its pipeline stage, and the hand-off to an engineer)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import click

from models import DomainError, Role, utcnow
from models.text import shown

from ..prefect_api import ensure_api
from .answering import answer_arguments, send_answer
from .common import RECORD_ID, DealflowGroup, emit, logged_in, naive_utc, reads_and_ends, table


@click.group(cls=DealflowGroup)
def deal() -> None:
    """Deals: start one, look at one, list them, cancel one."""


NO_SERVER_NOTE = ("no `dealflow up` runs for this data folder, and PREFECT_API_URL is not set: the deal runs on a "
                  "temporary Prefect server of its own, which the team's UI does not show (`dealflow up` starts one "
                  "it does; commands in other terminals then use it)")


def _deal_deployment():
    """The server's 'deal' deployment, when PREFECT_API_URL points at a server that has one."""
    if not os.environ.get("PREFECT_API_URL"):
        return None
    from services.orchestration.deployments import read_deployment

    return read_deployment("deal/deal")


@deal.command("start")
@click.argument("lead_id", type=RECORD_ID)
@click.option("--detach", is_flag=True,
              help="Without a server deployment: run the flow in a background process (log in DATA_DIR/logs).")
@click.option("--here", is_flag=True, help="Run the flow in this process even if the server has a 'deal' deployment.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def deal_start(lead_id: int, detach: bool, here: bool, as_json: bool) -> None:
    """Start the deal for a lead. On a Prefect server with the 'deal' deployment (`dealflow up`),
    a worker runs it and its waits suspend; otherwise it runs here (or in the background)."""
    from application import deals
    from services.config import load_settings
    from services.orchestration.runs import live_state

    # one live flow run per deal: a second driver would open every wait twice
    number = deals.start_deal(lead_id, by="cli", live_state=live_state)["deal"]
    deployment = None if here else _deal_deployment()
    if deployment is not None:
        from services.orchestration.deployments import start_run

        # one run per deal even if two people press start at once: the key makes the server
        # return the first run, and the run's id is on the deal before any worker starts it
        run = start_run(deployment.id, parameters={"deal_number": number}, tags=["dealflow"],
                        idempotency_key=f"deal-{number}")
        deals.attach_run(number, str(run.id), live_state)
        from services.config import run_page

        page = run_page(str(run.id))
        emit({"deal": number, "flow_run_id": str(run.id), "ui": page}, as_json,
             f"{number} started on the 'deal' deployment as flow run {run.id}\n"
             f"its page (each wait: menu ⋮ → Resume): {page}")
        return
    if detach:
        logs = load_settings().data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / f"{number}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen([sys.executable, "-m", "dealflow.run_deal", number], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        emit({"deal": number, "pid": proc.pid, "log": log.name}, as_json,
             f"{number} started in the background (pid {proc.pid}, log {log.name})")
        if not os.environ.get("PREFECT_API_URL"):
            click.echo(f"note: {NO_SERVER_NOTE}", err=True)
        return
    click.echo(f"{number}: running its flow here; answer its waits from another terminal "
               f"(`dealflow inbox`, `dealflow answer {number} STEP ...`)", err=True)
    if not os.environ.get("PREFECT_API_URL"):
        click.echo(f"note: {NO_SERVER_NOTE}", err=True)
    ensure_api()
    from flows.deal import run_here
    result = run_here(number)
    emit(result, as_json, f"{number} ended: {result['status']}")


@deal.command("show")
@click.argument("deal_number")
@click.option("--json", "as_json", is_flag=True, help="Print the deal as JSON.")
@click.option("--history", is_flag=True, help="Also its whole history: every entry of the audit log, oldest first.")
@reads_and_ends
def deal_show(deal_number: str, as_json: bool, history: bool) -> None:
    """Everything about one deal: stage, waits, documents, money, mail; the serial numbers each
    shipment took, its returns and warranty claims (state, outcome, credit note, whom each waits for);
    with --history, what happened when and by whom, from the audit log (kept for every deal)."""
    from services.config import run_page

    from .. import remote

    if signed := remote.current():
        from urllib.parse import quote

        data = signed.call("GET", f"/dealflow/api/deals/{quote(deal_number.strip(), safe='')}"
                                  + ("?history=1" if history else ""))
        data["run_page"] = run_page(data["flow_run_id"], {"DEALFLOW_GATEWAY_URL": signed.url})
    else:
        from application.deals import deal_summary

        data = deal_summary(deal_number, history=history)
        data["run_page"] = run_page(data["flow_run_id"])
    if as_json:
        emit(data, True)
        return
    cur = data["currency"]
    lines = [f"{data['deal']} · {data['customer']} · {data['where']} · "
             f"owner {data['owner']}" + (f" · engineer {data['engineer']}" if data["engineer"] else "")]
    if data["waiting_for"]:
        w = data["waiting_for"]
        lines.append(f"waiting for {w['for']} ({w['key']}) since {w['since']} UTC")
        if data["run_page"]:
            lines.append(f"answer it on the run's page (menu ⋮ → Resume): {data['run_page']}")
    if data["status"] != "open" and data.get("lost_reason"):
        lines.append(f"{data['status']}: {data['lost_reason']}")
    for note in data.get("sales_notes") or []:
        lines.append(f"{note['who']}: {' '.join(note['text'].split())}")
    for r in data["estimate_revisions"]:
        lines.append(f"estimate {r['number']}: {r['status']}, total {r['total']} {cur}")
    if data["order"]:
        o = data["order"]
        lines.append(f"order {o['number']}: {o['status']}, total {o['total']} {cur}, "
                     f"QA attempts {len(o['qa_attempts'])}")
    if data["receipt"]:
        lines.append(f"receipt {data['receipt']['number']}: {data['receipt']['amount']} {cur}")
    for sh in data["shipments"]:
        shipped = ", ".join(f"{qty} × {sku}" for sku, qty in sh["lines"].items())
        lines.append(f"shipment {sh['number']}: {sh['carrier']} {sh['tracking_number']}: {shipped}")
        lines += [f"  {sku} serial number{'s' if len(serials) != 1 else ''}: {', '.join(serials)}"
                  for sku, serials in sh.get("serials", {}).items()]
    for h in data.get("credit_holds") or []:
        decided = f", {h['status']} by {h['by']}: {h['reason']}" if h["by"] else " (waiting for credit control)"
        lines.append(f"credit hold: {h['why']}{decided}")
    if data.get("deposit"):
        d = data["deposit"]
        lines.append(f"deposit: {d['terms']}" + (f"; invoice {d['invoice']}: total {d['total']} {cur}, paid {d['paid']} "
                                                 f"{cur} ({d['status']})" if d["invoice"] else ""))
    for n in data.get("credit_notes") or []:
        lines.append(f"credit note {n['number']} for {n['invoice']}: {n['amount']} {cur}; refunded {n['refunded']} {cur}"
                     + (f" ({n['refund_number']})" if n.get("refund_number") else "")
                     + f", kept as credit {n['kept_as_credit']} {cur}")
    if data["invoice"]:
        i = data["invoice"]
        lines.append(f"invoice {i['number']}: total {i['total']} {cur}, paid {i['paid']} {cur}, due {i['due']} {cur} "
                     f"by {i['due_date']}")
    lines += _after_sale(data, signed)
    if data["documents"]:
        from services.config import load_settings

        folder = None if signed else load_settings().data_dir / "documents"  # through the gateway: not here
        lines.append("documents:")
        lines += [f"  {d['number']}: {folder / d['pdf'] if folder else d['pdf']}" for d in data["documents"]]
    else:
        lines.append("documents: none")
    lines.append(f"emails: {len(data['emails'])} ({sum(m['status'] == 'sent' for m in data['emails'])} sent)")
    if history:
        lines.append("history (UTC):")
        lines += [f"  {h['at']}  {h['actor']:<10} {h['action']:<22} {h['subject']}"
                  + (f": {' '.join(h['what'].split())}" if h["what"] else "") for h in data["history"]]
    click.echo("\n".join(lines))


def _after_sale(data: dict[str, Any], signed) -> list[str]:
    """The deal's returns and warranty claims, a few lines each: what, its state, what became of it,
    and whom it waits for (with its run's page)."""
    from services.config import run_page

    env = {"DEALFLOW_GATEWAY_URL": signed.url} if signed else os.environ
    cur, out = data["currency"], []

    def waiting(case: dict[str, Any]) -> list[str]:
        wait = case.get("waiting_for")
        page = run_page(case["flow_run_id"], env) if wait else None
        return ([f"  waiting for {wait['for']} ({wait['key']}) since {wait['since']} UTC"] if wait else []) + (
            [f"  answer it on the run's page (menu ⋮ → Resume): {page}"] if page else [])

    for r in data.get("returns") or []:
        kind = f" (warranty return for {r['warranty_claim']})" if r["warranty_claim"] else (
            "" if r["with_credit"] else " (warranty return)")
        goods = ", ".join(f"{ln['quantity']} × {ln['sku']}" + (f" ({', '.join(ln['serials'])})" if ln["serials"] else "")
                          for ln in r["lines"])
        out.append(f"return {r['number']}{kind}: {r['status']}: {goods}; reason: {' '.join(r['reason'].split())}")
        out += waiting(r)
        out += return_details(r, cur)
    for c in data.get("claims") or []:
        out.append(f"warranty claim {c['number']}: {c['status']}: {c['sku']} {c['serial']} (warranty until "
                   f"{c['warranty_end']}); issue: {' '.join(c['issue'].split())}")
        out += waiting(c)
        if c["diagnosis"]:
            then = f"return under {c['return']}" if c["return"] else c["resolution"].replace("_", " ")
            out.append(f"  diagnosis by {c['diagnosed_by']}: {' '.join(c['diagnosis'].split())} → {then}")
        if c["close_note"]:
            out.append(f"  closed by {c['closed_by']}: {' '.join(c['close_note'].split())}")
    return out


def return_details(r: dict[str, Any], cur: str) -> list[str]:
    """What became of a return (``application.after_sale``), as ``deal show`` and ``return show``
    print it: its refusal, outcome, credit note and the units shipped back."""
    out = []
    if r["status"] == "refused":
        out.append(f"  refused by {r['decided_by']}: {' '.join((r['decision_note'] or '').split())}")
    if r["outcome"]:
        out.append(f"  outcome: {r['outcome']}")
    if c := r["credit"]:
        settled = (f"refunded {c['refunded']} {cur} ({c['refund_number']})" if c["settlement"] == "refund"
                   else f"kept as credit {c['kept_as_credit']} {cur}")
        out.append(f"  credit note {c['number']}: {c['amount']} {cur} (restocking fee {c['restocking_fee']} "
                   f"{cur}), {settled}")
    if back := r.get("shipped_back"):  # (a deal read through an older gateway has none)
        out.append(f"  shipped back on {back['on']}: {back['carrier']} {back['tracking_number']} "
                   f"(delivery note {back['delivery_note']})")
    return out


@deal.command("list")
@click.option("--status", type=click.Choice(["open", "won", "lost", "cancelled"]), help="Only deals in this state.")
@click.option("--waiting-for", "waiting_for", type=click.Choice([*(r.value for r in Role), "customer"]),
              help="Only deals waiting at a step this role answers (e.g. qa), or for the customer.")
@click.option("--json", "as_json", is_flag=True, help="Print the deals as JSON.")
def deal_list(status: str | None, waiting_for: str | None, as_json: bool) -> None:
    """All deals, newest first: where each stands and what it waits for."""
    from application.deals import list_deals

    rows = list_deals(status, waiting_for)
    emit(rows, as_json, table(rows, ["deal", "customer", "where", "owner", "waiting_for"]))


# --- the pipeline -------------------------------------------------------------------------------

def _max_ahead(unit: str) -> int:
    """How many days or hours ahead a follow-up may be due: the follow-up's own rule."""
    from models import FollowUp

    ahead = FollowUp.LATEST_AHEAD
    return ahead.days if unit == "d" else int(ahead.total_seconds() // 3600)


def _parse_due(value: str) -> datetime:
    m = re.fullmatch(r"\+(\d+)([hd])", value.strip())
    if m:
        digits, unit = m.group(1), m.group(2)
        limit = _max_ahead(unit)
        n = int(digits) if len(digits) <= 9 else limit + 1  # not a number of a hundred digits
        if n > limit:
            raise DomainError(f"due: +{shown(digits, 20)[1:-1]}{unit} is more than ten years ahead "
                              f"(at most +{limit}{unit})")
        return utcnow() + (timedelta(hours=n) if unit == "h" else timedelta(days=n))
    if value.strip().startswith("+"):
        raise DomainError(f"due: must be +Nd or +Nh (e.g. +2d), or an ISO date/time, got {shown(value)}")
    return naive_utc(value, "due")


@click.group(cls=DealflowGroup)
def followup() -> None:
    """Follow-ups on an opportunity."""


@followup.command("add")
@click.argument("deal_number")
@click.option("--by", required=True, help="Your staff handle.")
@click.option("--kind", required=True, help="call, email, meeting, demo or site_visit.")
@click.option("--due", required=True, help="When: ISO date/time, or +2d / +4h from now.")
@click.option("--notes", default="", help="What the follow-up is for.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def followup_add(deal_number: str, by: str, kind: str, due: str, notes: str, as_json: bool) -> None:
    """Schedule a follow-up."""
    from application import pipeline

    # the due time is read once the deal is found: an unknown deal is said first
    f = pipeline.add_followup(deal_number, by, kind, lambda: _parse_due(due), notes)
    out = {"followup": f["followup"], "deal": deal_number.upper(), "kind": f["kind"], "due_at": f["due_at"]}
    _redescribe(out["deal"])
    emit(out, as_json, f"follow-up {out['followup']} ({out['kind']}) due {out['due_at']}")


def _redescribe(deal_number: str) -> None:
    """The deal's waiting form says what changed (its follow-ups, its stage): on the wait, and
    in the run's stored form where a Prefect server has it."""
    if os.environ.get("PREFECT_API_URL"):
        from flows.waits import refresh_description

        try:
            refresh_description(deal_number)
        except Exception as exc:  # noqa: BLE001 - the change is made; the form says the old words a while
            click.echo(f"note: the waiting form could not be rewritten ({type(exc).__name__}); it says what it "
                       f"said before until the deal moves on", err=True)
    else:
        from application.deals import redescribe_open_wait

        redescribe_open_wait(deal_number)


@followup.command("done")
@click.argument("followup_id", type=RECORD_ID)
@click.option("--by", required=True, help="Your staff handle.")
@click.option("--outcome", required=True, help="What came of it.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def followup_done(followup_id: int, by: str, outcome: str, as_json: bool) -> None:
    """Mark a follow-up done, with its outcome."""
    from application import pipeline

    done = pipeline.complete_followup(followup_id, by, outcome)
    out = {"followup": done["followup"], "done_at": done["done_at"]}
    if done["deal"]:
        _redescribe(done["deal"])
    emit(out, as_json, f"follow-up {followup_id} done")


@click.group(cls=DealflowGroup)
def opportunity() -> None:
    """The opportunity: pipeline stage and hand-off to an engineer."""


@opportunity.command("stage")
@click.argument("deal_number")
@click.argument("stage")
@click.option("--by", required=True, help="Your staff handle.")
@click.option("--probability", type=click.IntRange(0, 100), help="Override the stage's default probability (0-100).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def opportunity_stage(deal_number: str, stage: str, by: str, probability: int | None, as_json: bool) -> None:
    """Move the opportunity to a pipeline stage."""
    from application import pipeline

    out = pipeline.move_stage(deal_number, stage, by, probability)
    _redescribe(out["deal"])
    emit(out, as_json, f"{out['deal']} at {out['stage']} ({out['probability']}%)")


@opportunity.command("assign")
@click.argument("deal_number")
@click.argument("engineer")
@click.option("--by", help="Your staff handle (a sales rep; the session's, when you logged in).")
@click.option("--code", metavar="NNNNNN", help="Your one-time code, for an answer without `dealflow login`.")
@click.option("--note", default="", help="What the engineer should know.")
def opportunity_assign(deal_number: str, engineer: str, by: str | None, code: str | None, note: str) -> None:
    """Hand the opportunity to a sales engineer (answers the deal's hand-off wait)."""
    typed = {"by": by or "", "engineer": engineer, "note": note}

    def read() -> dict[str, Any]:
        if not by and not logged_in():
            raise DomainError("by: say who answers (--by HANDLE), or log in first (`dealflow login HANDLE`)")
        return {k: v for k, v in typed.items() if v or k != "by"}

    payload = answer_arguments(deal_number, "handoff", read, typed)
    send_answer(deal_number, "handoff", payload, code=code, wait=True, as_json=False)


opportunity_assign.checks_its_own_arguments = True
