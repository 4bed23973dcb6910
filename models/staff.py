"""Staff users and their roles. Every human step names the role that may take it."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base
from .errors import PermissionDenied


class Role(StrEnum):
    SALES_REP = "sales_rep"
    SALES_ENGINEER = "sales_engineer"
    QA = "qa"
    DELIVERY = "delivery"
    FINANCE = "finance"
    MANAGER = "manager"


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(30))
    active: Mapped[bool] = mapped_column(default=True)

    def has_role(self, role: Role | str) -> bool:
        # A manager may stand in for anyone: that is what managers are asked to do.
        return self.active and (self.role == str(role) or self.role == Role.MANAGER)

    def require_role(self, role: Role | str, step: str) -> None:
        if not self.has_role(role):
            raise PermissionDenied(self.handle, str(role), step, has=self.role)
