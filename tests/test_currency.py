"""A deal's currency on every amount: each line rounds to the currency's minor unit (whole yen),
totals are the sum of the rounded lines, and documents, forms and the CLI show the currency."""

from __future__ import annotations

import re
from decimal import Decimal

from click.testing import CliRunner
from sqlalchemy import select

from dealflow.cli import main
from dealflow.scenario import LEAD, SCRIPT, Move, play_direct
from models import Document
from models.deal import deal_by_number
from models.prompts import form_choices
from services.db import session_scope
from services.rendering import render


def test_a_yen_deal_rounds_each_line_to_whole_yen_and_says_yen_everywhere(new_deal, tmp_path):
    runner = CliRunner()
    for sku, price in (("JP-A", "1000.50"), ("JP-B", "2000.50")):
        added = runner.invoke(main, ["product", "add", sku, "--name", f"Part {sku}", "--price", price,
                                     "--tax-rate", "10", "--no-qa"])
        assert added.exit_code == 0, added.output
    book = tmp_path / "customers.csv"  # the lead's company is a known customer who buys in yen
    book.write_text(f"name,email,currency\n{LEAD['company']},{LEAD['email'].upper()},JPY\n", encoding="utf-8")
    assert runner.invoke(main, ["customer", "import", str(book)]).exit_code == 0
    lines = [{"sku": "JP-A", "quantity": 1}, {"sku": "JP-B", "quantity": 1}]
    trail = play_direct(new_deal, SCRIPT[:2] + [Move("estimate", "mark", {"lines": lines}, "two parts")],
                        until="decision-rev-1")
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert deal.currency == "JPY" and deal.customer.email == LEAD["email"].upper()  # the known customer
        rev = deal.estimate.latest
        # 1000.50 -> 1001 + 10 % 100 = 1101; 2000.50 -> 2001 + 200 = 2201: 3302 (the unrounded 3301.10 would be 3301)
        assert [ln.line_total for ln in rev.lines] == [Decimal("1101"), Decimal("2201")]
        assert rev.totals.total == Decimal("3302") == sum(ln.line_total for ln in rev.lines)
        assert [o for o in form_choices(s, deal, "estimate")["products"] if o.startswith("JP-A")] == [
            "JP-A — Part JP-A — 1,001 JPY — 0 available"]
        doc = s.scalars(select(Document).where(Document.kind == "estimate")).one()
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", render(doc.template, doc.context)))
    assert any("total 3302 JPY" in str(t.get("outcome", "")) or "total 3302 JPY" in str(t) for t in trail), trail
    assert "Total JPY 3,302" in text and "3,302.00" not in text and "3,301" not in text, text
    lines_text = text[text.index("Part JP-A"):text.index("Subtotal")]
    assert "1,000.50" in lines_text and " 1,001 " in lines_text and "1,001.00" not in text, lines_text  # unit price as priced
    shown = runner.invoke(main, ["deal", "show", new_deal]).output
    assert "total 3302 JPY" in shown, shown
