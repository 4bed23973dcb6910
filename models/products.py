"""Products: what the company sells, the rules a product's fields follow, and the catalogue as the
people who keep it add, change and retire products (``dealflow product``).

A product's stock is ``models.stock``'s; a catalogue file is read by ``models.product_import``.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Numeric, String, Text, false, func, select, true
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, relationship, validates

from .base import Base, utcnow
from .errors import ValidationError
from .money import parse_money, round_money
from .states import SerialStatus
from .stock import StockLevel
from .text import bounded, one_line, shown

if TYPE_CHECKING:
    from .serials import Serial

# where a numbered unit is with us (not with a customer, not scrapped)
WITH_US = (SerialStatus.IN_STOCK, SerialStatus.RETURNED, SerialStatus.IN_REPAIR)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("unit_price >= 0", name="price_not_negative"),
        CheckConstraint("tax_rate >= 0 and tax_rate <= 100", name="tax_rate_pct"),
        CheckConstraint("warranty_months >= 0 and warranty_months <= 120", name="warranty_months"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    unit_price: Mapped[Decimal]
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))  # percent
    # what QA checks on this product before it is released; None: the standard machine checklist,
    # []: nothing (an accessory, a spare part)
    qa_checklist: Mapped[list[Any] | None] = mapped_column(default=None)
    # offered in new estimates; a retired product stays on what was already issued
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    retired_at: Mapped[datetime | None]
    # each unit has a serial number (``models.serials``): received with it, or typed when it ships
    serialized: Mapped[bool] = mapped_column(default=False, server_default=false())
    warranty_months: Mapped[int] = mapped_column(default=0, server_default="0")  # from shipping; 0: none
    stock: Mapped[StockLevel | None] = relationship(back_populates="product")
    # its numbered units with us, oldest first (``models.serials``, named here as a string: serials
    # reads products); read for the rules below, never written through
    units_with_us: Mapped[list[Serial]] = relationship(
        primaryjoin="and_(Serial.product_id == Product.id, Serial.status.in_(%r))" % [str(s) for s in WITH_US],
        order_by="[Serial.received_at, Serial.id]", viewonly=True)

    def numbered_in_stock(self) -> list[str]:
        """The serial numbers of its units in stock, oldest first, read now (a unit received
        without its number has none until it ships)."""
        return [u.serial for u in self._units_with_us() if u.status == SerialStatus.IN_STOCK]

    def _units_with_us(self) -> list[Serial]:
        session = object_session(self)
        if session is None or self.id is None:
            return []
        session.expire(self, ["units_with_us"])
        return list(self.units_with_us)

    @validates("serialized")
    def _stays_serialized_while_numbered_units_are_with_us(self, _key: str, value: bool) -> bool:
        """A product stops being serialized only when none of its numbered units is with us: one
        in stock would ship without its number asked for, and one back from a customer or in repair
        would come back into stock with a number nobody reads, their records no longer true."""
        if self.serialized and not value:
            units = self._units_with_us()
            if units:
                names = ", ".join(u.serial for u in units[:5]) + (", …" if len(units) > 5 else "")
                one = len(units) == 1
                raise ValidationError("serialized", f"{len(units)} unit{'' if one else 's'} of {self.sku} with us "
                                                    f"{'has a serial number' if one else 'have serial numbers'} "
                                                    f"({names}): a product stays serialized while numbered units are "
                                                    "in stock, back from a customer or in repair")
        return value

    @property
    def checklist(self) -> tuple[str, ...]:
        return STANDARD_CHECKLIST if self.qa_checklist is None else tuple(self.qa_checklist)

    @property
    def needs_qa(self) -> bool:
        """Whether QA checks it before it is released (a machine); an accessory or a spare part
        (an empty checklist) goes out without."""
        return bool(self.checklist)

    def label(self, currency: str, reserved: int = 0, price: Decimal | None = None, unpriced: bool = False) -> str:
        """How a person picks it from a list: "CNC-LATHE-2000 — CNC lathe GL-2000 — 48,500.00 USD —
        4 available" (on hand less what open orders hold; ``sku_of`` reads the SKU back). ``price``:
        its price in ``currency`` (``models.prices.quote``; by default the catalogue's, in the
        company's currency); ``unpriced``: it has none in ``currency`` (the label says so)."""
        available = (self.stock.on_hand if self.stock is not None else 0) - reserved
        shown_price = (f"no price in {currency}" if unpriced
                       else f"{round_money(self.unit_price if price is None else price, currency):,} {currency}")
        return LABEL_SEPARATOR.join((self.sku, self.name, shown_price, f"{available} available"))


STANDARD_CHECKLIST = ("spindle_runout", "safety_guards", "emergency_stop", "hydraulics", "control_software")
LABEL_SEPARATOR = " — "


def sku_of(value: object) -> str:
    """The SKU in a product's label (or the SKU itself): what a catalogue select answers."""
    return str(value).split(LABEL_SEPARATOR, 1)[0].strip() if isinstance(value, str) else value


def checklist_title(item: str) -> str:
    return item.replace("_", " ").capitalize()


def catalogue(session: Session) -> list[Product]:
    """The products offered in new estimates (not retired), by SKU."""
    return list(session.scalars(select(Product).where(Product.active).order_by(Product.sku)))


# --- the catalogue as the people who keep it change it ---------------------------------------------

SKU_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,39}")
CHECK_RULE = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_CHECKS = 30
YES, NO = ("yes", "y", "true", "1", "on"), ("no", "n", "false", "0", "off")
# what a person may set on a product, in the order a file or a listing shows them
PRODUCT_FIELDS = ("sku", "name", "price", "tax_rate", "needs_qa", "checklist", "description", "offered",
                  "serialized", "warranty_months")
