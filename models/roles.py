"""The roles a person can hold, without SQLAlchemy (the CLI offers them as choices)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SALES_REP = "sales_rep"
    SALES_ENGINEER = "sales_engineer"
    QA = "qa"
    DELIVERY = "delivery"
    FINANCE = "finance"
    CREDIT = "credit"  # credit control: releases or rejects an order on credit hold
    MANAGER = "manager"


ROLES = tuple(r.value for r in Role)
