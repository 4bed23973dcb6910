"""QA tests the order's machines, one switch per check of its checklist: all passed releases it
for picking, any failed sends it to rework (and QA tests again)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..catalog import checklist_title
from ..deal import Deal, Wait
from ..errors import ValidationError
from ..markdown import Markdown
from ..orders import SalesOrder
from ..reminders import Reminder, ReminderRule, ReminderRules, not_sent_yet, staff_with
from ..staff import Role, StaffUser
from ..states import OrderStatus, WaitStatus
from ..text import one_line
from ..typed import notes_of
from .forms import Fields
from .kind import WaitKind


class QAFields(Fields):
    """QA sign-off: one switch per check of the order's checklist; all on releases the order for
    picking, any off sends it to rework. An order whose products have no checklist: passed yes/no."""
    checklist: dict[str, bool] = Field(title="Checklist", default_factory=dict,
                                       description="Switch on each check that passed.")
    passed: bool | None = Field(title="Passed?", default=None,
                                description="Did it pass? (With a checklist: passed when every check is on.)")
    notes: str = Field(title="Notes", default="", description="What was tested; for a fail, what must be reworked.")

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        props = schema.get("properties", {})
        items = cls.choices.get("checklist")
        if items is None:
            return
        if items:  # a switch per check; passed follows from them
            props["checklist"] = {**props["checklist"], "type": "object", "additionalProperties": False,
                                  "properties": {name: {"type": "boolean", "title": title, "default": False}
                                                 for name, title in items}}
            props.pop("passed", None)
            # required: the server then refuses an answer meant for another wait (it has no checks)
            schema.setdefault("required", []).append("checklist")
        else:  # nothing to check one by one: the order passes or fails as a whole
            props.pop("checklist", None)
            props["passed"] = {**props["passed"], "type": "boolean"}
            schema.setdefault("required", []).append("passed")

    @classmethod
    def fit_answer(cls, answer: dict[str, Any], schema: dict) -> dict[str, Any]:
        if "checklist" in schema.get("required", []) and "checklist" not in answer:
            return {**answer, "checklist": {}}  # `--set passed=true`: every check passed
        return answer


def at(deal: Deal) -> dict[str, Any] | None:
    order = deal.order
    return {"attempt": len(order.inspections) + 1} if order.status == OrderStatus.AWAITING_QA else None


def describe(session: Session, deal: Deal) -> Markdown:
    order = deal.order
    machines = ", ".join(f"{ln.quantity} × {ln.sku}" for ln in order.lines)
    failed = [i for i in order.inspections if not i.passed]
    items = order.qa_checklist
    text = (Markdown("test order {} ({}). Switch on each check that passed: all on releases it for picking; "
                     "any off sends it to rework (say what failed in the notes).").format(order.number, machines)
            if items else Markdown("test order {} ({}). Its products have no checklist: answer passed yes/no."
                                   ).format(order.number, machines))
    if failed:
        text += Markdown(" Attempt {} failed: {}").format(failed[-1].attempt,
                                                          " ".join(failed[-1].notes.split()).rstrip(".") + ".")
    return text


def choices(session: Session, deal: Deal) -> dict[str, Any]:
    """``checklist``: [item, title] of what QA checks on this order."""
    return {"checklist": [[item, checklist_title(item)] for item in deal.order.qa_checklist]}


def answer(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    """One yes/no per check of the order's checklist: all yes is a pass (``passed`` may say so
    too, but cannot pass a failed or unanswered check; ``passed`` alone says every check
    passed); an order whose products have no checklist is passed or failed as a whole."""
    order = deal.order
    raw_checklist = answer.get("checklist") or {}
    if not isinstance(raw_checklist, dict):
        raise ValidationError("checklist", "must say yes or no for each check")
    items = order.qa_checklist
    for name in raw_checklist:
        if name not in items:
            raise ValidationError(f"checklist.{one_line(name, 'checklist', 60, required=True)}",
                                  f"is not a check of order {order.number} (its checks: {', '.join(items) or 'none'})")
    passed = answer.get("passed")
    # "passed" with no checks named (`dealflow answer … --set passed=true`): every check passed
    checklist = {item: bool(raw_checklist.get(item, False) if raw_checklist else passed is True) for item in items}
    if passed is None:
        if not items:
            raise ValidationError("passed", f"order {order.number} has no checklist: say whether it passed")
        passed = all(checklist.values())
    passed = bool(passed)
    inspection = order.record_inspection(person, passed, notes_of(answer, "notes"), checklist)
    if not passed:
        return f"attempt {inspection.attempt} failed: rework"
    order.release_for_picking(person)
    return f"attempt {inspection.attempt} passed; released for picking"


def qa_pending(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    """The QA team, when an order has waited for QA N days."""
    today = now.date()
    # counted from when the current QA wait opened (after a failed attempt: from the rework)
    rows = session.execute(select(SalesOrder, Wait.opened_at).join(Wait, (Wait.deal_id == SalesOrder.deal_id)
                                                                 & (Wait.step == "qa") & (Wait.status == WaitStatus.OPEN))
                           .where(SalesOrder.status == OrderStatus.AWAITING_QA,
                                  Wait.opened_at <= now - timedelta(days=rules.qa_pending_days),
                                  not_sent_yet("qa-pending", SalesOrder.id, today))).all()
    for order, since in rows:
        days = (now - since).days
        for person in staff_with(session, Role.QA):
            yield Reminder("qa-pending", order.id, person.email, today,
                           f"QA pending {days} days: {order.number} ({order.deal.customer_name})",
                           "emails/staff_reminder",
                           {"name": person.name, "title": f"Order {order.number} is waiting for QA sign-off",
                            "lines": [f"{ln.quantity} × {ln.sku}" for ln in order.lines]
                            + [f"waiting since {since:%Y-%m-%d} ({days} days), "
                               f"{len(order.inspections)} inspections so far"],
                            "number": order.number}, deal_id=order.deal_id, about=order.number)


QA = WaitKind(
    name="qa", title="QA sign-off", roles=(Role.QA,),
    at=at, key=lambda facts: f"qa-attempt-{facts['attempt']}",
    fields=QAFields, describe=describe, choices=choices, answer=answer,
    reminder=ReminderRule("qa-pending", qa_pending))
