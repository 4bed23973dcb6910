"""A deal's timeline: each audit entry as a sentence the sales floor and the service desk read
('Sofia Marin qualified the lead', 'Morgan Lee refused return RMA-0002: …'), not
'qualify.answered qualify'. Whatever a person typed in it (a reason, an issue, a note) is
escaped when the sentence becomes Markdown."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from models.markdown import Markdown
from models.waits import KINDS

# what each step is, as the team says it (each wait kind names itself)
STEP_TITLES = {name: kind.title for name, kind in KINDS.items()}
# the cases after a sale: the first part of their waits' keys, and their steps' prefix
CASE_KEYS = {"rma": "return", "wc": "claim"}
# what happened on a return or a warranty claim ({who}, {subject}: its number, and the entry's details)
AFTER_SALE = {
    "return.requested": "{who} recorded return request {subject}: {reason}",
    "return.authorized": "{who} authorized return {subject}{fee}",
    "return.refused": "{who} refused return {subject}: {reason}",
    "return.rma_sent": "{subject} (the RMA) was sent to the customer",
    "return.received": "{who} received the goods of return {subject}",
    "return.inspected": "{who} inspected the goods of return {subject}",
    "return.closed": "Return {subject} was closed",
    "return.shipped_back": "{who} shipped the repaired units back to the customer ({subject}: {carrier} "
                           "{tracking_number})",
    "claim.opened": "{who} opened warranty claim {subject} on serial number {serial}: {issue}",
    "claim.diagnosed": "{who} diagnosed warranty claim {subject}: {diagnosis}",
    "claim.closed": "{who} closed warranty claim {subject}: {note}",
}


def step_of_key(key: str) -> str:
    """The step a wait's key is of: ``qa-attempt-2`` -> qa, ``rma-0001-authorize-retry-1`` ->
    return_authorize (a case's wait key: its case's number, then the step)."""
    parts = key.split("-")
    if parts[0] in CASE_KEYS and len(parts) > 2:
        rest = "-".join(parts[2:]).split("-retry-")[0]
        return f"{CASE_KEYS[parts[0]]}_{rest.replace('-', '_')}"
    return parts[0]


def _fee(details: dict[str, Any]) -> str:
    try:
        pct = Decimal(str(details.get("restocking_fee_pct") or 0))
    except InvalidOperation:
        return ""
    return f" with a {format(pct.normalize(), 'f')} % restocking fee" if pct > 0 else ""


class _Details(dict):
    """An entry's details as words; one it lacks reads '?'."""

    def __missing__(self, key: str) -> str:
        return "?"


def _after_sale(action: str, who: str, subject: str, details: dict[str, Any]) -> str:
    words = {key: " ".join(str("" if value is None else value).split()) or "?" for key, value in details.items()}
    return AFTER_SALE[action].format_map(_Details(words, who=who, subject=subject, fee=_fee(details)))


def happened(entry, names: dict[str, str]) -> Markdown:
    """An audit entry as a sentence: 'Sofia Marin qualified the lead', not 'qualify.answered qualify'."""
    who = names.get(entry.actor, entry.actor)
    action, subject, details = entry.action, entry.subject, entry.details or {}
    outcome = str(details.get("outcome") or "")
    step, _, verb = action.partition(".")
    said = {
        "deal.started": "{who} started the deal",
        "deal.flow_attached": "The deal's run started in Prefect",
        "lead.converted": "The lead became an opportunity",
        "estimate.sent": "Estimate {subject} was sent to the customer",
        "estimate.renewal_requested": "The customer asked for a renewed estimate",
        "order.created": "Order {subject} was made",
        "deposit_invoice.created": "Deposit invoice {subject} was issued",
        "credit_note.issued": "Credit note {subject} was issued",
        "order.released": "Order {subject} was released for picking",
        "receipt.created": "Sales receipt {subject} was made",
        "invoice.created": "Invoice {subject} was issued",
        "deal.won": "The deal is won",
        "followup.scheduled": "{who} scheduled a follow-up",
        "followup.done": "{who} did a follow-up",
        "opportunity.stage": "{who} moved the opportunity on",
        "estimate.discount_lowered": "{who} lowered the discount on estimate {subject}",
    }
    if action in said:
        text = said[action].format(who=who, subject=subject)
    elif action in AFTER_SALE:
        text = _after_sale(action, who, subject, details)
    elif action == "wait.opened":
        step = step_of_key(subject)
        case = "-".join(subject.split("-")[:2]).upper() if step.startswith(("return_", "claim_")) else ""
        text = f"Waiting for {STEP_TITLES.get(step, subject)}" + (f" ({case})" if case and step in STEP_TITLES else "")
    elif action == "deal.cancelled":
        text = f"{who} cancelled the deal: {' '.join(str(details.get('reason') or '?').split())}"
    elif action == "credit.held":
        text = f"The order of estimate {subject} went on credit hold: {details.get('why') or '?'}"
    elif action == "credit.rejected":
        text = f"{who} declined the order of estimate {subject} on credit: {details.get('reason') or '?'}"
    elif action == "qualify.answered":
        text = f"{who} {'disqualified' if outcome == 'disqualified' else 'qualified'} the lead"
    elif action == "handoff.answered":
        engineer = outcome.removeprefix("assigned to ")
        text = f"{who} handed the deal to {names.get(engineer, engineer)}"
    elif verb == "answered":
        text = f"{who} answered {STEP_TITLES.get(step, step)}" + (f": {outcome}" if outcome else "")
    elif verb == "refused":
        text = f"{who}'s answer to {STEP_TITLES.get(step, step)} was refused: {details.get('reason') or '?'}"
    elif action == "answer.tampered":
        text = f"An answer to {subject} was refused: it was not the one its person sent"
    else:
        text = f"{action} {subject}"
    return Markdown("{}").format(text[:200])
