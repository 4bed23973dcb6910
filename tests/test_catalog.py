"""A company's own catalogue: products added, changed, retired, imported and exported from the
command line; bad input is one clear line (a file: every bad row at once) and nothing is written;
a new price applies to new estimate revisions only; an order of accessories only skips QA."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dealflow.cli import main
from dealflow.scenario import SCRIPT, Move, play_direct
from models import AuditEntry, Product
from models.catalog import product_by_sku, product_values
from models.deal import deal_by_number
from services.db import session_scope

from .helpers import counts, wait_row


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def product(sku: str) -> dict:
    with session_scope() as s:
        p = product_by_sku(s, sku)
        return {"name": p.name, "price": p.unit_price, "tax_rate": p.tax_rate, "checklist": p.qa_checklist,
                "active": p.active, "on_hand": p.stock.on_hand}


def test_a_product_is_added_edited_shown_listed_and_retired(db):
    added = cli("product", "add", "GL-33", "--name", "Gauge block set", "--price", "33.33", "--tax-rate", "18",
                "--no-qa")
    assert added.exit_code == 0, added.output
    assert product("GL-33") == {"name": "Gauge block set", "price": Decimal("33.33"), "tax_rate": Decimal("18"),
                                "checklist": [], "active": True, "on_hand": 0}
    edited = cli("product", "edit", "GL-33", "--price", "35", "--checklist", "Flatness, surface-finish")
    assert edited.exit_code == 0 and "unit_price 33.33 -> 35.00" in edited.output, edited.output
    assert product("GL-33")["checklist"] == ["flatness", "surface_finish"]  # a checklist: QA checks it
    shown = cli("product", "show", "GL-33")
    assert "35.00" in shown.output and "flatness, surface_finish" in shown.output
    assert cli("product", "retire", "GL-33").exit_code == 0
    assert "GL-33" not in cli("product", "list").output
    assert "retired" in cli("product", "list", "--all").output
    assert cli("product", "retire", "GL-33", "--undo").exit_code == 0 and product("GL-33")["active"]
    with session_scope() as s:
        actions = [a.action for a in s.scalars(select(AuditEntry).where(AuditEntry.subject == "GL-33")
                                              .order_by(AuditEntry.id))]
    assert actions == ["product.added", "product.changed", "product.retired", "product.offered"]


@pytest.mark.parametrize(("args", "message"), [
    (["add", "bad sku", "--name", "X", "--price", "1", "--tax-rate", "1"], "sku: must be letters, digits"),
    (["add", "X-1", "--name", "X", "--price", "1.234", "--tax-rate", "1"], "price: must have at most 2 decimals"),
    (["add", "X-1", "--name", "X", "--price", "-5", "--tax-rate", "1"], "price: must not be negative"),
    (["add", "X-1", "--name", "X", "--price", "abc", "--tax-rate", "1"], "price: must be a number"),
    (["add", "X-1", "--name", "X", "--price", "1", "--tax-rate", "101"], "tax_rate: must be a percentage"),
    (["add", "X-1", "--name", " ", "--price", "1", "--tax-rate", "1"], "name: must not be empty"),
    (["add", "X-1", "--name", "X", "--price", "1", "--tax-rate", "1", "--no-qa", "--checklist", "a"],
     "checklist: a product without QA has no checklist"),
    (["add", "X-1", "--name", "X", "--price", "1", "--tax-rate", "1", "--checklist", "a, a"],
     "checklist: a is listed twice"),
    (["add", "X-1", "--name", "X", "--price", "1", "--tax-rate", "1", "--checklist", "1st"],
     "checklist: each check is a short name"),
    (["add", "VMC-850", "--name", "X", "--price", "1", "--tax-rate", "1"], "sku: VMC-850 already exists"),
    (["add", "X-1", "--name", "X", "--price", "1"], "Missing option '--tax-rate'"),
    (["edit", "VMC-850"], "nothing to change"),
    (["edit", "NOPE", "--price", "1"], "sku: no product 'NOPE'"),
    (["edit", "VMC-850", "--price", "1e400"], "price: must be"),
    (["show", "NOPE"], "sku: no product 'NOPE'"),
    (["retire", "NOPE"], "sku: no product 'NOPE'"),
])
def test_a_bad_product_command_is_one_clear_line_and_writes_nothing(db, args, message):
    before = counts()
    with session_scope() as s:
        vmc = product_by_sku(s, "VMC-850").unit_price
    result = cli("product", *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert counts() == before and product("VMC-850")["price"] == vmc


text = st.text(st.characters(codec="utf-8"), max_size=50)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=text, price=st.one_of(text, st.decimals(allow_nan=True), st.floats()), tax=text,
       needs_qa=st.one_of(st.none(), st.booleans(), text), checklist=st.one_of(st.none(), text))
def test_product_fields_are_accepted_only_within_their_rules(name, price, tax, needs_qa, checklist):
    """Whatever is typed, the rules answer with values or with named problems, never anything else;
    every value accepted is within its rule."""
    values, problems = product_values({"name": name, "price": price, "tax_rate": tax, "needs_qa": needs_qa,
                                       "checklist": checklist}, new=True)
    for problem in problems:
        assert problem.field in ("name", "price", "tax_rate", "needs_qa", "checklist") and problem.rule
    if not problems:
        assert values["name"] and "\n" not in values["name"] and len(values["name"]) <= 200
        assert values["unit_price"] >= 0 and values["unit_price"] == values["unit_price"].quantize(Decimal("0.01"))
        assert 0 <= values["tax_rate"] <= 100
        assert values.get("qa_checklist") is None or all(c.isidentifier() for c in values["qa_checklist"])


@settings(max_examples=int(os.environ.get("DEALFLOW_HYPOTHESIS_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(price=st.one_of(text, st.decimals(allow_nan=True)), tax=text)
def test_a_refused_product_leaves_nothing_behind(db, price, tax):
    before = counts()
    result = cli("product", "add", "HYPO-1", "--name", "Hypothesis", "--price", str(price), "--tax-rate", tax)
    if result.exit_code == 0:
        with session_scope() as s:
            s.delete(product_by_sku(s, "HYPO-1").stock)
            s.delete(product_by_sku(s, "HYPO-1"))
            s.query(AuditEntry).filter(AuditEntry.subject == "HYPO-1").delete()
            s.commit()
    else:
        assert result.exit_code == 2 and result.output.startswith("error: ") and result.output.count("\n") == 1
    assert counts() == before


def test_a_file_with_bad_rows_lists_every_one_and_imports_nothing(db, tmp_path):
    path = tmp_path / "catalogue.csv"
    path.write_text("SKU,Name,Unit Price,tax_rate,needs_qa,checklist\n"
                    "NEW-1,Good one,10,18,no,\n"
                    "bad sku,,abc,101,maybe,\n"
                    "NEW-1,Again,1,1,,\n"
                    "NEW-2,Formula,=1+2,5,no,spindle\n"
                    "VMC-850,Vertical machining centre VMC-850,1,18,,\n", encoding="utf-8")
    before = counts()
    result = cli("product", "import", str(path))
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: catalogue.csv: row 3, column sku: must be letters, digits and . _ / - (no spaces), starting with "
        "a letter or digit, at most 40 characters; got 'bad sku'",
        "error: catalogue.csv: row 3, column name: must not be empty",
        "error: catalogue.csv: row 3, column price: must be a number, got 'abc'",
        "error: catalogue.csv: row 3, column tax_rate: must be a percentage between 0 and 100",
        "error: catalogue.csv: row 3, column needs_qa: must be yes or no, got 'maybe'",
        "error: catalogue.csv: row 4, column sku: NEW-1 is also on row 2",
        "error: catalogue.csv: row 5, column price: must be a number, got '=1+2'",
        "error: catalogue.csv: row 5, column checklist: a product without QA has no checklist (leave it empty, "
        "or say it needs QA)",
        "error: catalogue.csv: 8 problem(s) in 3 of 5 rows; nothing was imported",
    ]
    assert counts() == before and product("VMC-850")["price"] == Decimal("72900.00")

    path.write_text("sku,name,price,tax_rate,colour\n", encoding="utf-8")
    refused = cli("product", "import", str(path))
    assert refused.exit_code == 2 and "colour: unknown column(s)" in refused.output
    (tmp_path / "fake.xlsx").write_text("not a workbook")
    assert "cannot be read as XLSX" in cli("product", "import", str(tmp_path / "fake.xlsx")).output


def test_two_hundred_products_from_a_workbook_and_back(db, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["sku", "name", "price", "tax_rate", "needs_qa", "checklist", "description"])
    for i in range(200):
        machine = i % 4 == 0
        sheet.append([f"P-{i:04d}", f"Part {i} =SUM(A1)" if i == 7 else f"Part {i}", 33.33 + i, 18 if machine else 12,
                      "yes" if machine else "no", "spindle runout, safety guards" if i == 0 else None,
                      f"@line {i}" if i == 9 else ""])
    book.save(tmp_path / "catalogue.xlsx")
    result = cli("product", "import", str(tmp_path / "catalogue.xlsx"))
    assert result.exit_code == 0 and "200 rows; 200 added, 0 changed" in result.output, result.output
    assert product("P-0000") == {"name": "Part 0", "price": Decimal("33.33"), "tax_rate": Decimal("18"),
                                 "checklist": ["spindle_runout", "safety_guards"], "active": True, "on_hand": 0}
    assert product("P-0004")["checklist"] is None and product("P-0001")["checklist"] == []
    assert product("P-0199")["price"] == Decimal("232.33")

    for suffix in ("xlsx", "csv"):  # what export writes, import reads back unchanged, formulas and all
        out = tmp_path / f"export.{suffix}"
        assert cli("product", "export", str(out)).exit_code == 0
        again = cli("product", "import", str(out))
        assert again.exit_code == 0 and "0 added, 0 changed, 206 unchanged" in again.output, again.output
    sheet = openpyxl.load_workbook(tmp_path / "export.xlsx").active
    cells = {c.value: c.data_type for row in sheet.iter_rows() for c in row if isinstance(c.value, str)}
    assert cells["'@line 9"] == "s" and not any(v.startswith("=") for v in cells)  # never run as a formula
    assert product("P-0007")["name"] == "Part 7 =SUM(A1)"


def _estimate(*lines) -> Move:
    return Move("estimate", "mark", {"lines": [{"sku": sku, "quantity": q} for sku, q in lines]}, "an estimate")


def test_a_price_change_applies_to_new_revisions_only(new_deal):
    moves = SCRIPT[:2] + [_estimate(("CNC-LATHE-2000", 1)),
                          Move("decision", "mark", {"decision": "request_changes", "channel": "email",
                                                    "changes": "one more"}, "the decision")]
    play_direct(new_deal, moves, until="estimate-rev-2")
    assert cli("product", "edit", "CNC-LATHE-2000", "--price", "50000").exit_code == 0
    play_direct(new_deal, moves + [_estimate(("CNC-LATHE-2000", 2)),
                           Move("decision", "mark", {"decision": "approve", "channel": "email"}, "the decision")], until="qa-attempt-1")
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        first, second = deal.estimate.revisions
        assert [ln.unit_price for ln in first.lines] == [Decimal("48500.00")]
        assert [ln.unit_price for ln in second.lines] == [Decimal("50000.00")]
        assert [ln.unit_price for ln in deal.order.lines] == [Decimal("50000.00")]
    assert cli("product", "edit", "CNC-LATHE-2000", "--price", "1").exit_code == 0
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert deal.estimate.revisions[0].lines[0].unit_price == Decimal("48500.00")
        assert deal.order.lines[0].unit_price == Decimal("50000.00")
        assert deal.order.totals.total == Decimal("118000.00")


def test_a_retired_product_is_not_offered_in_new_estimates_and_a_new_revision_drops_it(new_deal):
    from models.waits import KINDS, form_start

    moves = SCRIPT[:2] + [_estimate(("CNC-LATHE-2000", 1), ("TOOL-KIT-PRO", 1)),
                          Move("decision", "mark", {"decision": "request_changes", "channel": "email",
                                                    "changes": "no tool kit"}, "the decision")]
    play_direct(new_deal, moves, until="estimate-rev-2")
    assert cli("product", "retire", "TOOL-KIT-PRO").exit_code == 0
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert not any(o.startswith("TOOL-KIT-PRO") for o in KINDS["estimate"].choices(s, deal)["products"])
        assert [ln["sku"].split(" — ")[0] for ln in form_start(s, deal, "estimate", "estimate-rev-2")["prefill"]["lines"]] == ["CNC-LATHE-2000"]
    play_direct(new_deal, moves + [_estimate(("TOOL-KIT-PRO", 1))], until="estimate-rev-2-retry-1")
    refused = wait_row(new_deal, "estimate-rev-2")
    assert refused["status"] == "refused"
    assert refused["reason"] == "Line 1, product: TOOL-KIT-PRO is retired: no longer offered in new estimates"
    with session_scope() as s:
        assert len(deal_by_number(s, new_deal).estimate.revisions) == 1


def _order_of(*lines) -> list[Move]:
    return SCRIPT[:2] + [_estimate(*lines), Move("decision", "mark", {"decision": "approve", "channel": "email"}, "the decision")]


def test_an_order_of_accessories_only_skips_qa_and_is_released_at_once(new_deal):
    deposit = Move("deposit", "finance", lambda summary: {"amount": summary["deposit"]["due"]}, "the deposit")
    trail = play_direct(new_deal, [*_order_of(("TOOL-KIT-PRO", 2), ("COOLANT-20L", 5)), deposit], until="shipment-1")
    keys = [t["key"] for t in trail]
    # released at once; the customer's 30 % deposit is paid before it ships
    assert not any(k.startswith("qa-") for k in keys), keys
    assert keys[keys.index("order-from-rev-1"):] == ["order-from-rev-1", "deposit-invoice-SO-0001", "receipt-SO-0001",
                                                     "deposit-1"], keys
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert deal.order.status == "released" and deal.order.inspections == []
        assert deal.order.pick_release.released_by.handle == "mark"
        assert deal.order.pick_release.receipt is not None
        assert any(w.step == "shipment" and w.status == "open" for w in deal.waits)


def test_a_mixed_order_waits_for_qa_of_its_machines_only(new_deal):
    play_direct(new_deal, _order_of(("VMC-850", 1), ("TOOL-KIT-PRO", 1)), until="qa-attempt-1")
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert deal.order.status == "awaiting_qa"
        assert deal.order.qa_checklist == ["spindle_runout", "axis_backlash", "safety_guards", "emergency_stop",
                                           "control_software"]
        assert s.scalars(select(Product).where(Product.sku == "TOOL-KIT-PRO")).one().needs_qa is False


def test_a_known_products_qa_stays_as_it_is_unless_a_file_or_command_says_otherwise(db, tmp_path):
    path = tmp_path / "prices.csv"  # a price list: no QA columns at all
    path.write_text("sku,name,price,tax_rate\nTOOL-KIT-PRO,Tooling kit,2500,18\nVMC-850,VMC-850,73000,18\n"
                    "NEW-9,New machine,1000,18\n", encoding="utf-8")
    assert cli("product", "import", str(path)).exit_code == 0
    assert product("TOOL-KIT-PRO")["checklist"] == []  # still an accessory
    assert product("VMC-850")["checklist"][:2] == ["spindle_runout", "axis_backlash"]  # still its own checks
    assert product("NEW-9")["checklist"] is None  # new: QA with the standard checklist
    assert cli("product", "edit", "VMC-850", "--needs-qa").output.strip() == "VMC-850: nothing changed"
    assert product("VMC-850")["checklist"][:2] == ["spindle_runout", "axis_backlash"]


def test_an_orders_qa_checks_are_fixed_when_it_is_made(new_deal):
    play_direct(new_deal, _order_of(("VMC-850", 1)), until="qa-attempt-1")
    assert cli("product", "edit", "VMC-850", "--checklist", "paint").exit_code == 0
    assert cli("product", "edit", "VMC-850", "--no-qa").exit_code == 0
    with session_scope() as s:
        order = deal_by_number(s, new_deal).order
        assert order.needs_qa and order.qa_checklist == ["spindle_runout", "axis_backlash", "safety_guards",
                                                         "emergency_stop", "control_software"]
