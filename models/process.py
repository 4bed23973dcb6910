"""The life of a deal as rules: where a deal stands, and what each step does to it.

``next_step`` reads only the database, so a flow that re-runs from its top continues where the
deal really is. Each automatic step looks up before it creates (one order per approved revision,
one receipt per pick release, one invoice per order), so running it twice changes nothing.

    qualify* -> convert -> handoff* -> estimate* -> send_estimate -> decision*
      (request_changes -> estimate* again; decline -> lost)
    -> create_order -> qa* (fail -> qa* again; none for accessories only) -> receipt -> shipment* (until all shipped)
    -> invoice -> payment* (until paid) -> close -> done          (* = a person answers)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from . import audit, identity, portal, prompts
from .audit import recordable
from .base import utcnow
from .billing import Invoice, InvoiceLine
from .catalog import issue, product_by_sku, shortages, sku_of
from .choices import coded as _coded
from .choices import in_words  # noqa: F401 - the doors send answers in the form's words
from .crm import STAGES, Contact, Customer, Lead, Opportunity, StageChange
from .customers import customer_of_lead
from .deal import Deal, Wait
from .documents import (
    estimate_context,
    invoice_context,
    order_context,
    payment_context,
    receipt_context,
    shipment_context,
)
from .errors import DomainError, InvalidTransition, NotFound, ValidationError, WaitNotOpen
from .estimates import Estimate, EstimateLine, EstimateRevision
from .money import parse_money
from .numbering import next_number
from .orders import SalesOrder, SalesOrderLine, SalesReceipt, Shipment, ShipmentLine
from .outbox import add_document, queue_email
from .staff import Role, StaffUser, staff_member
from .text import bounded, one_line, printable, shown

SYSTEM = "system"
PAYMENT_TERMS_DAYS = 30



@dataclass(frozen=True)
class Step:
    name: str
    kind: str  # "wait", "auto" or "done"
    key: str = ""
    roles: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def is_wait(self) -> bool:
        return self.kind == "wait"


def _wait(session: Session, deal: Deal, step: str, base_key: str, **facts: Any) -> Step:
    """A wait's key is deterministic: the base key, then -retry-N after N refused answers."""
    refused = session.scalar(select(func.count()).select_from(Wait).where(
        Wait.deal_id == deal.id, Wait.status == "refused",
        (Wait.key == base_key) | Wait.key.like(f"{base_key}-retry-%")))
    key = base_key if not refused else f"{base_key}-retry-{refused}"
    return Step(step, "wait", key, WAITS[step].roles, facts)


def next_step(session: Session, deal: Deal) -> Step:
    if not deal.is_open:
        return Step("done", "done", deal.status)
    lead = deal.lead
    if lead.status == "new":
        return _wait(session, deal, "qualify", "qualify")
    if lead.status == "qualified":
        return Step("convert", "auto", f"convert-{deal.number}")
    opp = deal.opportunity
    if opp.engineer_id is None:
        return _wait(session, deal, "handoff", "handoff")
    latest = deal.estimate.latest if deal.estimate else None
    if latest is None or latest.status == "changes_requested":
        n = latest.revision + 1 if latest else 1
        return _wait(session, deal, "estimate", f"estimate-rev-{n}", revision=n)
    if latest.status == "draft":
        return Step("send_estimate", "auto", f"send-estimate-rev-{latest.revision}")
    if latest.status == "sent":
        return _wait(session, deal, "decision", portal.decision_key(latest.revision), revision=latest.revision)
    order = deal.order
    if order is None:
        return Step("create_order", "auto", f"order-from-rev-{latest.revision}")
    if order.status == "awaiting_qa":
        n = len(order.inspections) + 1
        return _wait(session, deal, "qa", f"qa-attempt-{n}", attempt=n)
    if order.pick_release.receipt is None:
        return Step("receipt", "auto", f"receipt-{order.number}")
    if not order.is_fully_shipped:
        n = len(order.shipments) + 1
        return _wait(session, deal, "shipment", f"shipment-{n}", seq=n)
    invoice = deal.invoice
    if invoice is None:
        return Step("invoice", "auto", f"invoice-{order.number}")
    if invoice.status != "paid":
        n = len(invoice.payments) + 1
        return _wait(session, deal, "payment", f"payment-{n}", seq=n)
    return Step("close", "auto", f"close-{deal.number}")


def whose_turn(deal: Deal, step: Step) -> tuple[str | None, str | None]:
    """(who the deal waits for: a role, or the customer; the person it is assigned to, if one):
    for the runs list's "my work". The customer's decision is followed up by the engineer, who
    also records a decision given by phone."""
    if not step.is_wait:
        return None, None
    opp = deal.opportunity
    engineer = opp.engineer.handle if opp is not None and opp.engineer is not None else None
    if step.name in ("qualify", "handoff"):
        return Role.SALES_REP, deal.owner.handle
    if step.name == "estimate":
        return Role.SALES_ENGINEER, engineer
    if step.name == "decision":
        return "customer", engineer
    return step.roles[0], None  # a team's queue (QA, delivery, finance): whoever of them is free


