"""Deposits and credit limits, the rules (``models.deposits``, ``models.credit`` and their two
waits): the deposit's arithmetic in each currency's minor unit, the final invoice less the
deposit, part payments and overpayment of a deposit, the stage it blocks; an order put on credit
hold and released, turned into a deposit or rejected; the race of two acceptances against one
limit (PostgreSQL); bad terms refused in one line with nothing written. On SQLite, and on
PostgreSQL with DEALFLOW_TEST_DATABASE_URL."""

from __future__ import annotations

import os
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from models.billing import Invoice, InvoiceLine
from models.deal import Deal
from models.deposits import deduction_lines, deposit_lines, make_deposit_lines
from models.money import ZERO, quantum, round_money
from models.orders import SalesOrder, SalesOrderLine
from models.pricing import Totals

EXAMPLES = int(os.environ.get("DEALFLOW_HYPOTHESIS_EXAMPLES", "40"))


# --- the arithmetic: no database ---------------------------------------------------------------

def _price(currency: str):
    places = -quantum(currency).as_tuple().exponent
    return st.decimals(min_value=0, max_value=Decimal("5000000"), places=places, allow_nan=False)


@st.composite
def orders(draw) -> SalesOrder:
    """An order in USD (cents) or JPY (whole yen) with lines at a few tax rates and discounts."""
    currency = draw(st.sampled_from(["USD", "JPY"]))
    order = SalesOrder(number="SO-0001", deal=Deal(number="DEAL-0001", currency=currency),
                       deposit_pct=draw(st.decimals(min_value=0, max_value=100, places=2, allow_nan=False)),
                       deposit_before="shipping")
    for no in range(1, draw(st.integers(1, 6)) + 1):
        order.lines.append(SalesOrderLine(
            line_no=no, sku=f"SKU-{no}", description="x", quantity=draw(st.integers(1, 40)),
            unit_price=draw(_price(currency)),
            discount_pct=draw(st.sampled_from([ZERO, Decimal("5"), Decimal("7.5"), Decimal("12.35"),
                                               Decimal("100")])),
            tax_rate=draw(st.sampled_from([ZERO, Decimal("5"), Decimal("7.5"), Decimal("10"), Decimal("12"),
                                           Decimal("18"), Decimal("21")]))))
    return order


def _invoices(order: SalesOrder) -> tuple[Invoice, Invoice]:
    """The order's deposit invoice (paid) and its final invoice once everything shipped, as
    ``models.stages`` makes them."""
    deposit = Invoice(number="DEP-0001", deal=order.deal, order=order, kind="deposit", status="paid",
                      lines=make_deposit_lines(order))
    final = Invoice(number="INV-0001", deal=order.deal, order=order, kind="final", lines=[
        InvoiceLine(line_no=ln.line_no, sku=ln.sku, description=ln.description, quantity=ln.quantity,
                    unit_price=ln.unit_price, discount_pct=ln.discount_pct, tax_rate=ln.tax_rate)
        for ln in order.lines])
    final.lines += deduction_lines(deposit, len(order.lines) + 1)
    return deposit, final


@settings(max_examples=EXAMPLES * 10, deadline=None)
@given(order=orders())
def test_a_deposit_is_a_line_per_tax_rate_in_the_minor_unit_and_the_final_invoice_is_the_order_less_it(order):
    currency, pct = order.deal.currency, order.deposit_pct
    assume(pct < 100)
    unit = quantum(currency)
    deposit, final = _invoices(order)
    nets: dict[Decimal, Decimal] = {}
    for ln in order.lines:
        nets[ln.tax_rate] = nets.get(ln.tax_rate, ZERO) + ln.net
    # one line per tax rate (a rate whose share rounds to nothing has none): pct of that rate's net,
    # give or take the minor unit that keeps it within the order at that rate
    assert [ln.tax_rate for ln in deposit.lines] == sorted(ln.tax_rate for ln in deposit.lines)
    assert len({ln.tax_rate for ln in deposit.lines}) == len(deposit.lines)
    for ln in deposit.lines:
        assert abs(ln.unit_price - nets[ln.tax_rate] * pct / 100) <= 2 * unit
        assert ln.quantity == 1 and ln.discount_pct == 0
        for amount in (ln.net, ln.tax, ln.line_total):
            assert amount == amount.quantize(unit), (currency, amount)  # whole yen, whole cents
    assert all(round_money(nets[r] * pct / 100, currency) <= unit for r in set(nets) - {ln.tax_rate
                                                                                        for ln in deposit.lines})
    dep, whole, rest = deposit.totals, Totals(order.lines, currency), final.totals
    assert dep.total == sum((ln.line_total for ln in deposit.lines), ZERO)  # the sum of its per-rate lines
    # the final invoice, all shipped: the order less the deposit, to the minor unit, net and tax too,
    # and never below nothing
    assert (rest.net, rest.tax, rest.total) == (whole.net - dep.net, whole.tax - dep.tax, whole.total - dep.total)
    assert ZERO <= dep.total <= whole.total and rest.total >= ZERO
    # and the deposit is the share asked, give or take the rounding of each rate's net and tax
    assert abs(dep.total - whole.total * pct / 100) <= 3 * unit * max(len(nets), 1)


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(order=orders())
def test_a_whole_deposit_is_the_order_itself_and_leaves_a_final_invoice_of_nothing(order):
    order.deposit_pct = Decimal(100)
    deposit, final = _invoices(order)
    whole = Totals(order.lines, order.deal.currency)
    assert (deposit.totals.net, deposit.totals.tax, deposit.totals.total) == (whole.net, whole.tax, whole.total)
    assert final.totals.total == ZERO
    assert [ln.description for ln in final.lines[len(order.lines):]] == [
        f"Less deposit paid, DEP-0001: {ln.description}" for ln in order.lines if ln.net]


