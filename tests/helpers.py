"""Small helpers for the tests: counting what a step wrote."""

from __future__ import annotations

from sqlalchemy import func, select

from models import (
    AuditEntry,
    Document,
    DocumentSequence,
    Email,
    Estimate,
    EstimateRevision,
    Invoice,
    Payment,
    SalesOrder,
    SalesReceipt,
    Shipment,
    StockLevel,
    StockMove,
    Wait,
)
from services.db import session_scope

COUNTED = (Estimate, EstimateRevision, SalesOrder, SalesReceipt, Shipment, Invoice, Payment, StockMove,
           Document, Email)


def counts() -> dict[str, int]:
    """Rows per business table, the sequences and the stock levels: what 'nothing written' means."""
    with session_scope() as s:
        out = {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in COUNTED}
        out.update({f"seq:{q.doc_type}": q.last_value for q in s.scalars(select(DocumentSequence))})
        out.update({f"stock:{lvl.product_id}": lvl.on_hand for lvl in s.scalars(select(StockLevel))})
        return out


def audit_actions(deal_id: int | None = None) -> list[str]:
    with session_scope() as s:
        q = select(AuditEntry.action).order_by(AuditEntry.id)
        if deal_id is not None:
            q = q.where(AuditEntry.deal_id == deal_id)
        return list(s.scalars(q))


def wait_row(deal_number: str, key: str) -> dict:
    from models.deal import deal_by_number
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        w = s.scalars(select(Wait).where(Wait.deal_id == deal.id, Wait.key == key)).one()
        return {"status": w.status, "by": w.answered_by, "reason": w.refusal_reason,
                "description": w.description, "flow_run_id": w.flow_run_id}