# --- starting a deal ------------------------------------------------------------------------

def start_deal(session: Session, lead_id: int, by: str = SYSTEM) -> Deal:
    """One deal per lead: starting it twice returns the first."""
    existing = session.scalars(select(Deal).where(Deal.lead_id == lead_id)).one_or_none()
    if existing is not None:
        return existing
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFound("lead", lead_id)
    deal = Deal(number=next_number(session, "deal"), lead=lead, owner_id=lead.owner_id)
    session.add(deal)
    session.flush()
    audit.record(session, by, "deal.started", deal_id=deal.id, subject=deal.number, lead=lead.id)
    return deal


def attach_flow_run(session: Session, deal: Deal, flow_run_id: str) -> bool:
    """The flow run that drives the deal; True if it changed."""
    if deal.flow_run_id == flow_run_id:
        return False
    deal.flow_run_id = flow_run_id
    audit.record(session, SYSTEM, "deal.flow_attached", deal_id=deal.id, subject=flow_run_id)
    return True


# --- waits: open, answer, refuse ------------------------------------------------------------

def open_wait(session: Session, deal: Deal, step: Step, description: str | Callable[[], str],
              flow_run_id: str | None) -> Wait:
    """Record that the deal waits here. Opening the same wait again returns it (and does not
    describe it again: ``description`` may be a function, called only for a new wait)."""
    wait = session.scalars(select(Wait).where(Wait.deal_id == deal.id, Wait.key == step.key)).one_or_none()
    if wait is not None:
        if flow_run_id and wait.flow_run_id != flow_run_id and wait.status == "open":
            wait.flow_run_id = flow_run_id
            wait.form_stored_at = None
        return wait
    wait = Wait(deal=deal, key=step.key, step=step.name, roles=",".join(step.roles),
                description=description() if callable(description) else description, flow_run_id=flow_run_id)
    session.add(wait)
    session.flush()
    audit.record(session, SYSTEM, "wait.opened", deal_id=deal.id, subject=step.key, roles=wait.roles)
    return wait


def find_open_wait(session: Session, deal: Deal, step_or_key: str) -> Wait:
    wait = deal.open_wait
    if wait is None or step_or_key not in (wait.step, wait.key):
        online = deal.estimate.latest.customer_answer if deal.estimate and deal.estimate.latest else None
        if step_or_key.startswith("decision") and online is not None:  # the customer was first
            raise WaitNotOpen(deal.number, step_or_key, [wait.step] if wait else [],
                              f"the customer already answered online: {portal.DONE[online.action]} ({online.name}, "
                              f"{online.submitted_at:%Y-%m-%d %H:%M} UTC); the first answer wins")
        if not deal.is_open:
            raise WaitNotOpen(deal.number, step_or_key, [], f"the deal is {deal.status}")
        raise WaitNotOpen(deal.number, step_or_key, [wait.step] if wait else [])
    return wait


def staff_by_handle(session: Session, handle: str, field_name: str = "by", *, lock: bool = False) -> StaffUser:
    return staff_member(session, handle, field_name, lock=lock)  # checked before the database sees it


@dataclass(frozen=True)
class AnswerCheck:
    """How answers are proven where they are checked: the cipher of this installation's secret
    key (None: not available here), and whether a code or a signed session is required."""
    cipher: identity.Cipher | None
    codes_required: bool = True
    door: str = "flow"
    link_secret: bytes | None = None  # checks a customer's signed answer from the portal
    seal_key: bytes | None = None  # checks the gateway's seal of a signed-in person's answer


def prove_answer(session: Session, deal: Deal, wait: Wait, answer: dict[str, Any], proof: dict[str, Any],
                 check: AnswerCheck, *, consume: bool, sent: dict[str, Any] | None = None) -> identity.Proven:
    """Who answers, and the proof that it is them (see ``models.identity``). A code is used up only
    with ``consume`` (the flow, after the resume); ``dealflow answer`` checks first without."""
    person = staff_by_handle(session, answer.get("by", ""), lock=consume)  # a code is used up once, also in a race
    return identity.prove(session, person, wait.role_list, wait.step, proof, deal.number, wait.key, answer,
                          cipher=check.cipher, codes_required=check.codes_required, consume=consume,
                          door=check.door, seal_key=check.seal_key, sent=sent)


def apply_answer(session: Session, deal: Deal, wait: Wait, answer: dict[str, Any], proven: identity.Proven) -> str:
    """Apply a proven answer (without its proof) to the business and close the wait.
    Raises a DomainError, with nothing applied, if the answer breaks a rule."""
    person = proven.person
    outcome = WAITS[wait.step].answer(session, deal, person, answer)
    wait.close("answered", person.handle, recordable(answer), proof=proven.kind, stand_in_for=proven.stands_in_for)
    extra = {"stands_in_for": proven.stands_in_for} if proven.stands_in_for else {}
    audit.record(session, person.handle, f"{wait.step}.answered", deal_id=deal.id, subject=wait.key,
                 outcome=outcome, answer=recordable(answer), proof=proven.kind, **extra)
    return outcome


