"""Products, stock levels and the append-only stock ledger.

A level never goes below zero: the check constraint says so to the database, and ``issue``
takes a row lock first (PostgreSQL) so two shipments of one machine queue instead of racing.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text, func, select, true
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base, utcnow
from .errors import NotFound, OutOfStock, ValidationError
from .money import parse_money, round_money
from .text import bounded, one_line, shown


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("unit_price >= 0", name="price_not_negative"),
        CheckConstraint("tax_rate >= 0 and tax_rate <= 100", name="tax_rate_pct"),
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
    stock: Mapped[StockLevel | None] = relationship(back_populates="product")

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
PRODUCT_FIELDS = ("sku", "name", "price", "tax_rate", "needs_qa", "checklist", "description", "offered")


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
    _keep_own_checks(product, values)
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


def _keep_own_checks(product: Product, values: dict[str, Any]) -> None:
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
            "on_hand": product.stock.on_hand if product.stock is not None else 0}


class StockLevel(Base):
    __tablename__ = "stock_levels"
    __table_args__ = (CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),)

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(default=0)
    product: Mapped[Product] = relationship(back_populates="stock")


class StockMove(Base):
    """One line of the ledger. ``source_key`` makes a move for one business event unique."""

    __tablename__ = "stock_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    quantity: Mapped[int]  # + in, - out
    reason: Mapped[str] = mapped_column(String(30))
    reference: Mapped[str] = mapped_column(String(40), default="")
    source_key: Mapped[str] = mapped_column(String(80), unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[str] = mapped_column(String(40), default="system")

    product: Mapped[Product] = relationship()


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


def locked_level(session: Session, product: Product, create: bool = False) -> StockLevel:
    """The product's stock level, row-locked (PostgreSQL) and read fresh; ``create``: made at 0 first
    if the product has none yet."""
    if create and session.get(StockLevel, product.id) is None:
        session.add(StockLevel(product_id=product.id, on_hand=0))
        session.flush()
    level = session.scalars(
        select(StockLevel).where(StockLevel.product_id == product.id).with_for_update()
    ).one_or_none()
    if level is None:
        raise NotFound("stock level for", product.sku)
    session.refresh(level)  # the lock may have waited for another writer: read what it wrote
    return level


def receive(session: Session, product: Product, quantity: int, *, reason: str, source_key: str,
            reference: str = "", by: str = "system") -> StockMove:
    if quantity <= 0:
        raise ValidationError("quantity", "must be greater than zero")
    level = locked_level(session, product, create=True)
    level.on_hand += quantity
    move = StockMove(product_id=product.id, quantity=quantity, reason=reason,
                     reference=reference, source_key=source_key, by=by)
    session.add(move)
    return move


def issue(session: Session, product: Product, quantity: int, *, reason: str, source_key: str,
          reference: str = "", by: str = "system", field: str = "quantity") -> StockMove:
    if quantity <= 0:
        raise ValidationError(field, "must be greater than zero")
    level = locked_level(session, product)
    if level.on_hand < quantity:
        raise OutOfStock(product.sku, quantity, level.on_hand, field=field)
    level.on_hand -= quantity
    move = StockMove(product_id=product.id, quantity=-quantity, reason=reason,
                     reference=reference, source_key=source_key, by=by)
    session.add(move)
    return move


def import_products(session: Session, name: str, rows: list[tuple[int, dict[str, Any]]]) -> dict[str, list[str]]:
    """A catalogue file's rows ((row number, {column: text})), all or none: a new SKU is added, a
    known one set to what its row says (an empty ``needs_qa`` is yes; an empty ``offered`` leaves
    it as it is). Every broken rule of every row is gathered first (``FileRefused``); only a file
    without any is written. Returns the SKUs added, changed and unchanged."""
    from .errors import FileRefused

    problems: list[tuple[int, str, str]] = []
    plans: list[tuple[int, str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    named = [str(raw.get("sku") or "").strip() for _, raw in rows]
    existing = set(session.scalars(select(Product.sku).where(Product.sku.in_(named)))) if named else set()
    for row_no, raw in rows:
        try:
            sku = valid_sku(raw.get("sku"))
        except ValidationError as exc:
            problems.append((row_no, "sku", exc.rule))
            sku = None
        if sku is not None and sku in seen:
            problems.append((row_no, "sku", f"{sku} is also on row {seen[sku]}"))
        elif sku is not None:
            seen[sku] = row_no
        given = {k: raw.get(k) for k in PRODUCT_FIELDS if k != "sku" and k in raw}
        if not str(given.get("needs_qa") or "").strip():
            if sku in existing:  # a known product: QA as it is, unless the row lists checks
                given.pop("needs_qa", None)
                if not str(given.get("checklist") or "").strip():
                    given.pop("checklist", None)
            else:
                given["needs_qa"] = "yes"
        values, broken = product_values(given, new=True)
        problems += [(row_no, exc.field, exc.rule) for exc in broken]
        if sku is not None:
            plans.append((row_no, sku, values))
    if problems:
        raise FileRefused(name, problems, len(rows))
    known = {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(list(seen))))}
    result: dict[str, list[str]] = {"added": [], "changed": [], "unchanged": []}
    for _row_no, sku, values in plans:
        product = known.get(sku)
        if product is None:
            product = Product(sku=sku, **values)
            product.retired_at = None if product.active is not False else utcnow()
            product.stock = StockLevel(on_hand=0)
            session.add(product)
            result["added"].append(sku)
            continue
        changed = False
        _keep_own_checks(product, values)
        for column, value in values.items():
            if getattr(product, column) != value:
                setattr(product, column, value)
                changed = True
        if "active" in values and changed:
            product.retired_at = None if product.active else (product.retired_at or utcnow())
        result["changed" if changed else "unchanged"].append(sku)
    session.flush()
    return result


# --- stock: goods in, counts, the ledger, and what open orders hold ---------------------------------

MAX_QUANTITY = 1_000_000


def quantity(value: object, field: str, *, zero: bool = False) -> int:
    """A count of pieces a person typed: a whole number (at least 1; ``zero``: at least 0)."""
    text = str(value).strip() if not isinstance(value, bool) else "?"
    if not re.fullmatch(r"-?[0-9]{1,9}", text):
        raise ValidationError(field, f"must be a whole number, got {shown(value)}")
    number = int(text)
    low = 0 if zero else 1
    if not low <= number <= MAX_QUANTITY:
        raise ValidationError(field, f"must be between {low} and {MAX_QUANTITY:,}, got {number}")
    return number


def reserved(session: Session, product_ids: list[int] | None = None) -> dict[int, int]:
    """What open deals' orders hold, per product: ordered and not yet shipped. An order reserves
    when it is made; a shipment takes its pieces out of the reservation; a deal lost or closed
    frees what it held. Derived from the orders themselves, so it cannot drift from them."""
    from sqlalchemy import func

    from .deal import Deal
    from .orders import SalesOrder, SalesOrderLine

    query = (select(SalesOrderLine.product_id, func.sum(SalesOrderLine.quantity - SalesOrderLine.shipped_qty))
             .join(SalesOrder, SalesOrder.id == SalesOrderLine.order_id).join(Deal, Deal.id == SalesOrder.deal_id)
             .where(Deal.status == "open").group_by(SalesOrderLine.product_id))
    if product_ids is not None:
        query = query.where(SalesOrderLine.product_id.in_(product_ids))
    return {pid: int(qty) for pid, qty in session.execute(query) if qty}


def availability(session: Session, product: Product) -> tuple[int, int, int]:
    """(on hand, reserved, available) for one product; available may be below zero (over-reserved)."""
    on_hand = product.stock.on_hand if product.stock is not None else 0
    held = reserved(session, [product.id]).get(product.id, 0)
    return on_hand, held, on_hand - held


def stock_rows(session: Session, skus: list[str] | None = None) -> list[dict[str, Any]]:
    """Every product's stock: on hand, reserved by open orders, available (on hand - reserved)."""
    query = select(Product).order_by(Product.sku)
    if skus:
        query = query.where(Product.sku.in_(skus))
    products = list(session.scalars(query))
    held = reserved(session)
    rows = []
    for p in products:
        on_hand = p.stock.on_hand if p.stock is not None else 0
        rows.append({"sku": p.sku, "name": p.name, "on_hand": on_hand, "reserved": held.get(p.id, 0),
                     "available": on_hand - held.get(p.id, 0), "unit_price": str(p.unit_price),
                     "offered": p.active})
    return rows


