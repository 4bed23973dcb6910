"""``dealflow return`` (start one, show one, list them) and ``dealflow warranty`` (claim, show):
the cases after a sale, each driven by its own flow run (``flows.cases``)."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from ..prefect_api import ensure_api
from .common import DealflowGroup, acting, emit, table
from .deals import NO_SERVER_NOTE, return_details


@click.group(name="return", cls=DealflowGroup)
def return_group() -> None:
    """Returns (RMA): goods of a deal coming back, authorized, received, inspected and credited."""


@click.group(cls=DealflowGroup)
def warranty() -> None:
    """Warranty claims on a serial number: diagnosed, repaired on site or returned, closed."""


def _deployment(name: str):
    if not os.environ.get("PREFECT_API_URL"):
        return None
    from services.orchestration.deployments import read_deployment

    return read_deployment(name)


def start_case_run(kind: str, number: str, deal_number: str, *, here: bool, detach: bool, as_json: bool,
                   said: str) -> None:
    """Run the case's flow: on the server's deployment (`dealflow up`: a worker runs it, its waits
    suspend), else here (or in a background process)."""
    from flows.cases import DEPLOYMENTS

    deployment = None if here else _deployment(DEPLOYMENTS[kind])
    if deployment is not None:
        from application import cases
        from services.config import run_page
        from services.orchestration.deployments import start_run

        run = start_run(deployment.id, parameters={"case": number, "deal_number": deal_number}, tags=["dealflow"],
                        idempotency_key=f"{kind}-{number}")
        cases.attach_run(number, str(run.id))
        page = run_page(str(run.id))
        emit({"case": number, "deal": deal_number, "flow_run_id": str(run.id), "ui": page}, as_json,
             f"{said}\nits run {run.id} (each wait: menu ⋮ → Resume): {page}")
        return
    if detach:
        from services.config import load_settings

        logs = load_settings().data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / f"{number}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen([sys.executable, "-m", "dealflow.run_case", kind, number, deal_number], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        emit({"case": number, "deal": deal_number, "pid": proc.pid, "log": log.name}, as_json,
             f"{said}\nits run goes on in the background (pid {proc.pid}, log {log.name})")
        return
    click.echo(f"{said}\n{number}: running its flow here; answer its waits from another terminal "
               f"(`dealflow inbox`, `dealflow answer {deal_number} STEP ...`)", err=True)
    if not os.environ.get("PREFECT_API_URL"):
        click.echo(f"note: {NO_SERVER_NOTE}", err=True)
    ensure_api()
    from flows.cases import run_case_here

    result = run_case_here(kind, number, deal_number)
    emit(result, as_json, f"{number} ended: {result['status']}")


def _run_options(fn):
    fn = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(fn)
    fn = click.option("--here", is_flag=True, help="Run the flow in this process even if the server has its "
                                                   "deployment.")(fn)
    fn = click.option("--detach", is_flag=True, help="Without a server deployment: run the flow in a background "
                                                     "process (log in DATA_DIR/logs).")(fn)
    fn = click.option("--code", metavar="NNNNNN", help="Your one-time code, without `dealflow login`.")(fn)
    return click.option("--by", help="Your staff handle (the session's, when you logged in).")(fn)


@return_group.command("start")
@click.argument("deal_number", metavar="DEAL")
@click.option("--lines", required=True, multiple=True,
              help="What comes back: SKU:QTY, or SKU:QTY:SERIAL/SERIAL for units with serial numbers; several "
                   "separated by commas (or --lines again).")
@click.option("--reason", required=True, help="Why the customer sends it back (the manager and the RMA show it).")
@_run_options
def return_start(deal_number: str, lines: tuple[str, ...], reason: str, by: str | None, code: str | None,
                 detach: bool, here: bool, as_json: bool) -> None:
    """Record a customer's request to return goods of DEAL and start its flow: a manager
    authorizes it (the customer gets the RMA) or refuses it; delivery receives the goods, QA
    inspects them (restock, scrap, repair), finance issues the credit note. At most what shipped
    less what other returns hold comes back."""
    from application import cases

    text = ",".join(lines)
    by, proof = acting("return start", by, code, deal_number, "return",
                       lambda who: cases.return_payload(who, text, reason), "a member of staff")
    out = cases.ask_for_return(deal_number, text, reason, by, proof)
    goods = ", ".join(f"{ln['quantity']} × {ln['sku']}" + (f" ({', '.join(ln['serials'])})" if ln["serials"] else "")
                      for ln in out["lines"])
    start_case_run("return", out["number"], out["deal"], here=here, detach=detach, as_json=as_json,
                   said=f"{out['number']}: return of {goods} from {out['customer']} ({out['deal']}) asked for; "
                        f"it waits for a manager's authorization")


@return_group.command("show")
@click.argument("number", metavar="RMA")
@click.option("--json", "as_json", is_flag=True, help="Print the return as JSON.")
def return_show(number: str, as_json: bool) -> None:
    """One return: its deal, lines, serial numbers, what became of each, and its credit note."""
    from application.after_sale import return_story

    out = return_story(number)
    lines = [f"{out['number']} ({'return' if out['with_credit'] else 'warranty return'}) of {out['deal']}, "
             f"{out['customer']}: {out['status']}", f"  reason: {out['reason']}"]
    if wait := out["waiting_for"]:
        lines.append(f"  waiting for {wait['for']} ({wait['key']}) since {wait['since']} UTC")
    if out["restocking_fee_pct"] not in ("0", "0.00"):
        lines.append(f"  restocking fee: {out['restocking_fee_pct']} %")
    for ln in out["lines"]:
        serials = f" [{', '.join(ln['serials'])}]" if ln["serials"] else ""
        lines.append(f"  {ln['sku']}: {ln['quantity']} asked, {ln['received']} received, {ln['restocked']} restocked, "
                     f"{ln['scrapped']} scrapped, {ln['to_repair']} to repair{serials}")
    lines += return_details(out, out["currency"])
    emit(out, as_json, "\n".join(lines))


@return_group.command("list")
@click.option("--deal", "deal_number", help="Only this deal's returns and claims (done ones too).")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def return_list(deal_number: str | None, as_json: bool) -> None:
    """Returns and warranty claims not done yet (or all of a deal's)."""
    from application import cases

    rows = cases.open_cases(deal_number)
    if as_json:
        emit(rows, True)
        return
    if not rows:
        click.echo("nothing open")
        return
    click.echo(table([{"number": r["number"], "deal": r["deal"], "customer": r["customer"], "status": r["status"],
                       "what": _what(r)} for r in rows], ["number", "deal", "customer", "status", "what"]))


def _what(case: dict) -> str:
    """What a case is about: a return's goods, a claim's unit."""
    if case["kind"] == "return":
        return ", ".join(f"{ln['quantity']} × {ln['sku']}" for ln in case["lines"])
    return f"{case['sku']} {case['serial']}"


@warranty.command("claim")
@click.argument("serial", metavar="SN")
@click.option("--issue", required=True, help="What is wrong, as the customer says it.")
@_run_options
def warranty_claim(serial: str, issue: str, by: str | None, code: str | None, detach: bool, here: bool,
                   as_json: bool) -> None:
    """Open a warranty claim on the unit SN (refused after its warranty's end) and start its flow:
    an engineer diagnoses it (repair on site, or a return without credit), then closes it with
    a note."""
    from application import cases

    by, proof = acting("warranty claim", by, code, serial, "claim", lambda who: cases.claim_payload(who, issue),
                       "a member of staff")
    out = cases.claim_warranty(serial, issue, by, proof)
    start_case_run("claim", out["number"], out["deal"], here=here, detach=detach, as_json=as_json,
                   said=f"{out['number']}: warranty claim on {out['sku']} {out['serial']} of {out['customer']} "
                        f"({out['deal']}, warranty until {out['warranty_end']}); it waits for an engineer's diagnosis")


@warranty.command("show")
@click.argument("number", metavar="WC")
@click.option("--json", "as_json", is_flag=True, help="Print the claim as JSON.")
def warranty_show(number: str, as_json: bool) -> None:
    """One warranty claim: the unit, the issue, the diagnosis, its return, how it was closed."""
    from application import cases

    out = cases.case_summary(number)
    lines = [f"{out['number']}: {out['sku']} {out['serial']} of {out['customer']} ({out['deal']}), {out['status']}",
             f"  issue: {out['issue']}", f"  warranty until: {out['warranty_end']}"]
    if out["diagnosis"]:
        lines.append(f"  diagnosis: {out['diagnosis']} → {out['resolution'].replace('_', ' ')}")
    if out["return"]:
        lines.append(f"  returned under {out['return']}")
    if out["close_note"]:
        lines.append(f"  closed: {out['close_note']}")
    emit(out, as_json, "\n".join(lines))
