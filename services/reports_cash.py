"""The money coming in and going back, month by month (``cash``): payments, deposits, refunds."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import (
    utcnow,
)
from models.billing import Payment
from models.company import the_company
from models.credit_notes import CreditNote

from . import reports_pg


def _sum_or_none(values) -> Decimal | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values, Decimal("0"))


CASH_COLUMNS = ["month", "currency", "invoice_payments", "deposits", "refunds", "net", "net_company"]


def cash(session: Session, today: date | None = None) -> pd.DataFrame:
    """Money received per month (the day it came in) and currency: payments of final invoices,
    deposits, and refunds of credit notes (negative), their ``net``, and the net in the company's
    currency at each document's own rate (``net_company``). Money kept as a customer's credit
    moves nothing."""
    from models.prices import to_company

    own = the_company(session).currency
    today = today or utcnow().date()
    if reports_pg.on_postgresql(session):  # the database adds up the payments
        df = pd.DataFrame(reports_pg.cash(session, own, today), columns=CASH_COLUMNS)
        if df.empty:
            return df.assign(company_currency=own)
        return df.assign(company_currency=own).sort_values(["month", "currency"]).reset_index(drop=True)
    moves = [(p.received, p.invoice, "deposits" if p.invoice.is_deposit else "invoice_payments", p.amount)
             for p in session.scalars(select(Payment))]
    moves += [(n.at.date(), n.invoice, "refunds", -n.refunded)
              for n in session.scalars(select(CreditNote).where(CreditNote.refunded > 0))]
    data = []
    for day, inv, column, amount in moves:
        if day > today:
            continue
        currency = inv.deal.currency
        data.append({"month": day.strftime("%Y-%m"), "currency": currency, column: amount,
                     "net_company": to_company(amount, inv.order.estimate_revision.fx_rate, currency, own)})
    df = pd.DataFrame(data, columns=[c for c in CASH_COLUMNS if c != "net"])
    if df.empty:
        return pd.DataFrame(columns=CASH_COLUMNS).assign(company_currency=own)
    for column in ("invoice_payments", "deposits", "refunds"):
        df[column] = [Decimal("0.00") if pd.isna(v) else v for v in df[column]]
    df["net"] = df["invoice_payments"] + df["deposits"] + df["refunds"]
    return (df.groupby(["month", "currency"], as_index=False)
            .agg(invoice_payments=("invoice_payments", "sum"), deposits=("deposits", "sum"),
                 refunds=("refunds", "sum"), net=("net", "sum"), net_company=("net_company", _sum_or_none))
            .assign(company_currency=own).sort_values(["month", "currency"]).reset_index(drop=True))
