"""The reports of what happens after a sale: returns and warranty claims per month and product
(``returns``, with its chart), and units whose warranty ends soon (``warranty``)."""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import (
    Customer,
    Deal,
    Product,
    SalesOrderLine,
    utcnow,
)

RETURNS_COLUMNS = ["month", "sku", "returns", "warranty_returns", "units_returned", "restocked", "scrapped",
                   "to_repair", "claims"]
RETURN_COUNTS = RETURNS_COLUMNS[2:]


def returns(session: Session) -> pd.DataFrame:
    """Returns and warranty claims per month and product. A return counts in the month it was asked
    for (a refused one not at all): ``returns`` holding the product (``warranty_returns`` of them a
    claim's), the ``units_returned`` (received so far) and what QA did with them (``restocked``,
    ``scrapped``, ``to_repair``; units received and not inspected yet are in none). A claim counts
    in the month it was opened, under its unit's product."""
    from models.returns import ReturnLine, ReturnOrder
    from models.serials import Serial
    from models.states import ReturnStatus
    from models.warranty import WarrantyClaim

    lines = session.execute(
        select(ReturnOrder.requested_at, SalesOrderLine.sku, ReturnOrder.id, ReturnOrder.with_credit,
               ReturnLine.received_qty, ReturnLine.restock_qty, ReturnLine.scrap_qty, ReturnLine.repair_qty)
        .join(ReturnLine, ReturnLine.return_id == ReturnOrder.id)
        .join(SalesOrderLine, SalesOrderLine.id == ReturnLine.order_line_id)
        .where(ReturnOrder.status != ReturnStatus.REFUSED)).all()
    data = [{"month": at.strftime("%Y-%m"), "sku": sku, "return_id": rid,
             "warranty_return_id": None if with_credit else rid, "units_returned": received,
             "restocked": restock, "scrapped": scrap, "to_repair": repair, "claims": 0}
            for at, sku, rid, with_credit, received, restock, scrap, repair in lines]
    claims = session.execute(select(WarrantyClaim.opened_at, Product.sku)
                             .join(Serial, Serial.id == WarrantyClaim.serial_id)
                             .join(Product, Product.id == Serial.product_id)).all()
    data += [{"month": at.strftime("%Y-%m"), "sku": sku, "return_id": None, "warranty_return_id": None,
              "units_returned": 0, "restocked": 0, "scrapped": 0, "to_repair": 0, "claims": 1} for at, sku in claims]
    if not data:
        return pd.DataFrame(columns=RETURNS_COLUMNS)
    df = (pd.DataFrame(data).groupby(["month", "sku"], as_index=False)
          .agg(returns=("return_id", "nunique"), warranty_returns=("warranty_return_id", "nunique"),
               units_returned=("units_returned", "sum"), restocked=("restocked", "sum"),
               scrapped=("scrapped", "sum"), to_repair=("to_repair", "sum"), claims=("claims", "sum")))
    df[RETURN_COUNTS] = df[RETURN_COUNTS].astype(int)
    return df[RETURNS_COLUMNS].sort_values(["month", "sku"]).reset_index(drop=True)


WARRANTY_COLUMNS = ["serial", "sku", "customer", "deal", "shipped_on", "warranty_end", "days_left", "open_claims"]
WARRANTY_WITHIN = "30d"


def warranty(session: Session, today: date | None = None, within: str | None = None) -> pd.DataFrame:
    """Units with their customer whose warranty ends from ``today`` to the end of ``within`` (30d,
    12w, 6m, 1y; default 30 days), soonest first: the customer, the deal, the ship date, the
    warranty's end, the days left and the claims still open on it (their numbers)."""
    from models.serials import Serial, period_end
    from models.states import ClaimStatus, SerialStatus
    from models.warranty import WarrantyClaim

    today = today or utcnow().date()
    until = period_end(within if within is not None else WARRANTY_WITHIN, today, "--within")
    # the columns, in one query: loading each unit's product, customer and deal took 10 s for 4,700 units
    units = session.execute(select(Serial.id, Serial.serial, Product.sku, Customer.name, Deal.number, Serial.shipped_on,
                                   Serial.warranty_end)
                            .join(Product, Product.id == Serial.product_id)
                            .outerjoin(Customer, Customer.id == Serial.customer_id)
                            .outerjoin(Deal, Deal.id == Serial.deal_id)
                            .where(Serial.status == SerialStatus.SHIPPED, Serial.warranty_end >= today,
                                   Serial.warranty_end <= until)
                            .order_by(Serial.warranty_end, Product.sku, Serial.serial)).all()
    open_claims: dict[int, list[str]] = {}
    if units:
        for serial_id, number in session.execute(
                select(WarrantyClaim.serial_id, WarrantyClaim.number)
                .where(WarrantyClaim.serial_id.in_([u.id for u in units]), WarrantyClaim.status != ClaimStatus.CLOSED)
                .order_by(WarrantyClaim.id)):
            open_claims.setdefault(serial_id, []).append(number)
    rows = [{"serial": u.serial, "sku": u.sku, "customer": u.name if u.name is not None else "",
             "deal": u.number if u.number is not None else "", "shipped_on": u.shipped_on,
             "warranty_end": u.warranty_end, "days_left": (u.warranty_end - today).days,
             "open_claims": ", ".join(open_claims.get(u.id, []))}
            for u in units]
    return pd.DataFrame(rows, columns=WARRANTY_COLUMNS)


def _returns_chart(ax, df: pd.DataFrame) -> None:
    """Units returned per month, stacked by what QA did with them (received and not inspected yet:
    "awaiting inspection"), and beside them the warranty claims opened that month."""
    from matplotlib.ticker import MaxNLocator

    by_month = df.groupby("month", sort=True)[RETURN_COUNTS].sum() if len(df) else pd.DataFrame(
        columns=RETURN_COUNTS)
    months = list(by_month.index)
    xs = [x - 0.2 for x in range(len(months))]
    waiting = [max(int(r.units_returned - r.restocked - r.scrapped - r.to_repair), 0) for r in by_month.itertuples()]
    bottom = [0] * len(months)
    for label, values, color in (("restocked", by_month["restocked"], "#548235"),
                                 ("scrapped", by_month["scrapped"], "#c00000"),
                                 ("to repair", by_month["to_repair"], "#ed7d31"),
                                 ("awaiting inspection", waiting, "#a5a5a5")):
        values = [int(v) for v in values]
        ax.bar(xs, values, 0.4, bottom=bottom, label=f"units {label}", color=color)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    claims = ax.bar([x + 0.4 for x in xs], [int(v) for v in by_month["claims"]], 0.4, label="warranty claims",
                    color="#1f4e79")
    ax.bar_label(claims, labels=[str(int(v)) if v else "" for v in by_month["claims"]], padding=2)
    ax.set_xticks(list(range(len(months))), months)
    ax.set_xlabel("month")
    ax.set_ylabel("units returned / claims")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0, top=max([*bottom, *by_month["claims"], 1]) * 1.15)
    if months:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)  # beside the bars, never over them
    else:
        ax.text(0.5, 0.5, "no returns or warranty claims", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Returns and warranty claims per month")