def _tried(proof: dict[str, Any]) -> str:
    """Which proof an answer came with, for the record (never the proof itself)."""
    if proof.get("portal"):
        return portal.BY_LINK
    if proof.get("seal"):
        return identity.BY_GATEWAY
    if proof.get("session") or proof.get("signature"):
        return identity.BY_SESSION
    return identity.BY_CODE if proof.get("code") else "none"


def refuse_answer(session: Session, wait: Wait, answer: dict[str, Any], reason: str, door: str = "flow",
                  proof: dict[str, Any] | None = None) -> None:
    proof, answer = identity.split_proof({**answer, **(proof or {})})
    by = printable(answer.get("by", "") or "?", 40)  # whatever was typed, made safe to record
    wait.close("refused", by, recordable(answer), printable(reason, 2000), proof=_tried(proof))
    audit.record(session, by, f"{wait.step}.refused", deal_id=wait.deal_id, subject=wait.key,
                 reason=printable(reason, 2000), answer=recordable(answer), door=door, proof=_tried(proof))


def record_refused_attempt(session: Session, deal_number: str, step: str, answer: dict[str, Any], reason: str,
                           door: str) -> None:
    """An answer refused before it reached the flow (``dealflow answer`` checks it first): the
    audit log keeps it as it keeps the flow's refusals, with the door it came through. The caller
    commits, in a transaction of its own."""
    from .deal import deal_by_number

    try:
        deal = deal_by_number(session, deal_number)
    except DomainError:
        deal = None
    wait = deal.open_wait if deal is not None else None
    if wait is not None and step not in (wait.step, wait.key):
        wait = None
    proof, answer = identity.split_proof(answer) if isinstance(answer, dict) else ({}, answer)
    by = answer.get("by", "") if isinstance(answer, dict) else ""
    audit.record(session, printable(by or "?", 40), f"{wait.step if wait else printable(step, 30)}.refused",
                 deal_id=deal.id if deal else None, subject=printable(wait.key if wait else step, 60),
                 reason=printable(reason, 2000), answer=recordable(answer), door=door, proof=_tried(proof))


def locked_wait(session: Session, deal: Deal, key: str) -> Wait:
    """The wait row, locked: two answers racing for one wait are recorded one after the other."""
    wait = session.scalars(select(Wait).where(Wait.deal_id == deal.id, Wait.key == key)
                           .with_for_update().execution_options(populate_existing=True)).one_or_none()
    if wait is None:
        raise WaitNotOpen(deal.number, key, [deal.open_wait.key] if deal.open_wait else [])
    return wait


def answer_wait(session: Session, deal: Deal, key: str, answer: dict[str, Any], check: AnswerCheck,
                sent: dict[str, Any] | None = None) -> dict[str, Any]:
    """Prove and apply an answer to the wait ``key``, or, if the proof fails or the answer breaks a
    rule, record the refusal instead: the business change and the refusal never both happen (a
    savepoint separates them). A seal is used up, and a wrong signature counted, either way.
    ``sent``: the answer exactly as stored, which a gateway's seal covers."""
    wait = locked_wait(session, deal, key)
    if wait.status != "open":
        return {"accepted": wait.status == "answered", "outcome": "already recorded",
                "reason": wait.refusal_reason}
    proof, body = identity.split_proof(answer)
    body = normalized(wait.step, body)
    if proof.get("portal") not in (None, ""):
        return _answer_as_customer(session, deal, wait, key, body, proof, check)
    try:
        proven = prove_answer(session, deal, wait, body, proof, check, consume=True, sent=sent)
    except DomainError as exc:
        reason = str(exc)
    except (TypeError, ValueError, UnicodeError) as exc:  # a proof no form makes (sent straight to the API)
        reason = f"code: not a proof dealflow can read ({type(exc).__name__})"
    else:
        session.flush()  # the code is used up, whatever the business rules say next
        try:
            with session.begin_nested():
                outcome = apply_answer(session, deal, wait, body, proven)
            return {"accepted": True, "outcome": outcome, "by": wait.answered_by, "proof": proven.kind,
                    "stands_in_for": proven.stands_in_for}
        except DomainError as exc:
            reason = str(exc)
        except (DataError, OverflowError, ArithmeticError) as exc:  # a value the database cannot hold
            reason = f"answer: a value is out of range ({type(exc).__name__})"
        session.expire_all()
        wait = locked_wait(session, deal, key)
    refuse_answer(session, wait, body, reason, proof=proof)
    return {"accepted": False, "reason": reason}


