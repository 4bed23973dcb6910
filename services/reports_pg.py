"""The reports that add up every row of the history (stage times, sales, discounts, cash, aging),
added up by PostgreSQL instead of row by row in Python: over five years (100,000 deals, 1.2M waits,
400,000 order lines, 200,000 payments) loading the rows took 20 s (stage-times) to 8 minutes
(cash: three lazy loads per payment). ``services.reports`` (and ``reports_cash``) call these on
PostgreSQL only.

Each gives what its counterpart in ``services.reports`` gives, to the digit. Money is PostgreSQL's
exact ``numeric``, rounded as ``models.pricing`` rounds, line by line to the currency's minor unit
(``round(x, places)`` rounds half away from zero, as ``ROUND_HALF_UP`` does); a conversion to the
company's currency divides with 20 decimals, then rounds (``models.prices.to_company``). SQLite
has no exact decimal (its numbers are floats), so there ``services.reports`` keeps adding up the
rows in Python; its reports are small."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal

import numpy as np
from sqlalchemy import (
    Date,
    DateTime,
    Integer,
    Numeric,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from models import (
    Customer,
    Deal,
    Estimate,
    EstimateLine,
    EstimateRevision,
    Invoice,
    InvoiceLine,
    Lead,
    Payment,
    SalesOrder,
    SalesOrderLine,
    StaffUser,
)
from models.credit_notes import CreditNote
from models.money import MINOR_UNITS
from models.states import OrderStatus

MONTH = literal_column("'YYYY-MM'")  # to_char's format, as strftime("%Y-%m")
ZERO = literal(Decimal("0.00"), Numeric(14, 2))  # a money column's zero, two decimals as Python's Decimal("0.00")


def on_postgresql(session: Session) -> bool:
    """Whether the reports that add up every row let the database do it."""
    return session.get_bind().dialect.name == "postgresql"


def tune(session: Session | Connection) -> None:
    """For this transaction's reports: no JIT compilation (it took 1.4 s to compile the stage
    times' query, which runs once), room to group and sort in memory rather than on disk, and
    scans shared with PostgreSQL's parallel workers where a report reads a whole table: by its
    default costs, handing each row back from a worker costs more than reading it, so a report
    over five years of waits (1.2M rows) ran on one core (1.6 s; 1.3 s on two)."""
    session.execute(text("SET LOCAL jit = off"))
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    session.execute(text("SET LOCAL parallel_setup_cost = 100"))
    session.execute(text("SET LOCAL parallel_tuple_cost = 0.01"))


def _minor_units(session: Session) -> dict[str, int]:
    """The currencies deals use that do not have two decimals, and their decimals."""
    return {c: MINOR_UNITS[c] for c in session.scalars(select(Deal.currency).distinct()) if MINOR_UNITS.get(c, 2) != 2}


def _places(units: dict[str, int], currency):
    """The decimals of each row's currency (``models.money.quantum``): a literal 2 when every
    currency in use has two."""
    return case(units, value=currency, else_=2) if units else literal_column("2")


def _once(query):
    """``query`` as a subquery PostgreSQL computes once per row: OFFSET 0 keeps the planner from
    inlining it, which would compute a column again wherever the outer query uses it (a line's
    rounded gross, net or tax: half the time of these reports)."""
    return query.offset(0).subquery()


def _rate_unless_own(own: str, currency, revision_id):
    """The exchange rate fixed on the estimate revision of a document in another currency than the
    company's; none in the company's own, where it is not needed (and not looked up)."""
    rate = select(EstimateRevision.fx_rate).where(EstimateRevision.id == revision_id).scalar_subquery()
    return case((currency != own, rate))


def _in_company(amounts, currency, rate, own: str):
    """Of one currency's rows: ``models.prices.to_company`` of each amount, summed as
    ``services.reports_cash._sum_or_none`` sums them. In the company's currency the amounts
    themselves; else each divided by its document's rate and rounded, and no sum where a
    document has no rate."""
    converted = func.round(cast(amounts, Numeric(38, 20)) / rate, MINOR_UNITS.get(own, 2))
    return case((currency == own, func.sum(amounts)),
                (func.count().filter(rate.is_(None)) == 0, func.sum(converted)))


def sales(session: Session, own: str) -> list[tuple]:
    """(month, sku, currency, quantity, net, net_company) of the orders not cancelled."""
    line, places = SalesOrderLine, _places(_minor_units(session), Deal.currency)
    gross = func.round(line.unit_price * line.quantity, places)
    lines = _once(select(func.date_trunc("month", SalesOrder.created_at).label("month"), line.sku, Deal.currency,
                         line.quantity, (gross - func.round(gross * line.discount_pct / 100, places)).label("net"),
                         _rate_unless_own(own, Deal.currency, SalesOrder.estimate_revision_id).label("rate"))
                  .join(SalesOrder, SalesOrder.id == line.order_id).join(Deal, Deal.id == SalesOrder.deal_id)
                  .where(SalesOrder.status != OrderStatus.CANCELLED))
    c = lines.c
    return session.execute(
        select(func.to_char(c.month, MONTH), c.sku, c.currency, func.sum(c.quantity), func.sum(c.net),
               _in_company(c.net, c.currency, c.rate, own))
        .group_by(c.month, c.sku, c.currency)).all()


def discounts(session: Session, own: str) -> list[tuple]:
    """(prepared_by, currency, sent, discounted, largest_pct, discount, discount_company, approved,
    lowered, sent_back) of the estimate revisions sent or decided by a manager."""
    units, line = _minor_units(session), EstimateLine
    gross = func.round(line.unit_price * line.quantity, _places(units, Deal.currency))
    lines = select(line.revision_id, line.quantity, line.unit_price, line.discount_pct, gross.label("gross"))
    if units:  # each line rounds to its deal's currency
        lines = (lines.join(EstimateRevision, EstimateRevision.id == line.revision_id)
                 .join(Estimate, Estimate.id == EstimateRevision.estimate_id).join(Deal, Deal.id == Estimate.deal_id)
                 .add_columns(Deal.currency))
    # a line without a discount gives nothing, unless its gross was rounded (its price has more
    # decimals than its deal's currency): only the others are added up (a third of five years' lines)
    lines = _once(lines.where((line.discount_pct != 0) | (gross != line.unit_price * line.quantity)))
    c = lines.c
    places = _places(units, c.currency if units else None)
    given = (select(c.revision_id, func.sum(c.quantity * c.unit_price - (c.gross - func.round(
                 c.gross * c.discount_pct / 100, places))).label("given"), func.max(c.discount_pct).label("largest"))
             .group_by(c.revision_id).subquery())
    rev = _once(select(EstimateRevision.prepared_by_id, Deal.currency,
                       EstimateRevision.sent_at.is_not(None).label("sent"),
                       EstimateRevision.discount_decision.label("decision"),
                       func.coalesce(given.c.given, 0).label("given"), func.coalesce(given.c.largest, ZERO).label("largest"),
                       case((Deal.currency != own, EstimateRevision.fx_rate)).label("rate"))
                .join(Estimate, Estimate.id == EstimateRevision.estimate_id).join(Deal, Deal.id == Estimate.deal_id)
                .outerjoin(given, given.c.revision_id == EstimateRevision.id)
                .where(EstimateRevision.sent_at.is_not(None) | EstimateRevision.discount_decision.is_not(None)))
    r = rev.c
    discount = case((r.sent, func.round(r.given, _places(units, r.currency))), else_=0)  # an unsent one's: Decimal(0)
    return session.execute(
        select(StaffUser.handle, r.currency, func.sum(cast(r.sent, Integer)),
               func.sum(case((r.sent & (r.given > 0), 1), else_=0)),
               func.coalesce(func.max(r.largest).filter(r.sent), 0), func.sum(discount),
               _in_company(discount, r.currency, case((r.sent, r.rate), else_=literal(1, Numeric)), own),
               *(func.sum(case((r.decision == d, 1), else_=0)) for d in ("approved", "lowered", "returned")))
        .join(StaffUser, StaffUser.id == r.prepared_by_id)
        .group_by(StaffUser.handle, r.currency)).all()


def cash(session: Session, own: str, today: date) -> list[tuple]:
    """(month, currency, invoice_payments, deposits, refunds, net, net_company) of the money that
    came in up to ``today``: payments by the day received, refunds of credit notes negative."""
    moves = union_all(
        select(func.coalesce(Payment.received_on, cast(Payment.at, Date)).label("day"), Payment.invoice_id,
               case((Invoice.kind == "deposit", "deposits"), else_="invoice_payments").label("kind"),
               Payment.amount.label("amount"))
        .join(Invoice, Invoice.id == Payment.invoice_id),
        select(cast(CreditNote.at, Date), CreditNote.invoice_id, literal("refunds"), -CreditNote.refunded)
        .where(CreditNote.refunded > 0)).subquery()
    m = (select(func.date_trunc("month", cast(moves.c.day, DateTime)).label("month"), Deal.currency, moves.c.kind,
                moves.c.amount, _rate_unless_own(own, Deal.currency, SalesOrder.estimate_revision_id).label("rate"))
         .join(Invoice, Invoice.id == moves.c.invoice_id).join(Deal, Deal.id == Invoice.deal_id)
         .join(SalesOrder, SalesOrder.id == Invoice.order_id)
         .where(moves.c.day <= today).subquery()).c
    return session.execute(
        select(func.to_char(m.month, MONTH), m.currency,
               *(func.sum(case((m.kind == kind, m.amount), else_=ZERO)) for kind in ("invoice_payments", "deposits",
                                                                                      "refunds")),
               func.sum(m.amount), _in_company(m.amount, m.currency, m.rate, own))
        .group_by(m.month, m.currency)).all()


def unpaid_invoices(session: Session, end: datetime) -> list[tuple]:
    """(number, kind, customer, due_date, currency, amount_due, fx_rate) of the invoices issued
    before ``end`` with something still due then (total less payments before ``end``) and no
    credit note before ``end``."""
    units, line = _minor_units(session), InvoiceLine
    gross = func.round(line.unit_price * line.quantity, _places(units, Deal.currency))
    lines = (select(line.invoice_id, line.discount_pct, line.tax_rate, gross.label("gross"))
             .join(Invoice, Invoice.id == line.invoice_id).where(Invoice.issued_at < end, Invoice.may_be_due_at(end)))
    if units:  # each line rounds to its deal's currency
        lines = lines.join(Deal, Deal.id == Invoice.deal_id).add_columns(Deal.currency)
    c = _once(lines).c
    places = _places(units, c.currency if units else None)
    c = _once(select(c.invoice_id, c.tax_rate, *([c.currency] if units else []),
                     (c.gross - func.round(c.gross * c.discount_pct / 100, places)).label("net"))).c
    places = _places(units, c.currency if units else None)
    totals = (select(c.invoice_id, (func.round(func.sum(c.net), places)
                                    + func.round(func.sum(func.round(c.net * c.tax_rate / 100, places)), places)
                                    ).label("total"))
              .group_by(c.invoice_id, *([c.currency] if units else [])).subquery())
    paid = (select(func.sum(Payment.amount)).where(Payment.invoice_id == Invoice.id, Payment.at < end)
            .scalar_subquery())  # of each invoice left: a few rows by the index
    due = totals.c.total - func.coalesce(paid, ZERO)
    credited = select(CreditNote.id).where(CreditNote.invoice_id == Invoice.id, CreditNote.at < end).exists()
    unpaid = (select(Invoice.id, Invoice.number, Invoice.kind, Invoice.deal_id, Invoice.order_id, Invoice.due_date,
                     due.label("due"))
              .join(totals, totals.c.invoice_id == Invoice.id)
              .where(due > 0, ~credited).subquery())
    return session.execute(  # the few invoices unpaid: their deal, customer and rate
        select(unpaid.c.number, unpaid.c.kind, case((Deal.customer_id.is_not(None), Customer.name), else_=Lead.company),
               unpaid.c.due_date, Deal.currency, unpaid.c.due, EstimateRevision.fx_rate)
        .join(Deal, Deal.id == unpaid.c.deal_id).join(Lead, Lead.id == Deal.lead_id)
        .outerjoin(Customer, Customer.id == Deal.customer_id)
        .join(SalesOrder, SalesOrder.id == unpaid.c.order_id)
        .join(EstimateRevision, EstimateRevision.id == SalesOrder.estimate_revision_id)
        .order_by(unpaid.c.id)).all()


# Each stage's and wait's span (a stage from one change of an opportunity to its next, or
# ``now``; a wait from opened to answered, or ``now``), grouped per (kind, name, owner) and sorted
# there; of each group, its count and the spans at the positions pandas reads for the median and
# the 0.9 quantile: the middle one or two, and around 0.9 × (n - 1), one either side (numpy
# computes that position in floating point). Sorting each group's array on its own takes a quarter
# of the time of one sort of all 1.6M spans by group and span (12 s of CPU: that sort compares the
# names by the database's locale). The reps are shared out over ``PARTS`` queries on connections
# of their own, run at once: a group is one rep's, so no group is split, and the grouping and
# sorting that PostgreSQL 15 does in one process (no parallel array_agg) use two cores.
STAGE_TIMES = text("""
WITH changes AS (
    SELECT o.owner_id, sc.to_stage AS name, sc.at,
           coalesce(lead(sc.at) OVER (PARTITION BY sc.opportunity_id ORDER BY sc.at, sc.id), :now) AS until
    FROM opportunity_stage_changes sc JOIN opportunities o ON o.id = sc.opportunity_id
    WHERE o.owner_id % :parts = :part
), spans AS (
    SELECT 'stage' AS kind, name, owner_id, until - at AS span FROM changes WHERE name NOT LIKE 'closed%'
    UNION ALL
    SELECT 'wait', w.step, d.owner_id, coalesce(w.answered_at, :now) - w.opened_at
    FROM waits w JOIN deals d ON d.id = w.deal_id WHERE d.owner_id % :parts = :part
), groups AS (
    SELECT kind, name, owner_id, count(*) AS n, array_agg(span) AS spans FROM spans GROUP BY kind, name, owner_id
)
SELECT g.kind, g.name, u.handle, g.n, s.sorted[(g.n - 1) / 2 + 1], s.sorted[g.n / 2 + 1],
       s.sorted[9 * (g.n - 1) / 10], s.sorted[9 * (g.n - 1) / 10 + 1], s.sorted[9 * (g.n - 1) / 10 + 2]
