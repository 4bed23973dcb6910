"""Answering a wait: open it, prove who answers, apply the answer through its kind's rule, or
record the refusal. The business change and the refusal never both happen (a savepoint separates
them); two answers racing for one wait are recorded one after the other (the wait's row is
locked). Also how a deal starts, and the run that drives it.

Wait states: open -> answered | refused (a refused answer closes the wait; a new one opens under
the next key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from . import audit, identity, portal
from .audit import recordable
from .crm import Lead
from .deal import Deal, Liveness, Wait
from .errors import DomainError, NotFound, WaitNotOpen
from .numbering import next_number
from .plan import Step
from .sending import SYSTEM
from .staff import StaffUser, staff_member
from .states import WaitStatus
from .text import printable
from .waits import KINDS, read_answer
from .waits.decision import decide

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


def attach_flow_run(session: Session, deal: Deal, flow_run_id: str, is_live: Liveness | None = None) -> bool:
    """The flow run that drives the deal (``Deal.drive_by``: one live run per deal); True if it
    changed. The deal's row is read again and locked first, so that of two runs attaching at
    once the second sees the first and is refused while it is live. ``is_live``: the
    orchestrator's answer for a recorded run (without one, a recorded run counts as live)."""
    session.scalars(select(Deal).where(Deal.id == deal.id).with_for_update()
                    .execution_options(populate_existing=True)).one()
    if not deal.drive_by(flow_run_id, is_live or _not_known_to_be_over):
        return False
    audit.record(session, SYSTEM, "deal.flow_attached", deal_id=deal.id, subject=flow_run_id)
    return True


def _not_known_to_be_over(_run_id: str) -> str:
    return "not known to be over"


# --- waits: open, answer, refuse ------------------------------------------------------------

def open_wait(session: Session, deal: Deal, step: Step, description: str | Callable[[], str],
              flow_run_id: str | None) -> Wait:
    """Record that the deal waits here. Opening the same wait again returns it (and does not
    describe it again: ``description`` may be a function, called only for a new wait)."""
    wait = session.scalars(select(Wait).where(Wait.deal_id == deal.id, Wait.key == step.key)).one_or_none()
    if wait is not None:
        if flow_run_id and wait.flow_run_id != flow_run_id and wait.status == WaitStatus.OPEN:
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
    """The deal's open wait named by its step or key; also one of its returns' and claims' (when
    two of them wait at the same step, their keys tell them apart)."""
    cases = [w for w in deal.case_waits if step_or_key in (w.step, w.key)]
    if cases and (deal.open_wait is None or step_or_key not in (deal.open_wait.step, deal.open_wait.key)):
        if len(cases) > 1:
            raise WaitNotOpen(deal.number, step_or_key, [w.key for w in cases],
                              f"{len(cases)} waits are at {step_or_key}: name one by its key "
                              f"({', '.join(w.key for w in cases)})")
        return cases[0]
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
    kind = KINDS[wait.step]
    outcome = kind.answer(session, kind.of(session, deal, wait.key), person, answer)
    wait.close(WaitStatus.ANSWERED, person.handle, recordable(answer), proof=proven.kind,
               stand_in_for=proven.stands_in_for)
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
    wait.close(WaitStatus.REFUSED, by, recordable(answer), printable(reason, 2000), proof=_tried(proof))
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
    if wait.status != WaitStatus.OPEN:
        return {"accepted": wait.status == WaitStatus.ANSWERED, "outcome": "already recorded",
                "reason": wait.refusal_reason}
    proof, body = identity.split_proof(answer)
    body = read_answer(wait.step, body)
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
            outcome = decide(session, deal, portal.ACTIONS[signed.action], signed.name[:40], "portal",
                             note="", po=signed.po_number, text=signed.text,
                             mover=deal.estimate.latest.prepared_by, on=signed.submitted_on)
            portal.record_customer_answer(session, deal, wait, signed)
            by = portal.answered_by_customer(signed)
            record = {**portal.as_answered(signed), "decision": portal.ACTIONS[signed.action],  # recorded as a code
                      "ip": signed.ip, "user_agent": signed.user_agent,
                      "pdf_sha256": signed.pdf_sha256, "submitted_at": signed.at}  # what the customer signed
            wait.close(WaitStatus.ANSWERED, by, record, proof=portal.BY_LINK)
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
