"""The sales manager's reports, as pandas DataFrames. Aggregation that scales with the data (the
pipeline over a million opportunities) is done by the database; pandas shapes the result.

Money stays Decimal (object columns) until it is written out; charts convert to float only to draw.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models import (
    Deal,
    EstimateRevision,
    Invoice,
    Lead,
    Opportunity,
    Product,
    SalesOrder,
    SalesOrderLine,
    StaffUser,
    StageChange,
    StockLevel,
    StockMove,
    Wait,
    utcnow,
)
from models.catalog import reserved
from models.company import the_company
from models.credit_notes import CreditNote
from models.crm import OPEN_STAGES, STAGES
from models.money import round_money
from models.states import InvoiceStatus, OrderStatus

from . import reports_pg

REPORTS = ("pipeline", "funnel", "stage-times", "sales", "stock", "aging", "discounts", "cash", "returns",
           "warranty")
AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "over 90")


def pipeline(session: Session) -> pd.DataFrame:
    """The open pipeline by stage, owner and currency: how many opportunities, their expected amount
    (the latest estimate's total once one is sent, the budget before), and the forecast weighted
    by each opportunity's probability. Won and lost opportunities are not pipeline; amounts in
    different currencies are never added together."""
    rows = session.execute(
        select(Opportunity.stage, StaffUser.handle.label("owner"), Deal.currency, func.count().label("opportunities"),
               func.coalesce(func.sum(Opportunity.expected_amount), 0).label("amount"),
               func.coalesce(func.sum(Opportunity.expected_amount * Opportunity.probability), 0).label("weighted"))
        .join(StaffUser, StaffUser.id == Opportunity.owner_id)
        .join(Deal, Deal.opportunity_id == Opportunity.id)
        .where(Opportunity.stage.in_(OPEN_STAGES))
        .group_by(Opportunity.stage, StaffUser.handle, Deal.currency)).all()
    df = pd.DataFrame(rows, columns=["stage", "owner", "currency", "opportunities", "amount", "weighted"])
    df["amount"] = [round_money(Decimal(str(v)), c) for v, c in zip(df["amount"], df["currency"], strict=True)]
    df["weighted"] = [round_money(Decimal(str(v)) / 100, c) for v, c in zip(df["weighted"], df["currency"],
                                                                            strict=True)]
    order = {s: i for i, s in enumerate(STAGES)}
    return (df.assign(_o=df["stage"].map(order)).sort_values(["_o", "owner", "currency"]).drop(columns="_o")
            .reset_index(drop=True))


def funnel(session: Session) -> pd.DataFrame:
    """Lead -> opportunity -> estimate sent -> order -> paid, with conversion from the step before."""
    counts = [
        ("leads", session.scalar(select(func.count()).select_from(Lead))),
        ("opportunities", session.scalar(select(func.count()).select_from(Opportunity))),
        ("estimates sent", session.scalar(select(func.count(func.distinct(EstimateRevision.estimate_id)))  # each has
                                          .where(EstimateRevision.sent_at.is_not(None)))),  # its estimate: no join
        ("orders", session.scalar(select(func.count()).select_from(SalesOrder))),
        ("paid", session.scalar(select(func.count()).select_from(Invoice).where(  # deals paid: final invoices
            Invoice.status == InvoiceStatus.PAID, Invoice.kind == "final"))),
    ]
    df = pd.DataFrame(counts, columns=["step", "deals"])
    prev = df["deals"].shift(1)
    df["conversion_pct"] = [None if pd.isna(p) or p == 0 else round(100 * d / p, 1) for d, p in zip(df["deals"], prev, strict=True)]
    return df


def stage_times(session: Session, now: datetime | None = None) -> pd.DataFrame:
    """Hours spent in each pipeline stage and at each human wait, median and p90, per rep: where
    deals get stuck. A stage or wait still open counts until ``now``."""
    now = now or utcnow()
    columns = ["kind", "name", "owner", "count", "median_h", "p90_h"]
    if reports_pg.on_postgresql(session):
        out = pd.DataFrame(sorted(reports_pg.stage_times(session, now)), columns=columns)
        if out.empty:
            return out
    else:
        out = _stage_times_in_python(session, now)
        if out is None:
            return pd.DataFrame(columns=columns)
    out[["median_h", "p90_h"]] = out[["median_h", "p90_h"]].round(2)
    return out.sort_values(["kind", "p90_h"], ascending=[True, False]).reset_index(drop=True)


def _stage_times_in_python(session: Session, now: datetime) -> pd.DataFrame | None:
    """Each span's hours loaded and grouped by pandas, unrounded (None: no spans)."""
    changes = session.execute(select(StageChange.opportunity_id, StageChange.to_stage, StageChange.at,
                                     StaffUser.handle).join(Opportunity, Opportunity.id == StageChange.opportunity_id)
                              .join(StaffUser, StaffUser.id == Opportunity.owner_id)
                              .order_by(StageChange.opportunity_id, StageChange.at, StageChange.id)).all()
    ch = pd.DataFrame(changes, columns=["opp", "name", "at", "owner"])
    frames = []
    if not ch.empty:
        ch["until"] = ch.groupby("opp")["at"].shift(-1).fillna(now)
        ch = ch[~ch["name"].str.startswith("closed")]
        frames.append(ch.assign(kind="stage", hours=(ch["until"] - ch["at"]).dt.total_seconds() / 3600))
    waits = session.execute(select(Wait.step, Wait.opened_at, Wait.answered_at, StaffUser.handle)
                            .join(Deal, Deal.id == Wait.deal_id).join(StaffUser, StaffUser.id == Deal.owner_id)).all()
    wt = pd.DataFrame(waits, columns=["name", "at", "until", "owner"])
    if not wt.empty:
        wt["until"] = wt["until"].fillna(now)
        frames.append(wt.assign(kind="wait", hours=(wt["until"] - wt["at"]).dt.total_seconds() / 3600))
    if not frames:
        return None
    all_ = pd.concat(frames)[["kind", "name", "owner", "hours"]]
    return (all_.groupby(["kind", "name", "owner"])["hours"]
            .agg(count="count", median_h="median", p90_h=lambda h: h.quantile(0.9)).reset_index())


# A document in another currency than the company's is converted at its own rate: the rate of the
# day its estimate revision was drafted, fixed with its prices (``models.prices``); never today's.
CONVERTED_NOTE = ("{column}: in {currency}, each document converted at its own exchange rate (the one of the day "
                  "its estimate was drafted); empty where a document has none")


def sales(session: Session) -> pd.DataFrame:
    """Ordered quantities and net sales by product, month of the order and currency, and the net in
    the company's currency at each order's own rate (``net_company``)."""
    from models.prices import to_company

    own = the_company(session).currency
    columns = ["month", "sku", "currency", "quantity", "net", "net_company"]
    if reports_pg.on_postgresql(session):
        df = pd.DataFrame(reports_pg.sales(session, own), columns=columns)
        if df.empty:
            return df.assign(company_currency=own)
        return df.assign(company_currency=own).sort_values(["month", "sku", "currency"]).reset_index(drop=True)
    rows = session.scalars(select(SalesOrderLine).join(SalesOrder)  # a cancelled order sold nothing
                           .where(SalesOrder.status != OrderStatus.CANCELLED)).all()
    data = [{"month": ln.order.created_at.strftime("%Y-%m"), "sku": ln.sku, "currency": ln.currency,
             "quantity": ln.quantity, "net": ln.net,
             "net_company": to_company(ln.net, ln.order.estimate_revision.fx_rate, ln.currency, own)} for ln in rows]
    df = pd.DataFrame(data, columns=columns)
    if df.empty:
        return df.assign(company_currency=own)
    return (df.groupby(["month", "sku", "currency"], as_index=False)
            .agg(quantity=("quantity", "sum"), net=("net", "sum"), net_company=("net_company", _sum_or_none))
            .assign(company_currency=own)
            .sort_values(["month", "sku", "currency"]).reset_index(drop=True))


def discounts(session: Session) -> pd.DataFrame:
    """Discounts given, per person who prepared the estimates (the engineer or rep who set them)
    and currency: estimate revisions sent, those with a discount, the largest line discount, the
    discount in money (list price less net) and in the company's currency at each revision's own
    rate, and how many a manager approved as asked, lowered or sent back."""
    from models.prices import to_company

    own = the_company(session).currency
    columns = ["prepared_by", "currency", "sent", "discounted", "largest_pct", "discount", "discount_company",
               "approved", "lowered", "sent_back"]
    if reports_pg.on_postgresql(session):
        df = pd.DataFrame(reports_pg.discounts(session, own), columns=columns)
        if df.empty:
            return df.assign(company_currency=own)
        return df.assign(company_currency=own).sort_values(["prepared_by", "currency"]).reset_index(drop=True)
    revs = session.scalars(select(EstimateRevision).where(EstimateRevision.sent_at.is_not(None)
                                                           | EstimateRevision.discount_decision.is_not(None))).all()
    data = []
    for rev in revs:
        currency = rev.estimate.deal.currency
        given = sum((ln.quantity * ln.unit_price - ln.net for ln in rev.lines), Decimal(0))
        data.append({"prepared_by": rev.prepared_by.handle, "currency": currency,
                     "sent": int(rev.sent_at is not None),
                     "discounted": int(rev.sent_at is not None and given > 0),
                     "largest_pct": rev.largest_discount if rev.sent_at is not None else Decimal(0),
                     "discount": round_money(given, currency) if rev.sent_at is not None else Decimal(0),
                     "discount_company": (to_company(round_money(given, currency), rev.fx_rate, currency, own)
                                          if rev.sent_at is not None else Decimal(0)),
                     "approved": int(rev.discount_decision == "approved"),
                     "lowered": int(rev.discount_decision == "lowered"),
                     "sent_back": int(rev.discount_decision == "returned")})
    df = pd.DataFrame(data, columns=columns)
    if df.empty:
        return df.assign(company_currency=own)
    return (df.groupby(["prepared_by", "currency"], as_index=False)
            .agg(sent=("sent", "sum"), discounted=("discounted", "sum"), largest_pct=("largest_pct", "max"),
                 discount=("discount", "sum"), discount_company=("discount_company", _sum_or_none),
                 approved=("approved", "sum"), lowered=("lowered", "sum"), sent_back=("sent_back", "sum"))
            .assign(company_currency=own).sort_values(["prepared_by", "currency"]).reset_index(drop=True))


def stock(session: Session) -> pd.DataFrame:
    """Levels (on hand, reserved by open orders, available), movements in and out (from the ledger)
    and the value of what is on hand."""
    moved = (select(StockMove.product_id,
                    func.sum(case((StockMove.quantity > 0, StockMove.quantity), else_=0)).label("moved_in"),
                    func.sum(case((StockMove.quantity < 0, -StockMove.quantity), else_=0)).label("moved_out"))
             .group_by(StockMove.product_id).subquery())
    rows = session.execute(select(Product.sku, Product.name, StockLevel.on_hand, Product.unit_price,
                                  func.coalesce(moved.c.moved_in, 0), func.coalesce(moved.c.moved_out, 0))
                           .join(StockLevel, StockLevel.product_id == Product.id)
                           .outerjoin(moved, moved.c.product_id == Product.id).order_by(Product.sku)).all()
    df = pd.DataFrame(rows, columns=["sku", "name", "on_hand", "unit_price", "moved_in", "moved_out"])
    held = {p.sku: n for p, n in ((session.get(Product, pid), n) for pid, n in reserved(session).items())}
    df.insert(3, "reserved", [held.get(sku, 0) for sku in df["sku"]])
    df.insert(4, "available", df["on_hand"] - df["reserved"])
    currency = the_company(session).currency  # catalogue prices are in the company's currency
    df["value"] = [round_money(Decimal(str(p)) * q, currency) for p, q in zip(df["unit_price"], df["on_hand"],
                                                                               strict=True)]
    df["currency"] = currency
    return df


def aging(session: Session, today: date | None = None) -> pd.DataFrame:
    """Receivables by how late they are (current, 1-30, 31-60, 61-90, over 90 days past due), per
    currency: final and deposit invoices alike (``deposit_invoices``/``deposit_due``: the deposits'
    part); an invoice credited by a credit note is no longer owed."""
    from models.prices import to_company

    own = the_company(session).currency
    today = today or utcnow().date()
    end = datetime.combine(today + timedelta(days=1), datetime.min.time())
    rows = []
    for number, kind, customer, due_date, currency, due, rate in _unpaid_invoices(session, end):
        late = (today - due_date).days
        bucket = ("current" if late <= 0 else "1-30" if late <= 30 else "31-60" if late <= 60
                  else "61-90" if late <= 90 else "over 90")
        rows.append({"invoice": number, "kind": kind, "customer": customer, "due_date": due_date,
                     "days_late": max(late, 0), "bucket": bucket, "currency": currency, "amount_due": due,
                     "amount_due_company": to_company(due, rate, currency, own)})
    detail = pd.DataFrame(rows, columns=["invoice", "kind", "customer", "due_date", "days_late", "bucket", "currency",
                                         "amount_due", "amount_due_company"])
    currencies = sorted(set(detail["currency"])) or [own]
    summary = pd.DataFrame([{"bucket": b, "currency": c} for c in currencies for b in AGING_BUCKETS])
    picked = [(detail["bucket"] == b) & (detail["currency"] == c) for b, c in zip(summary["bucket"],
                                                                                    summary["currency"], strict=True)]
    summary["invoices"] = [int(m.sum()) for m in picked]
    summary["amount_due"] = [sum(detail.loc[m, "amount_due"], Decimal("0")) for m in picked]
    summary["amount_due_company"] = [_sum_or_none(detail.loc[m, "amount_due_company"]) for m in picked]
    deposits = [m & (detail["kind"] == "deposit") for m in picked]
    summary["deposit_invoices"] = [int(m.sum()) for m in deposits]
    summary["deposit_due"] = [sum(detail.loc[m, "amount_due"], Decimal("0")) for m in deposits]
    summary["company_currency"] = own
    return summary


def _unpaid_invoices(session: Session, end: datetime) -> list[tuple]:
    """(number, kind, customer, due_date, currency, amount_due, fx_rate) of each invoice issued
    before ``end`` with something due then (its total less the payments before ``end``) and not
    credited by a credit note before ``end``."""
    if reports_pg.on_postgresql(session):
        return reports_pg.unpaid_invoices(session, end)
    credited = set(session.scalars(select(CreditNote.invoice_id).where(CreditNote.at < end)))
    unpaid = []
    for inv in session.scalars(select(Invoice).where(Invoice.issued_at < end, Invoice.may_be_due_at(end))):
        paid = sum((p.amount for p in inv.payments if p.at < end), Decimal("0.00"))
        due = inv.totals.total - paid
        if due > 0 and inv.id not in credited:
            unpaid.append((inv.number, inv.kind, inv.deal.customer_name, inv.due_date, inv.deal.currency, due,
                           inv.order.estimate_revision.fx_rate))
    return unpaid


from .reports_after_sale import (  # noqa: E402, F401 - the reports after a sale, listed with the others
    RETURN_COUNTS,
    RETURNS_COLUMNS,
    WARRANTY_COLUMNS,
    WARRANTY_WITHIN,
    returns,
    warranty,
)
from .reports_cash import CASH_COLUMNS, _sum_or_none, cash  # noqa: E402, F401 - listed with the others
from .reports_charts import CHARTS, _short_money, chart, figure  # noqa: E402, F401 - a report's PNG


def build(session: Session, name: str, as_of: datetime | None = None, within: str | None = None) -> pd.DataFrame:
    if reports_pg.on_postgresql(session):
        reports_pg.tune(session)
    if name == "pipeline":
        return pipeline(session)
    if name == "funnel":
        return funnel(session)
    if name == "stage-times":
        return stage_times(session, as_of)
    if name == "sales":
        return sales(session)
    if name == "stock":
        return stock(session)
    if name == "aging":
        return aging(session, as_of.date() if as_of else None)
    if name == "discounts":
        return discounts(session)
    if name == "cash":
        return cash(session, as_of.date() if as_of else None)
    if name == "returns":
        return returns(session)
    if name == "warranty":
        return warranty(session, as_of.date() if as_of else None, within)
    from models import ValidationError
    raise ValidationError("report", f"must be one of {', '.join(REPORTS)}")


def records(df: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts, with pandas' missing values (NaN, NaT) as None: valid JSON."""
    return df.astype(object).where(pd.notna(df), None).to_dict(orient="records")
