"""The domain of dealflow: SQLAlchemy models and the rules of a sale. Knows nothing of Prefect.

The package loads lazily: ``from models import DomainError`` or ``from models.text import shown``
does not import SQLAlchemy, so a command that needs no database (``dealflow --help``) starts at
once. Asking for a mapped class (``from models import Deal``) or for ``Base`` loads every model
module first, because SQLAlchemy resolves relationships between them by name; so does every
engine (``services.db.engine_for`` calls ``load_all``)."""

from __future__ import annotations

import importlib
from typing import Any

from .clock import utcnow
from .errors import (
                     DomainError,
                     FileRefused,
                     InvalidTransition,
                     NotFound,
                     OutOfStock,
                     Overpayment,
                     PermissionDenied,
                     ValidationError,
                     WaitNotOpen,
)
from .roles import Role

# the modules that define tables: all of them are imported before the first mapper is used
MODEL_MODULES = ("audit", "billing", "catalog", "company", "credit", "credit_notes", "crm", "deal", "estimates",
                 "identity", "numbering", "orders", "outbox", "portal", "prices", "returns", "serials", "staff", "throttle",
                 "warranty")

# a mapped class (or Base) -> the module that defines it
_CLASSES = {
    "Base": "base",
    "AuditEntry": "audit",
    "Invoice": "billing", "InvoiceLine": "billing", "Payment": "billing",
    "Product": "catalog", "StockLevel": "catalog", "StockMove": "catalog",
    "Company": "company",
    "CreditHold": "credit", "CreditNote": "credit_notes",
    "ReturnOrder": "returns", "ReturnLine": "returns", "ReturnLineSerial": "returns",
    "WarrantyClaim": "warranty",
    "Contact": "crm", "Customer": "crm", "FollowUp": "crm", "Lead": "crm", "Opportunity": "crm",
    "StageChange": "crm",
    "Deal": "deal", "Wait": "deal",
    "ChangeRequest": "estimates", "Estimate": "estimates", "EstimateLine": "estimates",
    "EstimateRevision": "estimates",
    "DocumentSequence": "numbering",
    "PickRelease": "orders", "QAInspection": "orders", "SalesOrder": "orders",
    "SalesOrderLine": "orders", "SalesReceipt": "orders", "Shipment": "orders", "ShipmentLine": "orders",
    "Document": "outbox", "Email": "outbox",
    "ExchangeRate": "prices", "ProductPrice": "prices",
    "StaffUser": "staff",
    "FailedAttempt": "throttle",
}


def load_all() -> None:
    """Import every module that defines tables (cheap after the first call)."""
    for name in MODEL_MODULES:
        importlib.import_module(f"{__name__}.{name}")


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        load_all()
        value = getattr(importlib.import_module(f"{__name__}.{_CLASSES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DomainError", "FileRefused", "InvalidTransition", "NotFound", "OutOfStock", "Overpayment",
    "PermissionDenied", "ValidationError", "WaitNotOpen", "Role", "utcnow", "load_all", *_CLASSES,
]