def test_a_share_near_the_whole_of_a_few_cents_never_makes_the_final_invoice_negative():
    # two lines of 0.04 at 10 %: the order's tax is 0.00 + 0.00 (each line rounds), but 99 % of the
    # 0.08 net is 0.08, whose tax 0.008 rounds to 0.01: the share is lowered to 0.07 to fit
    order = SalesOrder(number="SO-0001", deal=Deal(number="DEAL-0001", currency="USD"),
                       deposit_pct=Decimal("99"), deposit_before="shipping")
    order.lines += [SalesOrderLine(line_no=n, sku=f"S{n}", description="washer", quantity=1,
                                   unit_price=Decimal("0.04"), discount_pct=ZERO, tax_rate=Decimal("10"))
                    for n in (1, 2)]
    deposit, final = _invoices(order)
    assert [(ln.unit_price, ln.tax) for ln in deposit.lines] == [(Decimal("0.07"), Decimal("0.01"))]
    assert (deposit.totals.total, final.totals.total) == (Decimal("0.08"), ZERO)


def test_a_yen_deposit_is_whole_yen_per_tax_rate():
    order = SalesOrder(number="SO-0007", deal=Deal(number="DEAL-0007", currency="JPY"),
                       deposit_pct=Decimal("33.33"), deposit_before="release")
    order.lines += [SalesOrderLine(line_no=1, sku="A", description="a", quantity=3, unit_price=Decimal("150325"),
                                   discount_pct=Decimal("7.5"), tax_rate=Decimal("10")),
                    SalesOrderLine(line_no=2, sku="B", description="b", quantity=1, unit_price=Decimal("999"),
                                   discount_pct=ZERO, tax_rate=Decimal("8"))]
    # 3 × 150,325 = 450,975, less 7.5 % (33,823.125 -> 33,823) = 417,152; 33.33 % = 139,036.7616 -> 139,037
    # 999 at 8 %: 33.33 % = 332.9667 -> 333
    assert deposit_lines(order, order.deposit_pct) == [
        ("Deposit 33.33 % of order SO-0007 (tax 8 %)", Decimal("333"), Decimal("8")),
        ("Deposit 33.33 % of order SO-0007 (tax 10 %)", Decimal("139037"), Decimal("10"))]
    deposit, final = _invoices(order)
    # tax 333 × 8 % = 26.64 -> 27; 139,037 × 10 % = 13,903.7 -> 13,904
    assert (deposit.totals.net, deposit.totals.tax, deposit.totals.total) == (
        Decimal("139370"), Decimal("13931"), Decimal("153301"))
    assert final.totals.total == Totals(order.lines, "JPY").total - Decimal("153301")
    assert [ln.description for ln in final.lines[2:]] == ["Less deposit paid, DEP-0001 (tax 8 %)",
                                                          "Less deposit paid, DEP-0001 (tax 10 %)"]


def test_a_deposit_not_paid_in_full_is_not_deducted():
    order = SalesOrder(number="SO-0001", deal=Deal(number="DEAL-0001", currency="USD"),
                       deposit_pct=Decimal("30"), deposit_before="shipping")
    order.lines.append(SalesOrderLine(line_no=1, sku="A", description="a", quantity=1, unit_price=Decimal("100"),
                                      discount_pct=ZERO, tax_rate=Decimal("18")))
    deposit = Invoice(number="DEP-0001", deal=order.deal, order=order, kind="deposit", status="partially_paid",
                      lines=make_deposit_lines(order))
    assert deposit.totals.total == Decimal("35.40") and deduction_lines(deposit, 2) == []
    assert deduction_lines(None, 2) == []
