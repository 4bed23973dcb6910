"""An append-only audit log: who did what, to which deal, when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, utcnow
from .text import printable


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(40))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(60), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


def record(session: Session, actor: str, action: str, *, deal_id: int | None = None,
           subject: str = "", **details: Any) -> AuditEntry:
    entry = AuditEntry(actor=actor, action=action, deal_id=deal_id, subject=subject,
                       details={k: _plain(v) for k, v in details.items()})
    session.add(entry)
    return entry


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def recordable(value: Any, max_text: int = 4000, max_items: int = 200, depth: int = 8) -> Any:
    """Whatever someone sent (an answer, perhaps refused for being wrong), made safe to keep as
    JSON: text shown without control characters and cut, lists and objects cut (and no deeper
    than ``depth``), huge numbers as text. It records what was tried; it never makes bad input
    acceptable."""
    if isinstance(value, dict | list | tuple) and depth <= 0:
        return "…"
    if isinstance(value, dict):  # a one-time code is never kept, not even a wrong one
        return {printable(k, 80): "(not recorded)" if k == "code" and v not in (None, "")
                else recordable(v, max_text, max_items, depth - 1)
                for k, v in list(value.items())[:max_items]}
    if isinstance(value, list | tuple):
        return [recordable(v, max_text, max_items, depth - 1) for v in value[:max_items]]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) < 10**15:
        return value
    return printable(str(value) if not isinstance(value, int) else f"{str(value)[:40]}…", max_text)


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _append_only(mapper, connection, target):  # noqa: ARG001
    raise RuntimeError("the audit log is append-only")