def _answer_as_customer(session: Session, deal: Deal, wait: Wait, key: str, body: dict[str, Any],
                        proof: dict[str, Any], check: AnswerCheck) -> dict[str, Any]:
    """The customer's own answer from the portal: its signed answer is the proof (see
    ``models.portal``); recorded as the customer's, with what they typed and saw."""
    try:
        if wait.step != "decision":
            raise identity.ProofRefused(f"portal: a customer answers only the estimate decision, not {wait.step}")
        signed = portal.prove_customer(session, deal, wait, body, proof.get("portal"), check.link_secret)
        with session.begin_nested():
            outcome = _decide(session, deal, portal.ACTIONS[signed.action], signed.name[:40], "portal",
                              note="", po=signed.po_number,
                              text=signed.text,
                              mover=deal.estimate.latest.prepared_by, on=signed.submitted_on)
            portal.record_customer_answer(session, deal, wait, signed)
            by = portal.answered_by_customer(signed)
            record = {**portal.as_answered(signed), "decision": portal.ACTIONS[signed.action],  # recorded as a code
                      "ip": signed.ip, "user_agent": signed.user_agent,
                      "pdf_sha256": signed.pdf_sha256, "submitted_at": signed.at}  # what the customer signed
            wait.close("answered", by, record, proof=portal.BY_LINK)
            audit.record(session, by, "decision.answered", deal_id=deal.id, subject=wait.key, outcome=outcome,
                         answer=record, proof=portal.BY_LINK, door="portal")
        return {"accepted": True, "outcome": outcome, "by": by, "proof": portal.BY_LINK, "stands_in_for": None}
    except DomainError as exc:
        reason = str(exc)
    except (DataError, OverflowError, ArithmeticError) as exc:
        reason = f"answer: a value is out of range ({type(exc).__name__})"
    session.expire_all()
    wait = locked_wait(session, deal, key)
    refuse_answer(session, wait, body, reason, door="portal", proof=proof)
    return {"accepted": False, "reason": reason}


# --- what each answer does --------------------------------------------------------------------

def _line(answer: dict[str, Any], name: str, max_len: int = 80, required: bool = False) -> str:
    return one_line(answer.get(name), name, max_len, required)


def _notes(answer: dict[str, Any], name: str, max_len: int = 4000) -> str:
    return bounded(answer.get(name), name, max_len)


MAX_QUANTITY = 100_000
MAX_LINES = 200


def _quantity(value: Any, name: str) -> int:
    return _int(value, name, limit=MAX_QUANTITY, positive=True)