FROM groups g JOIN staff_users u ON u.id = g.owner_id,
     LATERAL (SELECT array_agg(span ORDER BY span) AS sorted FROM unnest(g.spans) AS span) s
""").bindparams(bindparam("now", type_=DateTime()), bindparam("part", type_=Integer()),
               bindparam("parts", type_=Integer()))
PARTS = 2  # five years' stage times: 1.3 s in one query, 0.8 s in two (2 cores)


def stage_times(session: Session, now: datetime) -> list[tuple]:
    """(kind, name, owner, count, median_h, p90_h) per stage or wait and rep, unrounded."""
    out = []
    for kind, name, owner, n, *spans in _in_parts(session, STAGE_TIMES, {"now": now}):
        # hours as pandas computes them: whole microseconds / 10^6 / 3600
        at = {i: span.total_seconds() / 3600 for i, span in zip(positions(n), spans, strict=True) if span is not None}
        out.append((kind, name, owner, n, *spread(n, at)))
    return out


def _in_parts(session: Session, query, params: dict) -> list:
    """The rows of ``query`` for each of its ``PARTS`` (``:part`` of ``:parts``), asked at once on
    connections of their own, all reading one snapshot of the database (the first part's,
    exported to the others): a deal handed to another rep meanwhile counts once, as in one query.
    What is committed: the session's own writes, had it any, are not seen (a report writes none)."""
    engine = session.get_bind()
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as first:
        tune(first)
        snapshot = first.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        if not SNAPSHOT_ID.fullmatch(snapshot):
            raise ValueError(f"unexpected snapshot id from PostgreSQL: {snapshot!r}")

        def other(k: int) -> list:
            with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
                conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))  # no parameters in SET
                tune(conn)
                return conn.execute(query, {**params, "part": k, "parts": PARTS}).all()

        with ThreadPoolExecutor(PARTS - 1) as pool:
            others = [pool.submit(other, k) for k in range(1, PARTS)]
            rows = list(first.execute(query, {**params, "part": 0, "parts": PARTS}).all())
            for done in others:
                rows.extend(done.result())
    return rows


SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9A-F]+)?")  # pg_export_snapshot's: 00000003-0000001B-1


def positions(n: int) -> tuple[int, ...]:
    """The positions in ``n`` sorted values, from 0, that ``STAGE_TIMES`` picks (none past the ends)."""
    k = 9 * (n - 1) // 10
    return (n - 1) // 2, n // 2, k - 1, k, k + 1


def spread(n: int, at: dict[int, float]) -> tuple[float, float]:
    """The median and the 0.9 quantile of ``n`` hours, pandas' own, from the hours at the positions
    pandas reads (``at``: position in sorted order -> hours). The median as pandas' groupby takes
    it (the middle one, or the mean of the middle two); the quantile from numpy, as pandas'
    ``Series.quantile`` calls it, over ``n`` values that hold those hours at those positions
    (``numpy.quantile`` reads no other values of the sorted ones)."""
    middle = at[n // 2] if n % 2 else (at[n // 2] + at[n // 2 - 1]) / 2
    known = sorted(at)
    counts = np.diff([-1, *known])  # each known value also fills the unknown positions before it
    counts[-1] += n - 1 - known[-1]
    return middle, float(np.quantile(np.repeat([at[i] for i in known], counts), [0.9])[0])
