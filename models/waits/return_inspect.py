"""QA inspects a return's units: each is put back into stock (once), scrapped or sent to repair."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ..markdown import Markdown
from ..reminders import STUCK_WAIT
from ..return_steps import inspect, outcome_words
from ..returns import OUTCOME_WORDS, OUTCOMES, ReturnOrder
from ..staff import Role, StaffUser
from ..states import ReturnStatus
from ..typed import notes_of
from .forms import Fields, as_offered, inline, words_only
from .kind import WaitKind
from .of_case import case_key, case_of_key, goods, header


class InspectedLineFields(BaseModel):
    sku: str = Field(title="SKU", description="A SKU that came back.")
    serial: str = Field(title="Serial number", default="", description="The unit's serial number, if it has one.")
    quantity: int = Field(title="Quantity", default=1, description="How many units this row decides (1 for a "
                                                                   "serial number).", json_schema_extra={"minimum": 1})
    outcome: Literal[(*OUTCOME_WORDS, *OUTCOMES)] = Field(  # type: ignore[valid-type]
        title="Outcome", description="put back into stock, scrap it, or send to repair.")


class ReturnInspectFields(Fields):
    """Inspect what came back: one outcome per unit."""
    lines: list[InspectedLineFields] = Field(title="Units", default_factory=list,
                                             description="One row per serial number, one per SKU otherwise; split a "
                                                         "SKU's units over rows for different outcomes.")
    notes: str = Field(title="Notes", default="", description="What was found.")
    words: ClassVar[dict[str, dict[str, str]]] = {}

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        if "lines" not in schema.get("properties", {}):
            return
        items = inline(InspectedLineFields)  # written out in place, its outcome in words
        words_only(items, "outcome", OUTCOME_WORDS)
        schema["properties"]["lines"]["items"] = items

    @classmethod
    def fit_answer(cls, answer: dict[str, Any], schema: dict) -> dict[str, Any]:
        rows = [as_offered(dict(row), {"properties": {"outcome": {"enum": list(OUTCOME_WORDS)}}}, "outcome",
                           OUTCOME_WORDS) if isinstance(row, dict) else row for row in answer.get("lines") or []]
        return {**answer, "lines": rows} if rows else answer


def at(ret: ReturnOrder) -> dict[str, Any] | None:
    return {} if ret.status == ReturnStatus.RECEIVED else None


def describe(session: Session, ret: ReturnOrder) -> Markdown:
    return Markdown("inspect what came back on {}: for each unit, put it back into stock, scrap it or send it to "
                    "repair. Restocked units go back into stock now.\n\n{}\n\n{}").format(
        ret.number, header(ret), goods(ret, received=True))


def prefill(session: Session, ret: ReturnOrder, typed: dict[str, Any] | None) -> dict[str, Any]:
    if typed is not None:
        return typed
    rows: list[dict[str, Any]] = []
    for ln in ret.lines:
        received = [rs.serial.serial for rs in ln.serials if rs.received]
        if received:
            rows += [{"sku": ln.sku, "serial": s, "quantity": 1, "outcome": "put back into stock"} for s in received]
        elif ln.received_qty:
            rows.append({"sku": ln.sku, "serial": "", "quantity": ln.received_qty, "outcome": "put back into stock"})
    return {"lines": rows}


def _read(answer: dict[str, Any]) -> dict[str, Any]:
    rows = [{**row, "outcome": OUTCOME_WORDS.get(row.get("outcome"), row.get("outcome"))}
            if isinstance(row, dict) else row for row in answer.get("lines") or []]
    return {**answer, "lines": rows} if "lines" in answer else answer


def answer(session: Session, ret: ReturnOrder, person: StaffUser, answer: dict[str, Any]) -> str:
    inspect(session, ret, person, list(_read(answer).get("lines") or []), notes_of(answer, "notes", 4000))
    return f"{ret.number} inspected: {outcome_words(ret)}"


RETURN_INSPECT = WaitKind(
    name="return_inspect", title="inspecting a return", roles=(Role.QA,),
    at=at, key=case_key("inspect"), fields=ReturnInspectFields, describe=describe, prefill=prefill,
    answer=answer, reminder=STUCK_WAIT, case="return", subject=case_of_key, normalize=_read)