def receive_goods(session: Session, product: Product, qty: object, ref: object, by: str) -> StockMove:
    """Goods in against a delivery reference (the supplier's delivery note): once per reference
    and product, so a receipt typed twice does not count the goods twice."""
    count = quantity(qty, "quantity")
    reference = one_line(ref, "ref", 40, required=True)
    key = f"goods-in:{product.sku}:{reference}"
    earlier = session.scalars(select(StockMove).where(StockMove.source_key == key)).one_or_none()
    if earlier is not None:
        raise ValidationError("ref", f"{reference} was already received for {product.sku} ({earlier.quantity} on "
                                     f"{earlier.at:%Y-%m-%d %H:%M} by {earlier.by}); a new delivery has its own "
                                     f"reference")
    return receive(session, product, count, reason="goods_in", source_key=key, reference=reference, by=by)


def count_stock(session: Session, product: Product, to: object, reason: object, by: str) -> StockMove | None:
    """A count: the level becomes what was counted, the difference written to the ledger with the
    reason. None when the count agrees (nothing to move)."""
    import uuid

    counted = quantity(to, "to", zero=True)
    why = one_line(reason, "reason", 40, required=True)
    level = locked_level(session, product, create=True)
    difference = counted - level.on_hand
    if difference == 0:
        return None
    level.on_hand = counted
    move = StockMove(product_id=product.id, quantity=difference, reason="count", reference=why,
                     source_key=f"count:{product.sku}:{uuid.uuid4().hex}", by=by)
    session.add(move)
    return move


