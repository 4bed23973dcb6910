"""Deposits: a share of the order the customer pays before the machine is released or shipped.

A customer's payment terms may ask for one (``Customer.deposit_pct`` and ``deposit_before``;
none set: the company's, ``dealflow company edit``); finance may ask for one instead of releasing a
credit hold. The terms are fixed on the order when it is made. The deposit invoice has its own
gap-free series (DEP-0001) and one line per tax rate of the order: the deposit's share of that
rate's net, taxed at it, so its tax is the order's in proportion (a whole deposit, 100 %: the
order's own lines). The final invoice deducts the
deposit paid with the same lines negated, so it is the order less the deposit, to the minor unit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from .deposit_terms import (  # noqa: F401  (the terms, read where deposits are)
    BEFORE_WORDS,
    DEPOSIT_BEFORE,
    DepositTerms,
    deposit_before,
    deposit_pct,
)
from .money import ZERO, quantum, round_money

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from .billing import Invoice, InvoiceLine
    from .crm import Customer
    from .orders import SalesOrder

def terms_for(session: Session, customer: Customer | None) -> DepositTerms:
    """The customer's deposit terms, else the company's."""
    from .company import the_company

    company = the_company(session)
    pct = customer.deposit_pct if customer is not None and customer.deposit_pct is not None else company.deposit_pct
    before = (customer.deposit_before if customer is not None and customer.deposit_before
              else company.deposit_before)
    return DepositTerms(Decimal(pct or 0), before or "shipping")


def deposit_lines(order: SalesOrder, pct: Decimal) -> list[tuple[str, Decimal, Decimal]]:
    """(description, net, tax rate) per tax rate of the order: ``pct`` of that rate's net, never
    more than the order at that rate. The share's tax rounds on the rate's net, the order's on
    each line, so a share near the whole could come to a cent more than the order, and the final
    invoice below nothing: a whole deposit (100 %) is therefore the order's own lines, and a
    share is lowered by the minor unit until it fits."""
    currency = order.deal.currency
    if pct == 100:
        return [(f"Deposit 100 % of order {order.number}: {line.description}"[:300], line.net, line.tax_rate)
                for line in order.lines if line.net]
    nets: dict[Decimal, Decimal] = {}
    totals: dict[Decimal, Decimal] = {}
    for line in order.lines:
        nets[line.tax_rate] = nets.get(line.tax_rate, ZERO) + line.net
        totals[line.tax_rate] = totals.get(line.tax_rate, ZERO) + line.line_total
    words = format(pct.normalize(), "f")
    rows = []
    for rate, net in sorted(nets.items()):
        amount = round_money(net * pct / 100, currency)
        while amount > ZERO and amount + round_money(amount * rate / 100, currency) > totals[rate]:
            amount -= quantum(currency)
        if amount > ZERO:
            label = f"Deposit {words} % of order {order.number}" + (
                f" (tax {format(rate.normalize(), 'f')} %)" if len(nets) > 1 else "")
            rows.append((label, amount, rate))
    return rows


def make_deposit_lines(order: SalesOrder) -> list[InvoiceLine]:
    from .billing import InvoiceLine

    return [InvoiceLine(line_no=i, order_line_id=None, sku="DEPOSIT", description=label, quantity=1,
                        unit_price=net, discount_pct=ZERO, tax_rate=rate)
            for i, (label, net, rate) in enumerate(deposit_lines(order, order.deposit_pct), start=1)]


def deduction_lines(deposit: Invoice | None, first_line_no: int) -> list[InvoiceLine]:
    """The final invoice's lines that deduct the deposit paid: the deposit invoice's lines negated
    (a deposit not paid in full, which the flow never lets happen, is not deducted)."""
    from .billing import InvoiceLine
    from .states import InvoiceStatus

    if deposit is None or deposit.status != InvoiceStatus.PAID:
        return []
    rates = {ln.tax_rate for ln in deposit.lines}

    def label(ln: InvoiceLine) -> str:
        said = f"Less deposit paid, {deposit.number}"
        if ": " in ln.description:  # a whole deposit's line: the order's line it was
            return f"{said}: {ln.description.split(': ', 1)[1]}"[:300]
        return said + (f" (tax {format(ln.tax_rate.normalize(), 'f')} %)" if len(rates) > 1 else "")

    return [InvoiceLine(line_no=first_line_no + i, order_line_id=None, sku="DEPOSIT", description=label(ln),
                        quantity=1, unit_price=-ln.unit_price, discount_pct=ZERO, tax_rate=ln.tax_rate)
            for i, ln in enumerate(deposit.lines)]