MAX_WARRANTY_MONTHS = 120


def valid_sku(value: object, field: str = "sku") -> str:
    sku = one_line(value, field, 40, required=True)
    if not SKU_RULE.fullmatch(sku):
        raise ValidationError(field, "must be letters, digits and . _ / - (no spaces), starting with a "
                                     f"letter or digit, at most 40 characters; got {shown(sku)}")
    return sku


def yes_no(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in YES or text in NO:
        return text in YES
    raise ValidationError(field, f"must be yes or no, got {shown(value)}")


def checklist_items(value: object, field: str = "checklist") -> list[str]:
    """QA's checks for a product: "Spindle runout, safety guards" (or a list) becomes
    ["spindle_runout", "safety_guards"]; each a short name QA says yes or no to."""
    raw = value if isinstance(value, list | tuple) else str(value or "").split(",")
    items: list[str] = []
    for entry in raw:
        text = one_line(entry, field, 60)
        if not text:
            continue
        item = re.sub(r"[\s-]+", "_", text.lower())
        if not CHECK_RULE.fullmatch(item):
            raise ValidationError(field, "each check is a short name of letters, digits and spaces, starting "
                                         f"with a letter, at most 40 characters; got {shown(text)}")
        if item in items:
            raise ValidationError(field, f"{item} is listed twice")
        items.append(item)
    if len(items) > MAX_CHECKS:
        raise ValidationError(field, f"at most {MAX_CHECKS} checks, got {len(items)}")
    return items


def warranty_months(value: object, field: str = "warranty_months") -> int:
    text = str(value).strip() if not isinstance(value, bool) else "?"
    if not re.fullmatch(r"[0-9]{1,4}", text) or int(text) > MAX_WARRANTY_MONTHS:
        raise ValidationError(field, f"must be a whole number of months from 0 (none) to {MAX_WARRANTY_MONTHS}, "
                                     f"got {shown(value)}")
    return int(text)


def _price(value: object, field: str) -> Decimal:
    price = parse_money(value, field)
    if price < 0:
        raise ValidationError(field, "must not be negative")
    return price


def _tax_rate(value: object, field: str) -> Decimal:
    rate = parse_money(value, field)
    if not 0 <= rate <= 100:
        raise ValidationError(field, "must be a percentage between 0 and 100")
    return rate


def product_values(raw: dict[str, Any], *, new: bool) -> tuple[dict[str, Any], list[ValidationError]]:
    """A product's fields as a person gave them (a command's options, a file's row), checked one by
    one: the values for the product's columns, and every rule broken (all of them, so a file's row
    is corrected in one go). ``new``: the name, price and tax rate are required. ``needs_qa`` no
    means no checks; ``checklist`` empty with QA means the standard machine checklist."""
    values: dict[str, Any] = {}
    problems: list[ValidationError] = []

    def check(name: str, rule, *args) -> Any:
        try:
            return rule(raw[name], name, *args)
        except ValidationError as exc:
            problems.append(exc)
            return None

    given = {k for k, v in raw.items() if v is not None}
    for name in ("name", "price", "tax_rate"):
        if new and (name not in given or not str(raw[name]).strip()):
            problems.append(ValidationError(name, "must not be empty"))
            given.discard(name)
    if "name" in given:
        values["name"] = check("name", one_line, 200, True)
    if "price" in given:
        values["unit_price"] = check("price", _price)
    if "tax_rate" in given:
        values["tax_rate"] = check("tax_rate", _tax_rate)
    if "description" in given:
        values["description"] = check("description", bounded, 2000)
    if "offered" in given and str(raw["offered"]).strip():
        values["active"] = check("offered", yes_no)
    if "serialized" in given and str(raw["serialized"]).strip():
        values["serialized"] = check("serialized", yes_no)
    if "warranty_months" in given and str(raw["warranty_months"]).strip():
        values["warranty_months"] = check("warranty_months", warranty_months)
    needs_qa = check("needs_qa", yes_no) if "needs_qa" in given and str(raw["needs_qa"]).strip() else None
    items = check("checklist", checklist_items) if "checklist" in given else None
    if needs_qa is False and items:
        problems.append(ValidationError("checklist", "a product without QA has no checklist (leave it empty, "
                                                     "or say it needs QA)"))
    elif needs_qa is False:
        values["qa_checklist"] = []
    elif items:
        values["qa_checklist"] = items
    elif needs_qa:
        values["qa_checklist"] = None  # QA with the standard machine checklist
    return {k: v for k, v in values.items() if v is not None or k == "qa_checklist"}, problems


def _first(problems: list[ValidationError]) -> None:
    if problems:
        raise problems[0]


def add_product(session: Session, raw: dict[str, Any]) -> Product:
    """A new product, with no stock yet (``stock receive`` brings goods in)."""
    sku = valid_sku(raw.get("sku"))
    values, problems = product_values(raw, new=True)
    _first(problems)
    if session.scalars(select(Product.id).where(Product.sku == sku)).first() is not None:
        raise ValidationError("sku", f"{sku} already exists (change it with `dealflow product edit {sku}`)")
    product = Product(sku=sku, **values)
    if values.get("active") is False:
        product.retired_at = utcnow()
    product.stock = StockLevel(on_hand=0)
    session.add(product)
    session.flush()
    return product


def edit_product(session: Session, product: Product, raw: dict[str, Any]) -> dict[str, list[Any]]:
    """Change what was given; returns {column: [before, after]} of what changed. A new price applies
    to estimate revisions drafted from now on: revisions, orders and invoices already made keep theirs
    (their lines carry their own price)."""
    values, problems = product_values(raw, new=False)
    _first(problems)
    keep_own_checks(product, values)
    changed: dict[str, list[Any]] = {}
    for column, value in values.items():
        before = getattr(product, column)
        if before != value:
            changed[column] = [before, value]
            setattr(product, column, value)
    if "active" in changed:
        product.retired_at = None if product.active else utcnow()
    session.flush()
    return changed


def keep_own_checks(product: Product, values: dict[str, Any]) -> None:
    """"Needs QA" said of a product that QA already checks with its own list keeps that list (only a
    product without QA falls back to the standard machine checklist)."""
    if "qa_checklist" in values and values["qa_checklist"] is None and product.qa_checklist:
        del values["qa_checklist"]


def retire_product(product: Product, undo: bool = False) -> bool:
    """No longer offered in new estimates (``undo``: offered again); whether anything changed."""
    if product.active == undo:
        return False
    product.active, product.retired_at = undo, None if undo else utcnow()
    return True


def product_row(product: Product) -> dict[str, Any]:
    """A product as a listing, a file or JSON shows it (the columns of ``PRODUCT_FIELDS``, and stock)."""
    return {"sku": product.sku, "name": product.name, "price": product.unit_price, "tax_rate": product.tax_rate,
            "needs_qa": product.needs_qa,
            "checklist": ", ".join(product.qa_checklist) if product.qa_checklist else "",
            "description": product.description, "offered": product.active,
            "serialized": product.serialized, "warranty_months": product.warranty_months,
            "on_hand": product.stock.on_hand if product.stock is not None else 0}


def product_by_sku(session: Session, sku: str, field: str = "sku") -> Product:
    """The product of ``sku``, whatever its case (``cnc-lathe-2000``); an unknown SKU is refused
    with the closest one, if any is close."""
    sku = one_line(sku, field, 40, required=True)  # checked before the database sees it
    product = session.scalars(select(Product).where(Product.sku == sku)).one_or_none()
    if product is None:
        same = session.scalars(select(Product).where(func.upper(Product.sku) == sku.upper())).all()
        if len(same) == 1:
            return same[0]
        import difflib

        known = {p.upper(): p for p in session.scalars(select(Product.sku))}
        close = difflib.get_close_matches(sku.upper(), list(known), n=1, cutoff=0.75)
        raise ValidationError(field, f"no product {sku!r}" + (f"; did you mean {known[close[0]]}?" if close else ""))
    return product