def move_rows(session: Session, sku: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The ledger, newest first: when, who, which product, how many in (+) or out (-), why and
    which document (a shipment's number, a delivery note, a count's reason)."""
    query = select(StockMove).order_by(StockMove.at.desc(), StockMove.id.desc()).limit(limit)
    if sku:
        query = query.where(StockMove.product_id == product_by_sku(session, sku).id)
    return [{"at": m.at.isoformat(timespec="seconds"), "by": m.by, "sku": m.product.sku, "quantity": m.quantity,
             "reason": m.reason, "reference": m.reference} for m in session.scalars(query)]


def shortages(session: Session, lines: list[tuple[Product, int]], exclude_order: int | None = None) -> list[str]:
    """Lines that want more than is available (on hand less what open orders hold; ``exclude_order``:
    not counting that order's own reservation), as a person reads them. An order may still be made;
    a shipment never takes stock below zero."""
    from sqlalchemy import func

    from .deal import Deal
    from .orders import SalesOrder, SalesOrderLine

    held = reserved(session, [p.id for p, _ in lines])
    if exclude_order is not None:
        own = session.execute(select(SalesOrderLine.product_id,
                                     func.sum(SalesOrderLine.quantity - SalesOrderLine.shipped_qty))
                              .join(SalesOrder, SalesOrder.id == SalesOrderLine.order_id)
                              .join(Deal, Deal.id == SalesOrder.deal_id)
                              .where(SalesOrder.id == exclude_order, Deal.status == "open")
                              .group_by(SalesOrderLine.product_id))
        for pid, qty in own:
            held[pid] = held.get(pid, 0) - int(qty or 0)
    notes = []
    for product, wanted in lines:
        on_hand = product.stock.on_hand if product.stock is not None else 0
        available = on_hand - held.get(product.id, 0)
        if wanted > available:
            notes.append(f"{product.sku}: {wanted} wanted, {max(available, 0)} available "
                         f"({on_hand} on hand, {held.get(product.id, 0)} reserved by open orders)")
    return notes
