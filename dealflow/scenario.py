"""The Glocial Machineries scenario as data: the lead, and each person's answer at each wait.

Used by ``dealflow demo`` (answers go through Prefect, as a person's would), by the tests and by
``benchmarks/lifecycle.py`` (answers applied by the tasks directly, without Prefect).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

LEAD = {
    "company": "Riverside Metalworks Ltd",
    "contact_name": "Priya Raman",
    "email": "priya.raman@riverside-metal.example",
    "phone": "+1 555 0142",
    "address": "4 Canal Street\nRiverside 40213",
    "source": "trade_show",
    "owner": "sofia",
    "notes": "Met at the machine tool fair; opening a second plant and needs turning capacity.",
}


@dataclass(frozen=True)
class Move:
    """One person's answer at one wait. ``payload`` may be computed from the deal's summary."""
    step: str
    by: str
    payload: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]
    say: str

    def answer(self, summary: dict[str, Any]) -> dict[str, Any]:
        data = self.payload(summary) if callable(self.payload) else dict(self.payload)
        return {"by": self.by, **data}


def _first_payment(summary: dict[str, Any]) -> dict[str, Any]:
    due = Decimal(summary["invoice"]["due"])
    part = (due * Decimal("0.4")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return {"amount": str(part), "method": "bank_transfer", "reference": "RMW-ADV-001"}


def _deposit_payment(summary: dict[str, Any]) -> dict[str, Any]:
    return {"amount": summary["deposit"]["due"], "method": "bank_transfer", "reference": "RMW-DEP-001"}


def _final_payment(summary: dict[str, Any]) -> dict[str, Any]:
    return {"amount": summary["invoice"]["due"], "method": "bank_transfer", "reference": "RMW-BAL-002"}


ALL_CHECKS_PASS = {"spindle_runout": True, "safety_guards": True, "emergency_stop": True,
                   "hydraulics": True, "control_software": True}

SCRIPT: list[Move] = [
    Move("qualify", "sofia", {"qualified": True, "budget": "150000", "timeline": "Q1 2027",
                              "notes": "Needs two CNC lathes with tooling for the new plant; the plant "
                                       "manager decides, purchasing signs."},
         "Sofia qualifies the lead"),
    Move("handoff", "sofia", {"engineer": "mark", "note": "Wants a quote this week."},
         "Sofia hands the opportunity to Mark Henry"),
    Move("estimate", "mark", {"lines": [
        {"sku": "CNC-LATHE-2000", "quantity": 2, "discount_pct": "5"},
        {"sku": "TOOL-KIT-PRO", "quantity": 2},
        {"sku": "CHUCK-3J-250", "quantity": 2},
    ], "valid_days": 30, "notes": "Includes commissioning at your site and operator training for two people."},
         "Mark prepares estimate revision 1"),
    Move("decision", "mark", {"decision": "request_changes", "channel": "email",
                              "changes": "Three lathes instead of two, 8% on the lathes, and add 10 cans of coolant."},
         "The customer asks for changes (Mark records it)"),
    Move("estimate", "mark", {"lines": [
        {"sku": "CNC-LATHE-2000", "quantity": 3, "discount_pct": "8"},
        {"sku": "TOOL-KIT-PRO", "quantity": 3},
        {"sku": "CHUCK-3J-250", "quantity": 3},
        {"sku": "COOLANT-20L", "quantity": 10},
    ], "valid_days": 30, "notes": "Revised as requested: third lathe, 8% on the lathes, coolant added."},
         "Mark prepares revision 2"),
    Move("decision", "mark", {"decision": "approve", "channel": "signed_document", "note": "PO 4500-2231"},
         "The customer approves revision 2 (signed document)"),
    Move("qa", "qa", {"passed": False, "notes": "Lathe #2: hydraulic pressure drops under load; replace the seal.",
                      "checklist": {**ALL_CHECKS_PASS, "hydraulics": False}},
         "QA tests the machines: hydraulics fail on lathe #2"),
    Move("qa", "qa", {"passed": True, "notes": "Seal replaced; 4 h run under load, all within tolerance.",
                      "checklist": ALL_CHECKS_PASS},
         "QA tests again: pass, released for picking"),
    Move("deposit", "finance", _deposit_payment, "Finance records the 30 % deposit, paid in one payment"),
    Move("shipment", "delivery", {"carrier": "DHL Freight", "tracking_number": "DHLF-7845120",
                                  "lines": [{"sku": "CNC-LATHE-2000", "quantity": 2},
                                            {"sku": "TOOL-KIT-PRO", "quantity": 2},
                                            {"sku": "CHUCK-3J-250", "quantity": 2},
                                            {"sku": "COOLANT-20L", "quantity": 10}]},
         "Delivery ships the first part"),
    Move("shipment", "delivery", {"carrier": "DHL Freight", "tracking_number": "DHLF-7845377", "lines": []},
         "Delivery ships the rest"),
    Move("payment", "finance", _first_payment, "Finance records a 40% payment"),
    Move("payment", "finance", _final_payment, "Finance records the final payment"),
]

# The same sale for a customer on terms without a deposit (a new customer: the company asks none
# unless `company edit --deposit-pct` says so), as the benchmarks play it, comparable with before
SCRIPT_WITHOUT_DEPOSIT: list[Move] = [m for m in SCRIPT if m.step != "deposit"]

# The same sale, but Mark first offers 15 % on the lathes, over his 10 % limit: the sales manager
# approves 12 % before anything goes to the customer.
DISCOUNT_SCRIPT: list[Move] = [
    *SCRIPT[:2],
    Move("estimate", "mark", {"lines": [
        {"sku": "CNC-LATHE-2000", "quantity": 2, "discount_pct": "15"},
        {"sku": "TOOL-KIT-PRO", "quantity": 2},
        {"sku": "CHUCK-3J-250", "quantity": 2},
    ], "valid_days": 30, "notes": SCRIPT[2].payload["notes"]}, "Mark prepares revision 1 with 15 % on the lathes"),
    Move("discount", "manager", {"decision": "lower", "discount_pct": "12",
                                 "reason": "12 % is our best for a first order."},
         "Morgan approves 12 % instead of 15 %"),
    *SCRIPT[3:],
]


class Team:
    """The scenario's people, each logged in once, as `dealflow login` does: a session opened with
    the code their authenticator app would show (computed from their enrolled secret), whose key
    then signs each of their answers. Sessions are kept per database for the process, so a second
    deal does not need a second code within the same 30 seconds."""

    _logins: dict[tuple[str, str], Any] = {}
    # one sign-in at a time: two of the team's threads (two deals) signing the same person in at
    # once would try one code twice, and a code opens one session
    _signing_in = threading.Lock()

    def login(self, handle: str):
        from application.demo import session_open, sign_in_with_app
        from services.config import load_settings

        from .login import Login

        url = load_settings().database_url
        with self._signing_in:
            cached = self._logins.get((url, handle))
            # (a test may empty the tables meanwhile)
            if cached is not None and session_open(cached.session, for_at_least=timedelta(minutes=5)):
                return cached
            opened = sign_in_with_app(handle, door="scenario")
        login = self._logins[(url, handle)] = Login.opened(opened)
        return login

    def signed(self, deal_number: str, wait_key: str, answer: dict[str, Any]) -> dict[str, Any]:
        """``answer`` with its proof: signed by its person (``by``) for this deal and wait."""
        return {**answer, **self.login(answer["by"]).prove(deal_number, wait_key, answer)}

    @staticmethod
    def wrong_code(handle: str) -> str:
        """A code that is not ``handle``'s now (nor one step either side): an impostor's guess."""
        from application.demo import wrong_code

        return wrong_code(handle)


TEAM = Team()


def start_scenario_deal(company: str = LEAD["company"], restock: int = 0, restock_key: str = "") -> str:
    """A lead like the scenario's (under ``company``) and its deal; returns the deal's number.
    With ``restock``, every product first receives that many units (key ``restock_key``), so that
    many deals can ship the same machines (benchmarks, the end-to-end test)."""
    from application.demo import start_scenario_deal as start

    return start(LEAD | {"company": company}, restock=restock, restock_key=restock_key or company)


def answer_for(deal_number: str, move: Move) -> dict[str, Any]:
    """The person's answer to ``move`` as the deal stands now. Before the hand-off Sofia works the
    opportunity (follow-ups, stages), as the scenario has it (``application.demo``). A shipment is
    confirmed as its form starts (``with_serials``)."""
    from application.deals import deal_summary
    from application.demo import work_the_opportunity

    if move.step == "handoff":
        work_the_opportunity(deal_number)
    summary = deal_summary(deal_number)
    answer = move.answer(summary)
    return with_serials(deal_number, answer, summary) if move.step == "shipment" else answer


def with_serials(deal_number: str, answer: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """A shipment as delivery confirms it in its form: the lines the script names (none: the lines
    the form starts with, all that is left), each serialized line with the serial numbers the form
    starts with (the oldest units in stock), one per unit shipped; a unit without one in stock gets
    the number delivery types from its plate (here: the deal's number and the unit's count)."""
    from application.serials import shipment_form

    form = {line["sku"]: line for line in shipment_form(deal_number)}
    lines = [dict(line) for line in answer.get("lines") or
             ({"sku": sku, "quantity": line["quantity"]} for sku, line in form.items())]
    for line in lines:
        offered = form.get(line["sku"], {}).get("serials")
        if offered is None or line.get("serials"):
            continue  # not serialized, or the script names the serial numbers itself
        before = sum(s["lines"].get(line["sku"], 0) for s in summary["shipments"])
        wanted = int(line["quantity"])
        offered = (offered + [""] * wanted)[:wanted]
        line["serials"] = [given or f"{deal_number}-{before + n:03d}" for n, given in enumerate(offered, start=1)]
    return {**answer, "lines": lines}


def play_direct(deal_number: str, script: list[Move] | None = None, until: str | None = None,
                repeat: int = 1) -> list[dict[str, Any]]:
    """Drive a deal by the one driver (``application.driver``) without Prefect: the same plan, the
    same rules, the same transactions, answers recorded as the flow records them, from the
    script. With ``until``, stop when the deal waits at that key (the wait is open, unanswered).
    With ``repeat``, run each automatic step, wait opening and mail delivery that many times, as
    re-runs would. Returns each step's key and outcome."""
    from application import deals
    from application.driver import Stop, Ways, drive

    moves = list(SCRIPT if script is None else script)
    # a deal part-way through has already used the first moves
    answered = [w["step"] for w in deals.waits_of(deal_number) if w["status"] == "answered"]
    for step_name in answered:
        if moves and moves[0].step == step_name:
            moves.pop(0)

    def automatic(step: dict[str, Any]) -> str:
        return [deals.run_automatic(step["name"], deal_number) for _ in range(repeat)][0]

    def wait(step: dict[str, Any]) -> dict[str, Any]:
        for _ in range(repeat):
            deals.open_wait(deal_number, step["name"], step["key"], None)
        if step["key"] == until:
            raise Stop
        if not moves or moves[0].step != step["name"]:
            raise RuntimeError(f"{deal_number} waits at {step['key']} but the script has "
                               f"{moves[0].step if moves else 'nothing'} next")
        move = moves.pop(0)
        return deals.record_answer(deal_number, step["key"], TEAM.signed(deal_number, step["key"],
                                                                          answer_for(deal_number, move)))

    def send_mail(number: str) -> None:
        for _ in range(repeat):
            deals.deliver_mail(number)

    driven = drive(deal_number, Ways(automatic=automatic, wait=wait, send_mail=send_mail))
    return [{k: v for k, v in step.items() if k != "step"} for step in driven["steps"]]
