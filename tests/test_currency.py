"""A deal's currency on every amount: each line rounds to the currency's minor unit (whole yen),
totals are the sum of the rounded lines, and documents, forms and the CLI show the currency."""

from __future__ import annotations

import re
from decimal import Decimal

from click.testing import CliRunner
from sqlalchemy import select

from dealflow.cli import main
from dealflow.scenario import LEAD, SCRIPT, Move, play_direct
from models import Document, utcnow
from models.deal import deal_by_number
from models.waits import KINDS
from services.db import session_scope
from services.rendering import render


def _yen_customer(runner, tmp_path) -> None:
    book = tmp_path / "customers.csv"  # the lead's company is a known customer who buys in yen (its limit in yen)
    book.write_text(f"name,email,currency,credit_limit\n{LEAD['company']},{LEAD['email'].upper()},JPY,50000000\n",
                    encoding="utf-8")
    assert runner.invoke(main, ["customer", "import", str(book)]).exit_code == 0


def test_a_yen_deal_rounds_each_line_to_whole_yen_and_says_yen_everywhere(new_deal, tmp_path):
    runner = CliRunner()
    for sku, price in (("JP-A", "1000.50"), ("JP-B", "2000.50")):
        added = runner.invoke(main, ["product", "add", sku, "--name", f"Part {sku}", "--price", price,
                                     "--tax-rate", "10", "--no-qa"])
        assert added.exit_code == 0, added.output
    _yen_customer(runner, tmp_path)
    today = utcnow().date()
    rate = runner.invoke(main, ["rate", "set", "JPY", "150.25", "--on", today.isoformat()])
    assert (rate.exit_code, rate.output) == (0, f"1 USD = 150.25 JPY from {today}\n")
    lines = [{"sku": "JP-A", "quantity": 1}, {"sku": "JP-B", "quantity": 1}]
    trail = play_direct(new_deal, SCRIPT[:2] + [Move("estimate", "mark", {"lines": lines}, "two parts")],
                        until="decision-rev-1")
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert deal.currency == "JPY" and deal.customer.email == LEAD["email"].upper()  # the known customer
        rev = deal.estimate.latest
        # 1000.50 USD × 150.25 = 150,325.125 -> 150,325 JPY; + 10 % 15,032.5 -> 15,033: 165,358. 2000.50 × 150.25
        # -> 300,575 + 30,058 = 330,633. Total 495,991 (the unrounded 450,900 + 45,090 would be 495,990)
        assert [ln.unit_price for ln in rev.lines] == [Decimal("150325"), Decimal("300575")]  # never relabelled
        assert [ln.line_total for ln in rev.lines] == [Decimal("165358"), Decimal("330633")]
        assert rev.totals.total == Decimal("495991") == sum(ln.line_total for ln in rev.lines)
        assert (rev.fx_rate, rev.fx_on, rev.fx_converted) == (Decimal("150.25"), today, True)  # fixed on it
        assert [o for o in KINDS["estimate"].choices(s, deal)["products"] if o.startswith("JP-A")] == [
            "JP-A — Part JP-A — 150,325 JPY — 0 available"]
        doc = s.scalars(select(Document).where(Document.kind == "estimate")).one()
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", render(doc.template, doc.context)))
    assert any("total 495991 JPY" in str(t.get("outcome", "")) or "total 495991 JPY" in str(t) for t in trail), trail
    assert "Total JPY 495,991" in text and "495,991.00" not in text and "495,990" not in text, text
    lines_text = text[text.index("Part JP-A"):text.index("Subtotal")]
    assert " 150,325 " in lines_text and "1,000.50" not in text, lines_text
    assert (f"Prices in JPY; where a product has no JPY price of its own, its USD price at 150.25 JPY per USD "
            f"(the rate of {today})." in text), text
    shown = runner.invoke(main, ["deal", "show", new_deal]).output
    assert "total 495991 JPY" in shown, shown


