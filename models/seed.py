"""The Glocial Machineries demo: its company (unless one is set up), catalogue and staff, as loaded
by ``dealflow init --demo-data`` and the demo. Loading twice adds nothing."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .catalog import Product, receive
from .customers import find_customer, import_customers
from .identity import Cipher, enroll
from .serials import receive_serials
from .staff import Role, StaffUser

STAFF = [
    ("sofia", "Sofia Marin", "sofia@glocial.example", Role.SALES_REP),
    ("mark", "Mark Henry", "mark.henry@glocial.example", Role.SALES_ENGINEER),
    ("qa", "Quinn Alvarez (QA lead)", "qa@glocial.example", Role.QA),
    ("delivery", "Dana Ruiz (delivery)", "delivery@glocial.example", Role.DELIVERY),
    ("finance", "Farah Nair (finance)", "finance@glocial.example", Role.FINANCE),
    ("manager", "Morgan Lee (sales manager)", "manager@glocial.example", Role.MANAGER),
]

# sku, name, unit price, tax rate %, stock on hand
CATALOGUE = [
    ("CNC-LATHE-2000", "CNC lathe GL-2000, 2 m bed", "48500.00", "18", 4),
    ("VMC-850", "Vertical machining centre VMC-850", "72900.00", "18", 3),
    ("HYD-PRESS-100T", "Hydraulic press, 100 t", "31250.00", "18", 2),
    ("TOOL-KIT-PRO", "Tooling kit, professional (42 pieces)", "2450.00", "18", 25),
    ("COOLANT-20L", "Semi-synthetic coolant, 20 l", "89.90", "12", 200),
    ("CHUCK-3J-250", "Three-jaw chuck, 250 mm", "1850.00", "18", 10),
]

# what QA checks before release (not listed: the standard machine checklist; []: no QA checks)
CHECKLISTS = {
    "VMC-850": ["spindle_runout", "axis_backlash", "safety_guards", "emergency_stop", "control_software"],
    "HYD-PRESS-100T": ["hydraulics", "pressure_relief_valve", "safety_guards", "emergency_stop"],
    "TOOL-KIT-PRO": [], "COOLANT-20L": [], "CHUCK-3J-250": [],
}


# the machines carry serial numbers and a 24-month warranty; the opening stock comes in with its
# numbers (GLM-GL2000-0001…), which the shipment form starts with (oldest first)
SERIALIZED = {"CNC-LATHE-2000": "GLM-GL2000", "VMC-850": "GLM-VMC850", "HYD-PRESS-100T": "GLM-HP100T"}
WARRANTY_MONTHS = 24
OPENING_STOCK = "opening stock"


# the scenario's customer, known before its lead comes in: its terms ask for a 30 % deposit before
# shipping, and its credit limit covers the scenario's order (about USD 177,000), not two of them
CUSTOMERS = [
    {"name": "Riverside Metalworks Ltd", "email": "priya.raman@riverside-metal.example", "contact": "Priya Raman",
     "phone": "+1 555 0142", "billing_address": "4 Canal Street\nRiverside 40213",
     "shipping_address": "4 Canal Street\nRiverside 40213", "deposit": "30", "deposit_before": "shipping",
     "credit_limit": "250000"},
]


def load(session: Session, cipher: Cipher | None = None) -> dict[str, int]:
    """With ``cipher``, the Glocial staff are enrolled for one-time codes as they are added (their
    secrets encrypted with it); ``dealflow staff enroll HANDLE`` gives a person a new one to scan."""
    from .company import GLOCIAL, Company, set_up

    added = {"staff": 0, "products": 0, "customers": 0}
    if session.get(Company, 1) is None:
        set_up(session, GLOCIAL, by="init")
    for handle, name, email, role in STAFF:
        if session.scalars(select(StaffUser).where(StaffUser.handle == handle)).one_or_none() is None:
            person = StaffUser(handle=handle, name=name, email=email, roles=str(role))
            session.add(person)
            if cipher is not None:
                enroll(session, person, cipher, by="init")
            added["staff"] += 1
    for sku, name, price, tax, on_hand in CATALOGUE:
        if session.scalars(select(Product).where(Product.sku == sku)).one_or_none() is None:
            prefix = SERIALIZED.get(sku)
            product = Product(sku=sku, name=name, unit_price=Decimal(price), tax_rate=Decimal(tax),
                              qa_checklist=CHECKLISTS.get(sku), serialized=prefix is not None,
                              warranty_months=WARRANTY_MONTHS if prefix else 0)
            session.add(product)
            session.flush()
            receive(session, product, on_hand, reason="initial", source_key=f"initial:{sku}", by="init")
            if prefix:
                receive_serials(session, product, [f"{prefix}-{n:04d}" for n in range(1, on_hand + 1)],
                                OPENING_STOCK, by="init")
            added["products"] += 1
    for row in CUSTOMERS:
        if find_customer(session, row["email"], contacts=False) is None:
            import_customers(session, "demo", [(1, dict(row))])
            added["customers"] += 1
    if any(added.values()):
        audit.record(session, "init", "seed.loaded", **added)
    return added
