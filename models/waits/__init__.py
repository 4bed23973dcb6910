"""The human steps of a deal, one module per kind (see ``WaitKind`` in ``kind.py``).

Adding a step that a person answers is: a module here declaring its ``WaitKind`` (fields,
description, rule, reminder…), its name in ``KINDS`` below and its row in ``models.plan.PLAN``
(where in the deal it comes), a migration if it stores something new, and a row in
``tests/test_waits.py``'s table. Everything else (the Prefect form, the tags of whose turn it
is, the step titles, the reminders, the README's table) is derived from these, and
``tests/test_waits.py`` checks that each kind is in the plan and the table, and the README.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from .. import prompts
from ..deal import Deal
from ..markdown import Markdown
from ..reminders import FOLLOWUP_DIGEST, MAIL_WAITING, STUCK_WAIT, Reminder, ReminderRule, ReminderRules
from .claim_close import CLAIM_CLOSE
from .claim_diagnose import CLAIM_DIAGNOSE
from .credit import CREDIT
from .decision import DECISION
from .deposit import DEPOSIT
from .discount import DISCOUNT
from .estimate import ESTIMATE
from .handoff import HANDOFF
from .kind import WaitKind
from .payment import PAYMENT
from .qa import QA
from .qualify import QUALIFY
from .return_authorize import RETURN_AUTHORIZE
from .return_credit import RETURN_CREDIT
from .return_inspect import RETURN_INSPECT
from .return_receive import RETURN_RECEIVE
from .return_ship_back import RETURN_SHIP_BACK
from .shipment import SHIPMENT

# in the order a deal meets them
KINDS: dict[str, WaitKind] = {k.name: k for k in (QUALIFY, HANDOFF, ESTIMATE, DISCOUNT, DECISION, CREDIT, DEPOSIT,
                                                  QA, SHIPMENT, PAYMENT,
                                                  # after the sale, each in its case's plan (``models.cases``)
                                                  RETURN_AUTHORIZE, RETURN_RECEIVE, RETURN_INSPECT, RETURN_CREDIT,
                                                  RETURN_SHIP_BACK, CLAIM_DIAGNOSE, CLAIM_CLOSE)}
WAIT_STEPS = tuple(KINDS)


def kind_of(step: str) -> WaitKind | None:
    return KINDS.get(step)


def describe_wait(session: Session, deal: Deal, step: str, key: str) -> Markdown:
    """The wait's description: the deal, what the kind says to decide, why a previous answer was refused."""
    kind = KINDS[step]
    return prompts.describe(session, deal, key, kind.describe(session, kind.of(session, deal, key)))


def form_start(session: Session, deal: Deal, step: str, key: str) -> dict[str, Any]:
    """What the wait's form starts with (``prefill``) and offers to pick from (``choices``)."""
    return prompts.start(session, deal, KINDS[step], key)


def read_answer(step: str, answer: dict[str, Any]) -> dict[str, Any]:
    """An answer as every door reads it before it is checked (choices in words as their codes)."""
    kind = KINDS.get(step)
    return kind.read(answer) if kind is not None else answer


def reminder_rules() -> tuple[ReminderRule, ...]:
    """Every reminder rule, once: the follow-up digest, each kind's own in the deal's order, the
    stuck-wait rule every wait falls under, and the outbox's."""
    rules: dict[str, ReminderRule] = {FOLLOWUP_DIGEST.name: FOLLOWUP_DIGEST}
    for kind in KINDS.values():
        if kind.reminder is not STUCK_WAIT:
            rules.setdefault(kind.reminder.name, kind.reminder)
    return (*rules.values(), STUCK_WAIT, MAIL_WAITING)


RULES = tuple(rule.name for rule in reminder_rules())


def steps_table() -> str:
    """The README's table of the steps a person answers, as the declarations say it."""
    rows = ["| step | what a person decides | who answers (a manager may stand in) | reminder rule |",
            "|---|---|---|---|"]
    for kind in KINDS.values():
        who = " or ".join(f"`{role}`" for role in kind.roles)
        who += " (or the customer, online)" if kind.waiting_for == "customer" else ""
        rows.append(f"| `{kind.name}` | {kind.title} | {who} | `{kind.reminder.name}` |")
    return "\n".join(rows)


def due_reminders(session: Session, now: datetime, rules: ReminderRules) -> list[Reminder]:
    return [reminder for rule in reminder_rules() for reminder in rule.scan(session, now, rules)]
