"""``dealflow demo``: the Glocial sale played end to end on a fresh data folder.

The deal's flow runs here; the scripted people answer each wait from another thread through the
same path as ``dealflow answer`` (validate, then resume the paused run through the Prefect API).
What happens is narrated from the audit log as the database records it.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

MARKER = ".dealflow-demo"


class DemoError(RuntimeError):
    pass


def prepare_folder(data_dir: Path) -> None:
    if data_dir.exists():
        if any(data_dir.iterdir()) and not (data_dir / MARKER).exists():
            raise DemoError(f"data-dir: {data_dir} is not empty and was not made by the demo; "
                            f"choose another folder")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).write_text("made by `dealflow demo`; it deletes this folder on its next run\n")


class Narrator(threading.Thread):
    """Prints each new audit entry, in the words of the sales floor."""

    def __init__(self, out: TextIO):
        super().__init__(daemon=True, name="narrator")
        self.out = out
        self.last_id = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop.is_set():
            self.flush()
            time.sleep(0.2)
        self.flush()

    def flush(self) -> None:
        from application.demo import audit_after

        with self.lock:
            for e in audit_after(self.last_id):
                self.last_id = e["id"]
                line = describe_entry(e["actor"], e["action"], e["subject"], e["details"])
                if line:
                    who = "customer" if e["actor"].startswith("customer: ") else e["actor"]  # named in the line
                    print(f"  {e['at']:%H:%M:%S}  {who:<9} {line}", file=self.out, flush=True)


def describe_entry(actor: str, action: str, subject: str, d: dict[str, Any]) -> str | None:
    from models.portal import BY_LINK

    if action == "wait.opened":
        return f"⏸  deal waits: {subject} (for {d.get('roles', '').replace(',', ' or ')})"
    if action.endswith(".answered"):
        how = {"signed session": f", signed by {actor}", "one-time code": f", {actor}'s one-time code",
               "unverified": ", UNVERIFIED", BY_LINK: ", online from the customer's link"}.get(d.get("proof"), "")
        stand_in = f" (standing in for {d['stands_in_for']})" if d.get("stands_in_for") else ""
        return f"✔  {subject}: {d.get('outcome')}{how}{stand_in}"
    if action == "staff.login":
        return f"🔑 logs in with the code their authenticator app shows (session until {d.get('expires', '')[11:16]} UTC)"
    if action.endswith(".refused"):
        before = " before anything moved" if d.get("door") not in (None, "flow") else ""
        return f"✘  {subject} refused{before}: {d.get('reason')}"
    if action in ("deal.flow_attached", "seed.loaded", "staff.enrolled"):
        return None
    extra = ", ".join(f"{k} {v}" for k, v in d.items() if k not in ("answer",))
    return f"•  {action.replace('.', ' ')} {subject}" + (f" ({extra})" if extra else "")


def _say(out: TextIO, text: str) -> None:
    print(f"\n▶ {text}", file=out, flush=True)


CUSTOMER = {"name": "Priya Raman", "po_number": "PO 4500-2231"}


def as_the_customer(deal_number: str, move, key: str, out: TextIO, narrator: Narrator) -> None:
    """The customer answers from the link in the estimate email, on the portal's page: the change
    request for revision 1, then the acceptance of revision 2 (name, PO number, terms)."""
    from application.demo import latest_estimate
    from services.config import load_settings

    from . import answers
    from .customer import PortalCustomer, link_in_mail

    number = latest_estimate(deal_number)
    link = link_in_mail(load_settings().mail_dir, f"Estimate {number} for")
    if link is None:
        raise DemoError(f"no portal link in the email of {number}")
    decision = move.payload["decision"]
    with PortalCustomer(user_agent="Mozilla/5.0 (dealflow demo; Priya Raman's browser)") as browser:
        page = browser.open(link)
        page.raise_for_status()
        narrator.flush()
        if decision == "request_changes":
            _say(out, f"The customer, Priya Raman, opens the link in the email of {number} and asks for changes")
            page = browser.answer(link, "request_changes", changes=move.payload["changes"], name=CUSTOMER["name"])
        else:
            _say(out, f"The customer opens the link in the email of {number}, types her name and PO number, "
                      f"ticks the terms and presses Accept")
            page = browser.answer(link, "accept", terms="yes", **CUSTOMER)
    if page.status_code != 200 or "id=\"outcome\"" not in page.text or "status bad" in page.text:
        raise DemoError(f"the portal did not take the customer's answer on {number} (HTTP {page.status_code})")
    answers.wait_closed(deal_number, key)


def people(deal_number: str, out: TextIO, stop: threading.Event, errors: list[BaseException],
           narrator: Narrator, portal=None) -> None:
    """The scripted people: each waits for their turn, then answers like `dealflow answer`."""
    from models import DomainError

    from . import answers
    from .scenario import ALL_CHECKS_PASS, SCRIPT, TEAM, answer_for

    try:
        showed_refusal = False
        for move in SCRIPT:
            key = answers.wait_for_turn(deal_number, move.step, stop)
            if key is None:
                return
            narrator.flush()  # what happened so far is printed before the next person speaks
            if move.step == "handoff":
                _say(out, "Sofia works the opportunity: follow-ups and pipeline stages")
            if move.step == "qa" and not showed_refusal:
                showed_refusal = True
                _say(out, "Impostors first: Sofia, logged in as herself, tries to sign off QA")
                try:
                    answers.answer(deal_number, "qa", {"passed": True, "notes": "looks fine"},
                                   login=TEAM.login("sofia"), door="demo")
                except DomainError:
                    narrator.flush()  # the refusal is in the audit log, like every other
                _say(out, "Someone types 'qa' in the form with a guessed code")
                try:
                    answers.answer(deal_number, "qa", {"by": "qa", "checklist": ALL_CHECKS_PASS, "notes": "ship it"},
                                   code=TEAM.wrong_code("qa"), door="demo")
                except DomainError:
                    narrator.flush()
            if move.step == "decision" and portal is not None:
                as_the_customer(deal_number, move, key, out, narrator)
                continue
            payload = answer_for(deal_number, move)
            login = TEAM.login(move.by)  # once per person: a code from their app opens the session
            narrator.flush()
            _say(out, f"{move.say}; signed by {move.by}")
            answers.answer(deal_number, move.step, payload, login=login, door="demo")
            answers.wait_closed(deal_number, key)
    except BaseException as exc:  # reported by the main thread, which stops the flow
        errors.append(exc)
        print(f"\n!! the scripted people stopped: {type(exc).__name__}: {exc}", file=out, flush=True)
        _cancel_flow(deal_number)


def _cancel_flow(deal_number: str) -> None:
    """Cancel the deal's flow run so the demo ends instead of waiting for an answer that won't come."""
    from application.deals import flow_run_of
    from services.orchestration.runs import cancel

    run_id = flow_run_of(deal_number)
    if run_id:
        cancel(run_id, "demo script failed")


def run_demo(data_dir: Path, out: TextIO = sys.stdout, start_api=None) -> dict[str, Any]:
    data_dir = data_dir.resolve()
    prepare_folder(data_dir)
    os.environ["DEALFLOW_DATA_DIR"] = str(data_dir)
    os.environ["DATABASE_URL"] = f"sqlite:///{data_dir / 'dealflow.db'}"

    from application import demo
    from application.deals import deal_summary
    from services import keys
    from services.db import migrate

    from .scenario import LEAD

    started = time.monotonic()
    print(f"dealflow demo: Glocial Machineries, data in {data_dir}", file=out, flush=True)
    keys.ensure_key_file()
    migrate()
    demo.seed_installation()  # the staff enrolled: each person's app shows their codes
    before = demo.stock_on_hand()
    deal_number = demo.start_scenario_deal(LEAD, by="sofia")
    print(f"Lead from {LEAD['company']} added by Sofia; deal {deal_number} starts its flow "
          f"(a Prefect flow run)", file=out, flush=True)
    if start_api is not None:
        start_api(out)

    from flows.deal import run_here  # import Prefect here, before the threads that use it start

    from . import answers  # noqa: F401

    narrator = Narrator(out)
    narrator.start()
    stop = threading.Event()
    errors: list[BaseException] = []
    public_url = os.environ.get("DEALFLOW_PUBLIC_URL")
    portal = start_portal(out)
    script = threading.Thread(target=people, args=(deal_number, out, stop, errors, narrator, portal), daemon=True,
                              name="people")
    script.start()
    try:
        result = run_here(deal_number, poll_interval=1, wait_timeout=600)
    finally:
        stop.set()
        script.join(timeout=30)
        narrator.stop.set()
        narrator.join(timeout=5)
        if portal is not None:
            portal.__exit__(None, None, None)
            if public_url is None:
                os.environ.pop("DEALFLOW_PUBLIC_URL", None)
            else:
                os.environ["DEALFLOW_PUBLIC_URL"] = public_url
    if errors:
        raise errors[0]

    summary = deal_summary(deal_number)
    after = demo.stock_on_hand()
    mail_dir = data_dir / "mail"
    for mail in summary["emails"]:
        found = sorted(mail_dir.glob(f"{mail['id']:05d}-*.eml"))
        mail["file"] = str(found[0]) if found else None
    summary["stock"] = {sku: {"before": before[sku], "after": after[sku]} for sku in before}
    summary["documents_dir"] = str(data_dir / "documents")
    summary["mail_dir"] = str(mail_dir)
    summary["flow_steps"] = len(result["steps"])
    summary["refused"] = demo.refused_answers(deal_number)
    summary["portal"] = portal.url if portal is not None else None
    summary["online_answers"] = demo.online_answers(deal_number)
    if summary["deposit"] is not None:
        summary["deposit"]["deducted"] = demo.deposit_deducted(deal_number)
    summary["seconds"] = round(time.monotonic() - started, 1)
    return summary


def start_portal(out: TextIO):
    """The customer portal, served from this process for the demo, with the links in mail
    pointing at it; None (sales then record the customer's decisions) if it cannot start."""
    from dataclasses import replace

    from services.config import load_settings

    from .portal import PortalThread

    try:  # served over plain http on this machine, whatever DEALFLOW_PUBLIC_URL the shell has
        portal = PortalThread(replace(load_settings(), public_url="http://127.0.0.1")).__enter__()
    except Exception as exc:  # noqa: BLE001 - the demo goes on without it
        print(f"(the customer portal could not start: {exc}; sales record the customer's decisions)",
              file=out, flush=True)
        return None
    os.environ["DEALFLOW_PUBLIC_URL"] = portal.url
    print(f"The customer portal serves the links in mail on {portal.url} while the demo runs", file=out, flush=True)
    return portal


def print_summary(summary: dict[str, Any], out: TextIO = sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"\n=== {summary['deal']} · {summary['customer']} · {summary['status'].upper()} "
      f"in {summary['seconds']} s ===")
    for r in summary["estimate_revisions"]:
        p(f"  estimate {r['number']:<14} {r['status']:<18} total {r['total']}")
    o = summary["order"]
    p(f"  order    {o['number']:<14} QA attempts {len(o['qa_attempts'])}, total {o['total']}")
    dep = summary.get("deposit")
    if dep and dep["invoice"]:
        n = len(dep["payments"])
        p(f"  deposit  {dep['invoice']:<14} {dep['terms']}: total {dep['total']}, paid {dep['paid']} "
          f"in {'one payment' if n == 1 else f'{n} payments'}, due {dep['due']}")
        for pay in dep["payments"]:
            p(f"  payment  {pay['number']:<14} {pay['amount']} (deposit)")
    p(f"  receipt  {summary['receipt']['number']:<14} {summary['receipt']['amount']}")
    for sh in summary["shipments"]:
        lines = ", ".join(f"{q} × {sku}" for sku, q in sh["lines"].items())
        p(f"  shipment {sh['number']:<14} {sh['carrier']} {sh['tracking_number']}: {lines}")
        for sku, serials in sh.get("serials", {}).items():
            p(f"  {'':<23} {sku} serial numbers: {', '.join(serials)}")
    inv = summary["invoice"]
    deducted = (dep or {}).get("deducted")
    less = (f"shipped {deducted['before']} less deposit {deducted['deposit_invoice']} {deducted['amount']} = "
            if deducted else "")
    p(f"  invoice  {inv['number']:<14} {less}total {inv['total']}, paid {inv['paid']}, due {inv['due']}")
    for pay in summary["payments"]:
        p(f"  payment  {pay['number']:<14} {pay['amount']}")
    p("  stock:   " + "; ".join(f"{sku} {v['before']} → {v['after']}" for sku, v in summary["stock"].items()
                                if v["before"] != v["after"]))
    for a in summary.get("online_answers") or []:
        po = f", {a['po_number']}" if a["po_number"] else ""
        p(f"  online   {a['revision']:<14} {a['action'].replace('_', ' ')} by {a['name']} (customer's link{po})")
    if summary.get("portal"):
        p(f"  (the links in these emails pointed at the demo's own portal, {summary['portal']}, and stopped "
          f"working with it; with `dealflow up`, estimate emails link to the portal it starts)")
    p(f"  {summary['refused']} answers refused (each in the audit log; nothing moved)")
    p(f"  {len(summary['emails'])} emails in {summary['mail_dir']}")
    p(f"  {len(summary['documents'])} documents (HTML and PDF) in {summary['documents_dir']}")
