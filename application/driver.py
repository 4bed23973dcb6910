"""One way to drive a deal: its plan, turn by turn, until it is won or lost.

Each turn sends the deal's pending mail (also what a run that died mid-send left behind), asks
the database where the deal stands, and runs that step: an automatic step, or a wait for the
person whose turn it is. How each is run is the caller's: the deal's Prefect flow runs the
steps as tasks and waits by pausing its run (``flows.deal``); the scripted deals of the tests and
benchmarks (``dealflow.scenario.play_direct``) run them in-process and answer from a script.
Nothing here knows of Prefect, so both drive the same plan the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import deals

MAX_STEPS = 500  # a guard against a rule bug turning into an endless loop


class Stop(Exception):
    """Raised by a caller's ``wait`` to stop driving at a wait, which stays open."""


def _nothing(step: dict[str, Any]) -> None:  # noqa: ARG001
    return None


@dataclass(frozen=True)
class Ways:
    """How the caller runs each kind of step: ``automatic(step)`` returns its outcome;
    ``wait(step)`` returns the recorded answer ({"accepted", "outcome" or "reason"}), or raises
    ``Stop``; ``send_mail(deal_number)`` sends the deal's pending mail; ``planned(step)`` is told
    of each step before it runs (the flow tags its run), ``done(step)`` of the end."""
    automatic: Callable[[dict[str, Any]], str]
    wait: Callable[[dict[str, Any]], dict[str, Any]]
    send_mail: Callable[[str], Any]
    planned: Callable[[dict[str, Any]], None] = field(default=_nothing)
    done: Callable[[dict[str, Any]], None] = field(default=_nothing)


def drive(deal_number: str, ways: Ways, max_steps: int = MAX_STEPS) -> dict[str, Any]:
    """Drive the deal from where it stands; what it did, step by step, and how it ended
    (``status``: won, lost, or ``stopped`` at a wait when the caller's ``wait`` said Stop)."""
    steps: list[dict[str, Any]] = []
    for _ in range(max_steps):
        if deals.mail_pending(deal_number):
            ways.send_mail(deal_number)
        step = deals.plan_next_step(deal_number)
        ways.planned(step)
        if step["kind"] == "done":
            ways.done(step)
            return {"deal": deal_number, "status": step["deal_status"], "steps": steps}
        if step["kind"] == "auto":
            steps.append({"step": step["name"], "key": step["key"], "outcome": ways.automatic(step)})
            continue
        try:
            result = ways.wait(step)
        except Stop:
            return {"deal": deal_number, "status": "stopped", "at": step["key"], "steps": steps}
        steps.append({"step": step["name"], "key": step["key"], **result})
    raise RuntimeError(f"{deal_number} took more than {max_steps} steps; a rule must be looping")