def _int(value: Any, name: str, limit: int = 10**9, positive: bool = False) -> int:
    """A whole number someone typed (12, "12", 12.0), at most ``limit`` in size (and above zero
    if ``positive``), checked before it becomes a Python int (a typed 1e999999999 would
    otherwise take all memory)."""
    if isinstance(value, bool):
        raise ValidationError(name, f"must be a whole number, got {shown(value)}")
    try:
        number = Decimal(str(value).strip())
    except Exception:
        raise ValidationError(name, f"must be a whole number, got {shown(value)}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValidationError(name, f"must be a whole number, got {shown(value)}")
    if positive and number <= 0:
        raise ValidationError(name, "must be greater than zero")
    if abs(number) > limit:
        raise ValidationError(name, f"must be at most {limit:,}")
    return int(number)


def _qualify(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    lead = deal.lead
    notes = _notes(answer, "notes")
    if not answer.get("qualified"):
        lead.disqualify(notes or "not qualified")
        deal.close_lost(f"lead disqualified: {notes}")
        return "disqualified"
    budget = answer.get("budget")
    budget = parse_money(budget, "budget") if budget not in (None, "") else None
    lead.qualify(notes, budget, _line(answer, "timeline", 120))
    return "qualified"


def _handoff(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    note = _notes(answer, "note", 2000)  # shown to the engineer on the estimate form, the deal's page and `deal show`
    engineer = staff_by_handle(session, answer.get("engineer"), "engineer")
    deal.opportunity.hand_to(engineer, note, by=person)
    return f"assigned to {engineer.handle}"


def _estimate(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    lines = answer.get("lines") or []
    if not lines:
        raise ValidationError("lines", "an estimate needs at least one line")
    if len(lines) > MAX_LINES:
        raise ValidationError("lines", f"an estimate has at most {MAX_LINES} lines, got {len(lines)}")
    valid_days = _int(answer.get("valid_days", 30), "valid_days")
    if not 1 <= valid_days <= 365:
        raise ValidationError("valid_days", "must be between 1 and 365")
    estimate = deal.estimate
    if estimate is None:
        estimate = Estimate(deal=deal)
        session.add(estimate)
    rev_no = len(estimate.revisions) + 1
    rev = EstimateRevision(revision=rev_no, valid_until=_today() + timedelta(days=valid_days),
                           notes=_notes(answer, "notes"), prepared_by=person)
    from .company import the_company
    from .prices import quote, rate_on

    own = the_company(session).currency
    quotes = []
    seen = set()
    for i, raw in enumerate(lines, start=1):
        where = f"Line {i}"
        sku = str(sku_of(raw.get("sku", ""))).strip()
        product = product_by_sku(session, sku, f"{where}, product")
        sku = product.sku  # as the catalogue spells it (a SKU is matched whatever its case)
        if not product.active:
            raise ValidationError(f"{where}, product", f"{sku} is retired: no longer offered in new estimates")
        if sku in seen:
            raise ValidationError(f"{where}, product", f"{sku} appears twice; put the quantity on one line")
        seen.add(sku)
        qty = _quantity(raw.get("quantity"), f"{where}, quantity")
        disc = parse_money(raw.get("discount_pct") or 0, f"{where}, discount %")
        if not 0 <= disc <= 100:
            raise ValidationError(f"{where}, discount %", "must be between 0 and 100")
        priced = quote(session, product, deal.currency, _today(), own, f"{where}, product")  # never relabelled
        quotes.append(priced)
        rev.lines.append(EstimateLine(line_no=i, product_id=product.id, sku=product.sku,
                                      description=product.name, quantity=qty, unit_price=priced.unit_price,
                                      discount_pct=disc, tax_rate=product.tax_rate))
    if deal.currency != own and (rate := rate_on(session, deal.currency, _today())) is not None:
        rev.fx_rate, rev.fx_on = rate.rate, rate.valid_from  # fixed with the prices: reports convert back at it
    rev.fx_converted = any(q.source == "rate" for q in quotes)
    estimate.revisions.append(rev)
    session.flush()
    short = shortages(session, [(ln.product, ln.quantity) for ln in rev.lines])
    return f"revision {rev_no} drafted, total {rev.totals.total} {deal.currency}" + (
        f"; more than is available: {'; '.join(short)}" if short else "")


def _decision(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    """A decision the customer told sales (by phone, email, a meeting): recorded by them."""
    decision = _line(answer, "decision", 20, required=True)
    channel = _line(answer, "channel", 20) or "email"
    if channel == "portal":
        raise ValidationError("channel", "portal is the customer's own answer from the estimate link; "
                                         "say how the customer told you (email, phone, signed_document, meeting)")
    text = _notes(answer, "changes") if decision == "request_changes" else _notes(answer, "reason", 2000)
    return _decide(session, deal, decision, person.handle, channel, note=_notes(answer, "note", 2000), text=text,
                   po=_line(answer, "po_number", portal.MAX_PO), mover=person)


def _decide(session: Session, deal: Deal, decision: str, by: str, channel: str, *, note: str, text: str,
            mover: StaffUser, on=None, po: str = "") -> str:
    """The customer's decision on the revision that waits, whoever records it: the revision's
    state makes the first decision the only one. ``on``: the day the customer decided (an
    answer sent online before the validity ended counts, even if recorded a moment after)."""
    rev = deal.estimate.latest
    if decision == "approve":
        rev.approve(by, channel, note, on=on)
        rev.customer_po = po  # the customer's purchase-order number: on the order, invoice and delivery note
        deal.opportunity.move_to("closed_won", mover)
        return f"{rev.number} approved"
    if decision == "request_changes":
        rev.request_changes(by, channel, text)
        if deal.opportunity.stage != "negotiation":
            deal.opportunity.move_to("negotiation", mover)
        return f"{rev.number}: changes requested"
    if decision == "decline":
        reason = text or "declined"
        rev.decline(by, channel, reason)
        deal.opportunity.move_to("closed_lost", mover)
        deal.close_lost(f"estimate declined: {reason}")
        return f"{rev.number} declined"
    raise ValidationError("decision", "must be approve, request_changes or decline")


def _qa(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
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
    inspection = order.record_inspection(person, passed, _notes(answer, "notes"), checklist)
    if not passed:
        return f"attempt {inspection.attempt} failed: rework"
    order.release_for_picking(person)
    return f"attempt {inspection.attempt} passed; released for picking"


def _shipment(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    order = deal.order
    carrier = _line(answer, "carrier", 80, required=True)
    tracking = _line(answer, "tracking_number", 80, required=True)
    wanted = answer.get("lines") or []
    if len(wanted) > len(order.lines):
        raise ValidationError("lines", f"the order has {len(order.lines)} lines; got {len(wanted)}")
    if not wanted:  # no lines: everything still to ship
        wanted = [{"sku": ln.sku, "quantity": ln.remaining} for ln in order.lines if ln.remaining]
    planned: list[tuple[SalesOrderLine, int, str]] = []
    for i, raw in enumerate(wanted, start=1):
        where = f"Line {i}"
        sku = str(raw.get("sku", "")).strip()
        sku = product_by_sku(session, sku, f"{where}, product").sku  # whatever its case, as ordered
        line = order.line_for_sku(sku, f"{where}, product")
        if any(p[0] is line for p in planned):
            raise ValidationError(f"{where}, product", f"{sku} appears twice")
        qty = _int(raw.get("quantity"), f"{where}, quantity", limit=MAX_QUANTITY)
        if qty < 0:
            raise ValidationError(f"{where}, quantity", "must not be negative (0: not in this shipment)")
        if qty == 0:
            continue  # the line stays for a later shipment
        if qty > line.remaining:
            raise ValidationError(f"{where}, quantity",
                                  f"{sku}: {qty} is more than the {line.remaining} left to ship "
                                  f"({line.quantity} ordered, {line.shipped_qty} shipped)")
        planned.append((line, qty, where))
    if not planned:
        raise ValidationError("lines", "nothing to ship: every line is at 0 (leave the lines out to ship all "
                                       "that is left)")
    number = next_number(session, "shipment")
    for line, qty, where in planned:
        issue(session, line.product, qty, reason="shipment", reference=number,
              source_key=f"{number}:{line.sku}", by=person.handle, field=f"{where}, quantity")
    shipment = Shipment(order=order, seq=len(order.shipments) + 1, number=number, carrier=carrier,
                        tracking_number=tracking, shipped_by=person,
                        lines=[ShipmentLine(order_line=line, quantity=qty) for line, qty, _ in planned])
    session.add(shipment)
    order.record_shipment_lines(shipment)
    session.flush()
    doc = add_document(session, deal.id, "shipment", shipment.number, "documents/shipment.html",
                       shipment_context(shipment))
    _mail_customer(session, deal, "shipment", shipment.number,
                   f"Shipped: {shipment.number} for order {order.number} ({carrier} {tracking})", doc)
    shipped = ", ".join(f"{sl.quantity} × {sl.order_line.sku}" for sl in shipment.lines)
    return f"{shipment.number}: {shipped}" + (" (complete)" if order.is_fully_shipped else " (partial)")


def _payment(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    invoice = deal.invoice
    amount = parse_money(answer.get("amount"), "amount")
    payment = invoice.record_payment(session, amount, _line(answer, "method", 20) or "bank_transfer",
                                     _line(answer, "reference", 80), person, _day(answer, "received_on"))
    session.flush()
    doc = add_document(session, deal.id, "payment", payment.number, "documents/payment.html",
                       payment_context(payment))
    _mail_customer(session, deal, "payment", payment.number,
                   f"Thank you for your payment {payment.number} on invoice {invoice.number}", doc)
    return f"{payment.number}: {payment.amount} received, {invoice.amount_due} due"


def _day(answer: dict[str, Any], name: str) -> date | None:
    value = answer.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationError(name, f"must be a date as YYYY-MM-DD, got {shown(value)}") from None


def _listed_skus(answer: dict[str, Any]) -> dict[str, Any]:
    """An estimate's lines as picked from the catalogue select ("SKU — name — price — stock"),
    read as their SKUs: what is recorded, signed and checked."""
    lines = answer.get("lines")
    if not isinstance(lines, list):
        return answer
    return {**answer, "lines": [{**ln, "sku": sku_of(ln.get("sku"))} if isinstance(ln, dict) else ln
                                for ln in lines]}


def _decision_words(answer: dict[str, Any]) -> dict[str, Any]:
    return _coded("decision", answer)


def _payment_words(answer: dict[str, Any]) -> dict[str, Any]:
    return _coded("payment", answer)


@dataclass(frozen=True)
class WaitKind:
    """Everything about one kind of wait, in one place (``tests/test_waits.py`` checks that each is
    complete, and that the Prefect form of ``flows.inputs`` exists for each):

    - ``roles``: who may answer (a manager may stand in);
    - ``answer``: the rule that applies an answer (raises a DomainError naming the field);
    - ``describe``: what the person needs to decide, shown at the top of the form;
    - ``choices``: what the form offers to pick from, built from the deal when it opens;
    - ``reminder``: the reminder rule (``models.reminders``) that chases it when it waits too long;
    - ``normalize``: how an answer is read before it is checked (the same on every door)."""
    roles: tuple[str, ...]
    answer: Callable[[Session, Deal, StaffUser, dict[str, Any]], str]
    describe: Callable[[Session, Deal], Any]
    reminder: str
    choices: Callable[[Session, Deal, str], dict[str, Any]] = prompts.form_choices
    normalize: Callable[[dict[str, Any]], dict[str, Any]] = lambda answer: answer


WAITS: dict[str, WaitKind] = {
    "qualify": WaitKind((Role.SALES_REP,), _qualify, prompts.describe_qualify, "stuck-wait"),
    "handoff": WaitKind((Role.SALES_REP,), _handoff, prompts.describe_handoff, "stuck-wait"),
    "estimate": WaitKind((Role.SALES_ENGINEER,), _estimate, prompts.describe_estimate, "stuck-wait",
                         normalize=_listed_skus),
    # the customer's decision is recorded by sales on the customer's behalf (or by the customer online)
    "decision": WaitKind((Role.SALES_ENGINEER, Role.SALES_REP), _decision, prompts.describe_decision,
                         "estimate", normalize=_decision_words),
    "qa": WaitKind((Role.QA,), _qa, prompts.describe_qa, "qa-pending"),
    "shipment": WaitKind((Role.DELIVERY,), _shipment, prompts.describe_shipment, "unshipped"),
    "payment": WaitKind((Role.FINANCE,), _payment, prompts.describe_payment, "dunning", normalize=_payment_words),
}
WAIT_STEPS = tuple(WAITS)


def describe_wait(session: Session, deal: Deal, step: str, key: str) -> str:
    return prompts.describe(session, deal, key, WAITS[step].describe(session, deal))


def form_start(session: Session, deal: Deal, step: str, key: str) -> dict[str, Any]:
    """What the wait's form starts with (``prefill``) and offers to pick from (``choices``), as plain data."""
    return {"prefill": prompts.prefill(session, deal, step, key), "choices": WAITS[step].choices(session, deal, step)}


def normalized(step: str, answer: dict[str, Any]) -> dict[str, Any]:
    return WAITS[step].normalize(answer) if step in WAITS else answer


# --- automatic steps ----------------------------------------------------------------------------

def _today():
    return utcnow().date()


def _mail_customer(session: Session, deal: Deal, kind: str, number: str, subject: str, doc,
                   link: Callable[[str], portal.Link | None] | None = None) -> None:
    """Mail a document to the customer; ``link`` names the customer's personal link (the portal),
    signed only when the mail is rendered (see ``services.links``)."""
    ctx = doc.context
    to = ctx["customer"]["email"]
    named = link(to) if link else None
    queue_email(session, deal_id=deal.id, dedupe_key=f"{kind}:{number}", kind=kind,
                to_addr=to, subject=subject, template=f"emails/{kind}",
                context={**ctx, "portal_link": asdict(named)} if named else ctx, document=doc)


def convert_lead(session: Session, deal: Deal) -> str:
    """The qualified lead becomes an opportunity of a customer: the known customer with the lead's
    e-mail and company name (imported, or from an earlier deal; the lead's contact is added to it),
    else a new one with the company's currency and payment terms. The deal is in the customer's
    currency."""
    from .company import the_company

    company = the_company(session)
    default_currency = company.currency
    lead = deal.lead
    if deal.opportunity is not None:
        return "already converted"
    customer = customer_of_lead(session, lead.email, lead.company)
    known = customer is not None
    if known and not any(c.email.lower() == lead.email.lower() for c in customer.contacts):
        customer.contacts.append(Contact(name=lead.contact_name, email=lead.email, phone=lead.phone,
                                         is_primary=not customer.contacts))
    if customer is None:
        customer = Customer(name=lead.company, email=lead.email, phone=lead.phone, currency=default_currency,
                            payment_terms_days=company.payment_terms_days, billing_address=lead.address, shipping_address=lead.address)
        customer.contacts.append(Contact(name=lead.contact_name, email=lead.email, phone=lead.phone,
                                         is_primary=True))
        session.add(customer)
    deal.currency = customer.currency or default_currency
    lead.mark_converted(customer)
    opp = Opportunity(lead=lead, customer=customer, name=f"{lead.company}: {lead.timeline or 'machinery'}"[:200],
                      stage="qualification", probability=STAGES["qualification"],
                      expected_amount=lead.budget, owner_id=lead.owner_id)
    opp.history.append(StageChange(from_stage=None, to_stage=opp.stage, by=lead.owner))
    session.add(opp)
    deal.customer = customer
    deal.opportunity = opp
    session.flush()
    audit.record(session, SYSTEM, "lead.converted", deal_id=deal.id, subject=deal.number,
                 customer=customer.id, opportunity=opp.id, known_customer=known, currency=deal.currency)
    return (f"lead converted: {'known ' if known else ''}customer {customer.name} ({deal.currency}), "
            f"opportunity {opp.id}")


def send_estimate(session: Session, deal: Deal) -> str:
    rev = deal.estimate.latest
    if rev.status != "draft":
        return f"{rev.number} already sent"
    rev.send(session)
    deal.opportunity.expected_amount = rev.totals.total  # what the customer was quoted, not the budget
    if deal.opportunity.stage in ("prospecting", "qualification", "needs_analysis"):
        deal.opportunity.move_to("proposal", rev.prepared_by)
    doc = add_document(session, deal.id, "estimate", rev.number, "documents/estimate.html",
                       estimate_context(rev))
    _mail_customer(session, deal, "estimate", rev.number,
                   f"Estimate {rev.number} for {deal.customer_name}", doc, lambda to: portal.estimate_link(rev, to))
    audit.record(session, SYSTEM, "estimate.sent", deal_id=deal.id, subject=rev.number,
                 total=rev.totals.total)
    return f"{rev.number} sent, total {rev.totals.total} {deal.currency}"


def create_order(session: Session, deal: Deal) -> str:
    rev = deal.estimate.latest
    if deal.order is not None:
        return f"{deal.order.number} already exists"
    if rev.status != "approved":
        raise InvalidTransition(f"estimate {rev.number}", rev.status, "convert to an order")
    order = SalesOrder(number=next_number(session, "order"), deal=deal, estimate_revision=rev,
                       created_by=rev.prepared_by.handle, customer_po=rev.customer_po or "")
    session.add(order)
    for ln in rev.lines:
        order.lines.append(SalesOrderLine(line_no=ln.line_no, product_id=ln.product_id, sku=ln.sku,
                                          description=ln.description, quantity=ln.quantity,
                                          unit_price=ln.unit_price, discount_pct=ln.discount_pct,
                                          tax_rate=ln.tax_rate))
    session.flush()
    order.qa_checks = order.qa_checklist  # fixed now: editing a product later does not change this order's QA
    doc = add_document(session, deal.id, "order", order.number, "documents/order.html", order_context(order))
    _mail_customer(session, deal, "order", order.number,
                   f"Order confirmation {order.number} (from estimate {rev.number})", doc)
    audit.record(session, SYSTEM, "order.created", deal_id=deal.id, subject=order.number, estimate=rev.number)
    if not order.needs_qa:  # accessories and spare parts only: nothing for QA to check
        order.release_for_picking(rev.prepared_by)
        audit.record(session, SYSTEM, "order.released", deal_id=deal.id, subject=order.number,
                     why="no product on it needs QA")
        return (f"{order.number} created from {rev.number}, total {order.totals.total} {deal.currency}; "
                "no QA needed: released")
    return f"{order.number} created from {rev.number}, total {order.totals.total} {deal.currency}"


def create_receipt(session: Session, deal: Deal, finance_email: str) -> str:
    order = deal.order
    release = order.pick_release
    if release.receipt is not None:
        return f"{release.receipt.number} already exists"
    receipt = SalesReceipt(number=next_number(session, "receipt"), pick_release=release,
                           amount=order.totals.total)
    session.add(receipt)
    session.flush()
    doc = add_document(session, deal.id, "receipt", receipt.number, "documents/receipt.html",
                       receipt_context(receipt))
    _mail_customer(session, deal, "receipt", receipt.number,
                   f"Sales receipt {receipt.number} for order {order.number}", doc)
    queue_email(session, deal_id=deal.id, dedupe_key=f"finance-qa-passed:{order.number}", kind="finance_notice",
                to_addr=finance_email, subject=(f"QA passed: {order.number} released, receipt {receipt.number}"
                                                  if order.needs_qa else
                                                  f"Released (no QA needed): {order.number}, receipt {receipt.number}"),
                template="emails/finance_notice", context=doc.context, document=doc)
    audit.record(session, SYSTEM, "receipt.created", deal_id=deal.id, subject=receipt.number,
                 order=order.number, amount=receipt.amount)
    return f"{receipt.number} created on pick release of {order.number}; finance informed"


def create_invoice(session: Session, deal: Deal) -> str:
    order = deal.order
    if deal.invoice is not None:
        return f"{deal.invoice.number} already exists"
    invoice = Invoice(number=next_number(session, "invoice"), order=order, deal=deal,
                      due_date=_today() + timedelta(days=deal.customer.payment_terms_days
                                                    if deal.customer is not None else PAYMENT_TERMS_DAYS))
    session.add(invoice)
    for ln in order.lines:
        invoice.lines.append(InvoiceLine(line_no=ln.line_no, order_line_id=ln.id, sku=ln.sku,
                                         description=ln.description, quantity=ln.shipped_qty,
                                         unit_price=ln.unit_price, discount_pct=ln.discount_pct,
                                         tax_rate=ln.tax_rate))
        ln.invoiced_qty = ln.shipped_qty
    session.flush()
    invoice.settle_if_nothing_due()  # all lines at 100 % discount: nothing to wait for
    doc = add_document(session, deal.id, "invoice", invoice.number, "documents/invoice.html",
                       invoice_context(invoice))
    _mail_customer(session, deal, "invoice", invoice.number,
                   f"Invoice {invoice.number} for order {order.number}, due {invoice.due_date}", doc,
                   lambda to: portal.invoice_link(invoice, to))
    audit.record(session, SYSTEM, "invoice.created", deal_id=deal.id, subject=invoice.number,
                 total=invoice.totals.total)
    return f"{invoice.number} issued, {invoice.totals.total} {deal.currency} due {invoice.due_date}"


def close_deal(session: Session, deal: Deal) -> str:
    if not deal.is_open:
        return f"{deal.number} already {deal.status}"
    deal.close_won()
    audit.record(session, SYSTEM, "deal.won", deal_id=deal.id, subject=deal.number,
                 total=deal.invoice.totals.total)
    return f"{deal.number} won"