def test_a_price_list_price_wins_and_a_product_with_neither_price_nor_rate_is_refused_naming_both(new_deal,
                                                                                                   tmp_path):
    from models import Wait

    runner = CliRunner()
    _yen_customer(runner, tmp_path)
    prices = tmp_path / "prices.csv"
    prices.write_text("sku,currency,price\ncnc-lathe-2000,jpy,7280000\nTOOL-KIT-PRO,EUR,2300.5\n", encoding="utf-8")
    imported = runner.invoke(main, ["price", "import", str(prices)])
    assert (imported.exit_code, imported.output) == (0, "prices.csv: 2 rows; 2 added, 0 changed, 0 unchanged\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,currency,price\nNOPE,JPY,1\nCHUCK-3J-250,JPY,10.5\nCHUCK-3J-250,USD,1\n", encoding="utf-8")
    refused = runner.invoke(main, ["price", "import", str(bad)])
    assert refused.exit_code == 2 and refused.stderr.splitlines() == [
        "error: bad.csv: row 2, column sku: no product 'NOPE'",
        "error: bad.csv: row 3, column price: must be an amount in whole JPY, 0 or more; got '10.5'",
        "error: bad.csv: row 4, column currency: USD is the company's own currency: the catalogue's price "
        "(`dealflow product import`)",
        "error: bad.csv: 3 problem(s) in 3 of 3 rows; nothing was imported"]
    lathe = [{"sku": "CNC-LATHE-2000", "quantity": 1}]
    play_direct(new_deal, SCRIPT[:2] + [Move("estimate", "mark", {"lines": lathe}, "a lathe")], until="decision-rev-1")
    with session_scope() as s:
        rev = deal_by_number(s, new_deal).estimate.latest
        assert ([ln.unit_price for ln in rev.lines], rev.fx_rate, rev.fx_converted) == ([Decimal("7280000")], None,
                                                                                         False)
    # a product with no yen price, and no rate: the estimate is refused, naming both
    with session_scope() as s:
        from models import Product, process

        deal = deal_by_number(s, new_deal)
        person = process.staff_by_handle(s, "mark")
        vmc = s.scalars(select(Product).where(Product.sku == "VMC-850")).one()
        from models.errors import ValidationError
        from models.prices import quote

        try:
            quote(s, vmc, deal.currency, utcnow().date(), "USD", "Line 1, product")
        except ValidationError as exc:
            message = str(exc)
        assert person.handle == "mark"
    assert message == ("Line 1, product: VMC-850 has no price in JPY and there is no USD→JPY exchange rate: "
                       "`dealflow price set VMC-850 JPY AMOUNT` or `dealflow rate set JPY RATE`")
    with session_scope() as s:
        assert [o for o in KINDS["estimate"].choices(s, deal_by_number(s, new_deal))["products"]
                if o.startswith("VMC-850")] == ["VMC-850 — Vertical machining centre VMC-850 — no price in JPY — "
                                                "3 available"]
        assert not s.scalars(select(Wait).where(Wait.status == "refused")).all()
    export = tmp_path / "out.csv"
    assert runner.invoke(main, ["price", "export", str(export)]).exit_code == 0
    assert export.read_text().splitlines() == ["sku,currency,price", "TOOL-KIT-PRO,EUR,2300.50",
                                               "CNC-LATHE-2000,JPY,7280000.00"]


def test_reports_convert_each_document_at_its_own_rate_and_a_later_rate_moves_nothing(new_deal, tmp_path):
    from datetime import timedelta

    from services import reports

    runner = CliRunner()
    _yen_customer(runner, tmp_path)
    today = utcnow().date()
    assert runner.invoke(main, ["rate", "set", "JPY", "150", "--on", (today - timedelta(days=3)).isoformat()]
                         ).exit_code == 0
    play_direct(new_deal, until="payment-1")
    assert runner.invoke(main, ["rate", "set", "JPY", "100", "--on", (today + timedelta(days=1)).isoformat()]
                         ).exit_code == 0  # a later rate: the deal keeps its own
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        total, rev = deal.invoice.totals.total, deal.estimate.latest
        assert rev.fx_rate == Decimal("150")
        sales = reports.sales(s)
        aging = reports.aging(s, deal.invoice.due_date)
    assert set(sales["currency"]) == {"JPY"} and set(sales["company_currency"]) == {"USD"}
    assert sales["net_company"].sum() == sum((round(n / Decimal(150), 2) for n in sales["net"]), Decimal(0))
    current = aging.set_index(["bucket", "currency"]).loc[("current", "JPY")]
    assert (current["amount_due"], current["amount_due_company"]) == (total, round(total / Decimal(150), 2))
    report = runner.invoke(main, ["report", "sales"])
    assert report.exit_code == 0 and report.stderr == (
        "note: net_company: in USD, each document converted at its own exchange rate (the one of the day its "
        "estimate was drafted); empty where a document has none\n")


def test_a_rate_is_a_positive_number_for_another_currency_than_the_companys(db):
    runner = CliRunner()
    for args, message in [
        (["JPY", "0"], "error: rate: must be more than 0 and less than 1,000,000, got '0'\n"),
        (["JPY", "abc"], "error: rate: must be a number such as 150.25, got 'abc'\n"),
        (["JPY", "1.1234567"], "error: rate: has at most 6 decimals, got '1.1234567'\n"),
        (["USD", "1"], "error: currency: USD is the company's own currency: its rate is 1\n"),
        (["JPY", "150", "--on", "7.12.2026"], "error: on: must be a date as YYYY-MM-DD, got '7.12.2026'\n"),
    ]:
        result = runner.invoke(main, ["rate", "set", *args])
        assert (result.exit_code, result.stderr) == (2, message), args
    assert runner.invoke(main, ["rate", "list", "--json"]).output.strip() == "[]"
