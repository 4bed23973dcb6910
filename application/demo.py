"""What ``dealflow demo`` and the scripted Glocial scenario (``dealflow.scenario``) do in the
database, as use cases: the installation seeded, a scenario deal started, the opportunity
worked while it waits for the hand-off, a scripted person signed in with the code their
authenticator app would show, and what the demo narrates and sums up (the audit log, stock,
the customer's online answers, the refused answers, the deposit deducted on the final invoice)."""

from __future__ import annotations

import time
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import func, select

from models import AuditEntry, Product, catalog, identity, pipeline, process, seed, utcnow
from models.catalog import stock_rows
from models.deal import deal_by_number
from models.documents import invoice_context
from models.pipeline import add_lead
from models.portal import CustomerAnswer
from models.sending import SYSTEM
from models.staff import staff_member
from services import keys

from .uow import unit_of_work


def seed_installation() -> dict[str, int]:
    """The Glocial company, staff (each enrolled: their app shows their codes) and catalogue,
    with stock; what was added."""
    with unit_of_work() as s:
        return seed.load(s, keys.cipher())


def stock_on_hand() -> dict[str, int]:
    """Units on hand, by SKU."""
    with unit_of_work() as s:
        return {row["sku"]: row["on_hand"] for row in stock_rows(s)}


def start_scenario_deal(lead: dict[str, Any], by: str = SYSTEM, restock: int = 0, restock_key: str = "") -> str:
    """A lead (``lead``: its fields, owner included) and its deal, started by ``by``; the deal's
    number. With ``restock``, every product first receives that many units (source key
    ``restock-{restock_key}-{sku}``), so that many deals can ship the same machines."""
    with unit_of_work() as s:
        if restock:
            for product in s.scalars(select(Product)):
                catalog.receive(s, product, restock, reason="restock",
                                source_key=f"restock-{restock_key}-{product.sku}")
        new = add_lead(s, **lead)
        return process.start_deal(s, new.id, by=by).number


def work_the_opportunity(deal_number: str) -> None:
    """What Sofia does while the deal waits for her hand-off: follow-ups and stage moves."""
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        now = utcnow()
        call = pipeline.add_followup(s, deal, by="sofia", kind="call", due_at=now + timedelta(days=1),
                                     notes="Discovery call: parts, volumes, floor space.")
        pipeline.complete_followup(s, call.id, by="sofia",
                                   outcome="Turning 40 mm shafts, 2 shifts; wants automation-ready lathes.")
        pipeline.move_stage(s, deal, by="sofia", stage="needs_analysis")
        visit = pipeline.add_followup(s, deal, by="sofia", kind="site_visit", due_at=now + timedelta(days=3),
                                      notes="Visit the new plant with the plant manager.")
        pipeline.complete_followup(s, visit.id, by="sofia",
                                   outcome="Floor ready in January; power and foundations fit the GL-2000.")
        pipeline.add_followup(s, deal, by="sofia", kind="call", due_at=now + timedelta(days=10),
                              notes="Check the estimate arrived and answer questions.")


def session_open(session_id: str, for_at_least: timedelta) -> bool:
    """Whether the login session is open and stays open ``for_at_least`` longer (a test may have
    emptied the tables meanwhile)."""
    with unit_of_work() as s:
        row = s.get(identity.StaffSession, session_id)
        return row is not None and row.closed_at is None and row.expires_at > utcnow() + for_at_least


def sign_in_with_app(handle: str, door: str = "scenario") -> identity.OpenedSession:
    """``handle`` signs in with the code their authenticator app shows (computed from their
    enrolled secret); if that code was used a moment ago, with the next one, waiting for it."""
    cipher = keys.cipher()
    with unit_of_work() as s:
        person = staff_member(s, handle)
        generator = identity.totp(person, cipher)
        now = generator.timecode(utcnow().replace(tzinfo=UTC))
        step = max(now, (person.totp_last_step or 0) + 1)  # a code used a moment ago: the next one
        if step > now + 1:
            time.sleep(identity.STEP_SECONDS - time.time() % identity.STEP_SECONDS + 0.1)
        return identity.open_session(s, handle, generator.generate_otp(step), cipher, door=door)


def wrong_code(handle: str) -> str:
    """A code that is not ``handle``'s now (nor one step either side): an impostor's guess."""
    with unit_of_work() as s:
        generator = identity.totp(staff_member(s, handle), keys.cipher())
    now = generator.timecode(utcnow().replace(tzinfo=UTC))
    valid = {generator.generate_otp(now + d) for d in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(123456, 999999, 111111)) if c not in valid)


def audit_after(last_id: int) -> list[dict[str, Any]]:
    """The audit log's entries after ``last_id``, oldest first: id, at, actor, action, subject,
    details."""
    with unit_of_work() as s:
        return [{"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "subject": e.subject,
                 "details": e.details}
                for e in s.scalars(select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id))]


def latest_estimate(deal_number: str) -> str:
    """The number of the deal's latest estimate revision."""
    with unit_of_work() as s:
        return deal_by_number(s, deal_number).estimate.latest.number


def online_answers(deal_number: str) -> list[dict[str, Any]]:
    """What the customer answered from the portal: what, by whom, with which PO, when."""
    with unit_of_work() as s:
        deal_id = deal_by_number(s, deal_number).id
        return [{"action": a.action, "name": a.name, "po_number": a.po_number, "revision": a.revision.number,
                 "at": a.submitted_at.isoformat(timespec="seconds")}
                for a in s.scalars(select(CustomerAnswer).where(CustomerAnswer.deal_id == deal_id)
                                   .order_by(CustomerAnswer.id))]


def deposit_deducted(deal_number: str) -> dict[str, str] | None:
    """What the deal's final invoice deducts for the deposit paid, as its document shows it: the
    invoice, the deposit invoice, the amount deducted and the invoice's total before it (None: the
    final invoice deducts nothing, or there is none yet)."""
    with unit_of_work() as s:
        invoice = deal_by_number(s, deal_number).invoice
        deducted = invoice_context(invoice).get("deposit") if invoice is not None else None
        if not deducted:
            return None
        return {"invoice": invoice.number, "deposit_invoice": deducted["number"], "amount": deducted["amount"],
                "before": deducted["before"], "total": str(invoice.totals.total)}


def refused_answers(deal_number: str) -> int:
    """How many answers to the deal's waits were refused (by the flow or before it)."""
    with unit_of_work() as s:
        deal_id = deal_by_number(s, deal_number).id
        return s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.deal_id == deal_id, AuditEntry.action.like("%.refused")))
