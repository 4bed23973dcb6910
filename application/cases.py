"""Returns and warranty claims as use cases, without Prefect: asking for one (proven like a staff
step), where one stands, its automatic steps, the tags of its run, and what the CLI shows of it.
Each takes numbers (never ORM objects), is one unit of work and returns plain data.
``flows.cases`` drives a case's plan with these, as ``flows.deal`` drives a deal's."""

from __future__ import annotations

from typing import Any

from models import DomainError, process
from models.cases import case_by_number, next_case_step, run_case_automatic
from models.deal import deal_by_number
from models.returns import ReturnOrder, parse_lines, start_return
from models.roles import Role
from models.states import ReturnStatus
from models.warranty import WarrantyClaim, claims_of, open_claim

from .uow import unit_of_work

RETURN_ROLES = (Role.SALES_REP, Role.SALES_ENGINEER, Role.DELIVERY, Role.MANAGER)  # who takes a return's request
CLAIM_ROLES = (Role.SALES_REP, Role.SALES_ENGINEER, Role.MANAGER)  # who takes a warranty claim


def _acting(s, by: str, roles, proof, *, subject: str, action: str, what: str, payload: dict[str, Any]):
    from models.staff import staff_member

    from .staff import acting_person

    person = staff_member(s, by, "by")
    role = next((r for r in roles if person.holds(r)), roles[0])
    return acting_person(s, by, role, proof or {}, subject=subject, action=action, what=what, payload=payload)


def return_payload(by: str, lines: str, reason: str) -> dict[str, Any]:
    """What a session signs for ``return start`` (with the deal's number as typed)."""
    return {"by": by, "lines": lines, "reason": reason}


def claim_payload(by: str, issue: str) -> dict[str, Any]:
    return {"by": by, "issue": issue}


