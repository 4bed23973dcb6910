"""The sales engineer prepares an estimate revision: its lines from the catalogue, quantities and
discounts. Revision 1 after the hand-off; the next after the customer asked for changes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ..catalog import shortages, sku_of
from ..clock import utcnow
from ..deal import Deal
from ..estimates import Estimate
from ..markdown import Markdown
from ..prompts import catalogue_labels, lines_table, money, what_sales_learned
from ..reminders import STUCK_WAIT
from ..staff import Role, StaffUser
from ..states import RevisionStatus
from ..typed import notes_of
from .forms import Amount, Fields, pick
from .kind import WaitKind


class EstimateLineFields(BaseModel):
    sku: str = Field(title="Product", description="Pick it from the catalogue (price and stock shown); "
                                                   "`dealflow answer` takes the SKU, e.g. CNC-LATHE-2000.")
    # the bounds go into the form's schema only, so that the form refuses them before it is sent;
    # every other door (the CLI, an import) gets the rule's own words from the domain
    quantity: int = Field(title="Quantity", description="How many; a whole number greater than zero.",
                          json_schema_extra={"minimum": 1})
    discount_pct: Amount = Field(title="Discount %", default=0, validate_default=True,
                                 description="Discount on this line, 0 to 100 %.",
                                 json_schema_extra={"minimum": 0, "maximum": 100})


class EstimateFields(Fields):
    """Prepare the estimate's lines."""
    lines: list[EstimateLineFields] = Field(title="Lines", description="The estimate's lines; totals are computed from them.")
    valid_days: int = Field(title="Valid for (days)", default=30, description="How many days the estimate stays valid (1-365).")
    notes: str = Field(title="Notes", default="", description="Notes printed on the estimate for the customer.")

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        pick(schema, "lines", EstimateLineFields, cls.choices.get("products", []))

    @classmethod
    def fit_answer(cls, answer: dict[str, Any], schema: dict) -> dict[str, Any]:
        try:
            listed = schema["properties"]["lines"]["items"]["properties"]["sku"]["enum"]
        except (KeyError, TypeError):
            return answer
        by_sku = {sku_of(label): label for label in listed}
        lines = [{**ln, "sku": by_sku.get(ln.get("sku"), ln.get("sku"))} if isinstance(ln, dict) else ln
                 for ln in answer.get("lines") or []]
        return {**answer, "lines": lines}


REDRAFT = ("changes_requested", "returned")  # the customer asked for changes; a manager sent it back


def at(deal: Deal) -> dict[str, Any] | None:
    latest = deal.estimate.latest if deal.estimate else None
    if latest is None or latest.status in REDRAFT:
        return {"revision": latest.revision + 1 if latest else 1}
    return None


def describe(session: Session, deal: Deal) -> Markdown:
    latest = deal.estimate.latest if deal.estimate else None
    if latest is None:
        budget = deal.lead.budget
        return Markdown("prepare estimate revision 1: a line per product (pick it from the list, with its price "
                        "and stock), quantity and discount %. Budget {}, timeline {}."
                        ).format(money(budget, deal.currency) if budget is not None else "not given",
                                 deal.lead.timeline or "not given") + what_sales_learned(deal)
    if latest.status == RevisionStatus.RETURNED:
        return Markdown('prepare revision {}. {} sent revision {} back: "{}" The form starts with its lines: '
                        'change what was asked.\n\n{}').format(
            latest.revision + 1, latest.discount_decided_by.name, latest.revision, latest.discount_reason,
            lines_table(latest.lines, deal.currency)) + what_sales_learned(deal)
    cr = latest.change_request
    return Markdown('prepare revision {}. The customer asked on {}: "{}" The form starts with the lines of '
                    '{}: change what was asked.\n\n{}').format(
        latest.revision + 1, latest.number, cr.text if cr else "-", latest.number,
        lines_table(latest.lines, deal.currency)) + what_sales_learned(deal)


def prefill(session: Session, deal: Deal, typed: dict[str, Any] | None) -> dict[str, Any]:
    """What was typed, else the previous revision's lines and notes; each line as the catalogue
    select shows it now (a product retired since: its line is dropped)."""
    latest = deal.estimate.latest if deal.estimate else None
    if typed is not None:
        start = dict(typed)
    elif latest is not None:
        start = {"lines": [{"sku": ln.sku, "quantity": ln.quantity, "discount_pct": str(ln.discount_pct)}
                           for ln in latest.lines], "notes": latest.notes}
    else:
        return {}
    if isinstance(start.get("lines"), list):
        labels = catalogue_labels(session, deal.currency)
        start["lines"] = [{**ln, "sku": labels[str(sku_of(ln.get("sku", "")))]} for ln in start["lines"]
                          if isinstance(ln, dict) and str(sku_of(ln.get("sku", ""))) in labels]
    return start


def choices(session: Session, deal: Deal) -> dict[str, Any]:
    """``products``: the catalogue, as labels with price and stock."""
    return {"products": list(catalogue_labels(session, deal.currency).values())}


def listed_skus(answer: dict[str, Any]) -> dict[str, Any]:
    """An estimate's lines as picked from the catalogue select ("SKU — name — price — stock"),
    read as their SKUs: what is recorded, signed and checked."""
    lines = answer.get("lines")
    if not isinstance(lines, list):
        return answer
    return {**answer, "lines": [{**ln, "sku": sku_of(ln.get("sku"))} if isinstance(ln, dict) else ln
                                for ln in lines]}


def answer(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    estimate = deal.estimate
    if estimate is None:
        estimate = Estimate(deal=deal)
        session.add(estimate)
    rev = estimate.draft_revision(session, answer.get("lines") or [], person, on=utcnow().date(),
                                  valid_days=answer.get("valid_days", 30), notes=notes_of(answer, "notes"))
    short = shortages(session, [(ln.product, ln.quantity) for ln in rev.lines])
    held = (f"; {rev.discount_asked_pct.normalize():f} % discount waits for a manager's approval (limit "
            f"{rev.discount_limit_pct.normalize():f} %)" if rev.discount_pending else "")
    return f"revision {rev.revision} drafted, total {rev.totals.total} {deal.currency}" + held + (
        f"; more than is available: {'; '.join(short)}" if short else "")


def engineer(deal: Deal) -> str | None:
    opp = deal.opportunity
    return opp.engineer.handle if opp is not None and opp.engineer is not None else None


ESTIMATE = WaitKind(
    name="estimate", title="the estimate", roles=(Role.SALES_ENGINEER,),
    at=at, key=lambda facts: f"estimate-rev-{facts['revision']}", assignee=engineer,
    fields=EstimateFields, describe=describe, prefill=prefill, choices=choices, answer=answer,
    normalize=listed_skus, reminder=STUCK_WAIT)
