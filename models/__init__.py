"""The domain of dealflow: SQLAlchemy models and the rules of a sale. Knows nothing of Prefect."""

from . import (
                     audit,
                     billing,
                     catalog,
                     crm,
                     deal,
                     estimates,
                     guard,
                     identity,
                     numbering,
                     orders,
                     outbox,
                     portal,
                     reminders,
                     staff,
)
from .audit import AuditEntry
from .base import Base, utcnow
from .billing import Invoice, InvoiceLine, Payment
from .catalog import Product, StockLevel, StockMove
from .crm import Contact, Customer, FollowUp, Lead, Opportunity, StageChange
from .deal import Deal, Wait
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
from .estimates import ChangeRequest, Estimate, EstimateLine, EstimateRevision
from .numbering import DocumentSequence
from .orders import (
                     PickRelease,
                     QAInspection,
                     SalesOrder,
                     SalesOrderLine,
                     SalesReceipt,
                     Shipment,
                     ShipmentLine,
)
from .outbox import Document, Email
from .staff import Role, StaffUser

__all__ = [
    "AuditEntry", "Base", "utcnow", "audit", "billing", "catalog", "crm", "deal", "estimates", "numbering", "orders",
    "outbox", "portal", "reminders", "staff", "guard", "identity", "Invoice", "InvoiceLine", "Payment", "Product", "StockLevel", "StockMove",
    "Contact", "Customer", "FollowUp", "Lead", "Opportunity", "StageChange", "Deal", "Wait",
    "DomainError", "InvalidTransition", "NotFound", "OutOfStock", "Overpayment", "PermissionDenied",
    "ValidationError", "WaitNotOpen", "FileRefused", "ChangeRequest", "Estimate", "EstimateLine", "EstimateRevision",
    "DocumentSequence", "PickRelease", "QAInspection", "SalesOrder", "SalesOrderLine", "SalesReceipt",
    "Shipment", "ShipmentLine", "Document", "Email", "Role", "StaffUser",
]
