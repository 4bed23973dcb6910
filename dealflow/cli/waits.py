"""The waits: ``inbox`` (deals waiting for a person) and ``answer`` (answer one)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import click

from models import DomainError, Role
from models.text import shown
from services.config import UNVERIFIED_NOTE

from .answering import answer_arguments, send_answer
from .common import DealflowCommand, emit, logged_in, reads_and_ends, table


def _states_of(rows: list[dict]) -> dict[str, str]:
    """Flow run id -> state name of the runs of these rows, as Prefect holds them now."""
    from services.orchestration.runs import states_of

    return states_of([r["flow_run_id"] for r in rows if r["flow_run_id"]])


@click.command(cls=DealflowCommand)
@click.option("--role", type=click.Choice([r.value for r in Role]), help="Only waits this role may answer (e.g. qa).")
@click.option("--json", "as_json", is_flag=True, help="Print the waits as JSON.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0),
              help="Show the oldest this many (0: all).")
@reads_and_ends
def inbox(role: str | None, as_json: bool, limit: int) -> None:
    """Deals waiting for a person, oldest first: for what, since when, for which role. With
    PREFECT_API_URL set, each row also shows its run's state on the server (Suspended, Paused, or
    what went wrong)."""
    from .. import remote

    asked = limit + 1 if limit else None  # one more than shown: whether there are more
    if signed := remote.current():  # through the gateway, which asked its Prefect server
        from urllib.parse import urlencode

        query = urlencode({k: v for k, v in (("role", role), ("limit", asked)) if v})
        rows = signed.call("GET", "/dealflow/api/inbox" + (f"?{query}" if query else ""))
        with_runs = any("run" in r for r in rows)
    else:
        from application.inbox import open_waits

        rows = open_waits(role, None, asked)
        with_runs = bool(os.environ.get("PREFECT_API_URL"))
        if with_runs:
            states = _states_of(rows[:limit or None])
            for r in rows:
                r["run"] = states.get(r["flow_run_id"] or "", "not on this server")
    more = bool(limit) and len(rows) > limit
    rows = rows[:limit or None]
    for r in rows:
        r["who"] = " or ".join(r["roles"])
        # what for, by whom, in words ("deposit, by finance"); a gateway from before sends no words
        r["waiting for"] = r.get("waiting_for") or r["who"]
    from datetime import datetime

    from models.clock import utcnow
    from models.text import ago
    from services.config import load_settings, run_page

    for r in rows:
        r["link"] = run_page(r["flow_run_id"], {"DEALFLOW_GATEWAY_URL": signed.url} if signed else os.environ)
    if not load_settings().answer_codes:
        click.echo(f"note: {UNVERIFIED_NOTE}", err=True)
    # the key names the step and its round (estimate-rev-2, qa-attempt-2): one column, not two
    columns = ["deal", "customer", "step", "waiting for", "waiting", "amount"] + (["run"] if with_runs else []) + ["link"]
    shown_rows = [{**r, "step": r["key"], "waiting": ago((utcnow() - datetime.fromisoformat(r["since"])).total_seconds()),
                   "amount": f"{r['amount']} {r['currency']}" if r["amount"] else ""} for r in rows]
    emit(rows, as_json, table(shown_rows, columns)
         + ("\n(answer on the link's page: menu ⋮ → Resume; or `dealflow answer DEAL STEP`)" if rows else "")
         + (f"\n(the {limit} oldest shown; more wait: `--limit 0` shows all, `--role ROLE` one role's)" if more else ""))


def _answer_payload(input_json: str | None, sets: tuple[str, ...], by: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if input_json:
        try:
            text = Path(input_json[1:]).read_text() if input_json.startswith("@") else input_json
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise DomainError(f"input: cannot read {shown(input_json[1:], 200)} "
                              f"({getattr(exc, 'strerror', None) or 'not UTF-8 text'})") from None
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DomainError(f"input: is not valid JSON ({exc.msg} at character {exc.pos})") from None
        except (ValueError, RecursionError) as exc:  # a number of thousands of digits, nesting without end
            raise DomainError(f"input: is not JSON dealflow can read ({type(exc).__name__})") from None
        if not isinstance(payload, dict):
            raise DomainError("input: must be a JSON object")
    for item in sets:
        if "=" not in item:
            raise DomainError(f"set: expected FIELD=VALUE, got {shown(item)}")
        key, _, value = item.partition("=")
        payload[key.strip()] = value if key.strip() == "code" else _coerce(value)  # 012345 stays text
    if by:
        payload["by"] = by
    from .. import remote

    if not payload.get("by") and not logged_in() and remote.current() is None:
        raise DomainError("by: say who answers (--by HANDLE), or log in first (`dealflow login HANDLE`)")
    return payload


def _coerce(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
    except (ValueError, RecursionError):  # a number of thousands of digits, nesting without end
        raise DomainError(f"set: {shown(value)} is not a value dealflow can read") from None


@click.command(cls=DealflowCommand)
@click.argument("deal_number")
@click.argument("step")
@click.option("--by", help="Your staff handle (the session's, when you logged in).")
@click.option("--code", metavar="NNNNNN", help="Your one-time code, for an answer without `dealflow login` "
                                               "(asked for, hidden, at a terminal).")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="A field of the answer; VALUE is read as JSON when it parses (true, 12, [..]).")
@click.option("--input", "input_json", help="The whole answer as a JSON object (or @file.json).")
@click.option("--no-wait", is_flag=True, help="Do not wait for the flow to record the answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def answer(deal_number: str, step: str, by: str | None, code: str | None, sets: tuple[str, ...],
           input_json: str | None, no_wait: bool, as_json: bool) -> None:
    """Answer the wait DEAL_NUMBER is at. STEP is the wait's step (qualify, handoff, estimate,
    discount, decision, credit, deposit, qa, shipment, payment, return_authorize, return_receive,
    return_inspect, return_credit, return_ship_back, claim_diagnose, claim_close) or its key (e.g. qa-attempt-2,
    rma-0001-receive: a return's or a warranty claim's waits are its deal's).

    \b
    Every answer is proven: made in a session (`dealflow login HANDLE`, once), each answer is
    signed with the session's key; or give your one-time code with --code.

    \b
    dealflow login sofia
    dealflow answer DEAL-0001 qualify --set qualified=true --set budget=150000
    dealflow answer DEAL-0001 estimate --by mark --code 123456 --input '{"lines": [{"sku": "VMC-850", "quantity": 1}]}'
    """
    typed_sets = [f"{k}=(not recorded)" if k.strip() == "code" else item
                  for item in sets for k in [item.partition("=")[0]]]
    payload = answer_arguments(deal_number, step, lambda: _answer_payload(input_json, sets, by),
                               {"by": by or "", "input": _typed_input(input_json), "set": typed_sets})
    send_answer(deal_number, step, payload, code=code, wait=not no_wait, as_json=as_json)


def _typed_input(input_json: str | None) -> str:
    """--input as typed, for the record of a refusal; not when it may carry a one-time code."""
    if input_json and re.search(r"code|\\u00[0-9a-fA-F]{2}", input_json):
        return "(not recorded: it may carry a one-time code)"
    return input_json or ""


answer.checks_its_own_arguments = True