def ask_for_return(deal_number: str, lines: str, reason: str, by: str,
                   proof: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record a customer's request to return ``lines`` (``SKU:QTY[:SERIAL/SERIAL]``, commas between)
    of the deal, by a member of staff proven as for ``deal cancel``; the return then waits for a
    manager's authorization (its run: ``flows.cases``)."""
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        person, _ = _acting(s, by, RETURN_ROLES, proof, subject=deal_number, action="return",
                            what="take a return's request", payload=return_payload(by, lines, reason))
        ret = start_return(s, deal, parse_lines(lines), reason, person.handle)
        s.commit()
        return case_summary_of(ret)


def claim_warranty(serial: str, issue: str, by: str, proof: dict[str, Any] | None = None) -> dict[str, Any]:
    """Open a warranty claim on a unit (refused after its warranty's end); an engineer then
    diagnoses it (its run: ``flows.cases``)."""
    from models.serials import serial_by_number

    with unit_of_work() as s:
        unit = serial_by_number(s, serial)
        # the serial as typed: what the CLI's session signed (any case, or SKU:SERIAL)
        person, _ = _acting(s, by, CLAIM_ROLES, proof, subject=serial, action="claim",
                            what="open a warranty claim", payload=claim_payload(by, issue))
        claim = open_claim(s, unit, issue, person.handle)
        s.commit()
        return case_summary_of(claim)


def case_summary(number: str) -> dict[str, Any]:
    with unit_of_work() as s:
        return case_summary_of(case_by_number(s, number))


def case_summary_of(case: ReturnOrder | WarrantyClaim) -> dict[str, Any]:
    deal = case.deal
    out: dict[str, Any] = {"number": case.number, "kind": "return" if isinstance(case, ReturnOrder) else "claim",
                           "deal": deal.number, "customer": deal.customer_name, "status": case.status,
                           "flow_run_id": case.flow_run_id}
    if isinstance(case, ReturnOrder):
        out.update({"reason": case.reason, "with_credit": case.with_credit,
                    "restocking_fee_pct": str(case.restocking_fee_pct),
                    "lines": [{"sku": ln.sku, "quantity": ln.quantity, "received": ln.received_qty,
                               "restocked": ln.restock_qty, "scrapped": ln.scrap_qty, "to_repair": ln.repair_qty,
                               "serials": ln.serial_numbers} for ln in case.lines],
                    "credit_note": case.credit_note.number if case.credit_note is not None else None})
    else:
        out.update({"serial": case.serial.serial, "sku": case.serial.product.sku, "issue": case.issue,
                    "warranty_end": case.warranty_end.isoformat(), "diagnosis": case.diagnosis,
                    "resolution": case.resolution, "return": case.ret.number if case.ret is not None else None,
                    "close_note": case.close_note})
    return out


def next_step(number: str) -> dict[str, Any]:
    """Where the case stands, as ``deals.plan_next_step`` says it of a deal (``opened``: its open
    wait at that key, if written)."""
    with unit_of_work() as s:
        case = case_by_number(s, number)
        deal = case.deal
        step = next_case_step(s, case)
        wait = next((w for w in deal.case_waits if w.key == step.key), None) if step.kind == "wait" else None
        opened = ({"description": wait.description, "flow_run_id": wait.flow_run_id,
                   **process.form_start(s, deal, step.name, step.key)} if wait is not None else None)
        return {"name": step.name, "kind": step.kind, "key": step.key, "roles": list(step.roles),
                "facts": step.facts, "deal": deal.number, "status": case.status, "opened": opened}


def run_automatic(name: str, number: str, key: str) -> str:
    with unit_of_work() as s:
        done = run_case_automatic(s, name, case_by_number(s, number), key)
        s.commit()
        return done


def attach_run(number: str, flow_run_id: str) -> None:
    """The run that drives the case (the latest; a case's steps are keyed, so a second run finds
    them done)."""
    with unit_of_work() as s:
        case = case_by_number(s, number)
        if case.flow_run_id != flow_run_id:
            case.flow_run_id = flow_run_id
            s.commit()


def run_tags(number: str, step: str) -> list[str]:
    """Tags for the case's run: its kind, deal, customer, step and whose turn it is."""
    from models.waits import KINDS

    with unit_of_work() as s:
        case = case_by_number(s, number)
        slug = "".join(c if c.isalnum() else "-" for c in case.deal.customer_name.lower()).strip("-")[:40]
        kind = "return" if isinstance(case, ReturnOrder) else "warranty-claim"
        tags = ["dealflow", kind, f"deal:{case.deal.number}", f"customer:{slug}", f"step:{step}"]
        if step in KINDS:
            tags.append(f"waiting-for:{KINDS[step].turn}")
        return tags


def open_cases(deal_number: str | None = None) -> list[dict[str, Any]]:
    """Returns and claims not done yet (all of a deal's, with ``deal_number``)."""
    from sqlalchemy import select

    from models.states import ClaimStatus

    with unit_of_work() as s:
        rets = select(ReturnOrder).where(ReturnOrder.status.not_in((ReturnStatus.REFUSED, ReturnStatus.CLOSED)))
        claims = select(WarrantyClaim).where(WarrantyClaim.status != ClaimStatus.CLOSED)
        if deal_number is not None:
            deal = deal_by_number(s, deal_number)
            rets = select(ReturnOrder).where(ReturnOrder.deal_id == deal.id)
            claims = select(WarrantyClaim).where(WarrantyClaim.deal_id == deal.id)
        return [case_summary_of(c) for c in [*s.scalars(rets), *s.scalars(claims)]]


def claims_of_serial(serial: str) -> list[dict[str, Any]]:
    from models.serials import serial_by_number

    with unit_of_work() as s:
        return [case_summary_of(c) for c in claims_of(s, serial_by_number(s, serial))]


def check_case(number: str) -> str:
    """The case's deal number (a DomainError names what is wrong with ``number``)."""
    with unit_of_work() as s:
        case = case_by_number(s, number)
        if case.is_done:
            raise DomainError(f"{case.number} is {case.status}: nothing is left to run")
        return case.deal.number
