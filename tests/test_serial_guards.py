"""A serialized product's record stays true when the catalogue and the stock are changed by hand.

A unit with a serial number is in stock by name: a count (`stock adjust`) below the numbered units
in stock names the ones that are gone (`--serials`), which leave the stock scrapped with the
count's reason in their history; without them it is refused in one line. A product stops being
serialized only when none of its numbered units is with us (in stock, back from a customer, in
repair), by command or by file; one made serialized with units on hand that have no number yet
says so, and those units get theirs from the plate when they ship. Every refusal is one line
naming the field and the rule, with nothing written."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from dealflow.cli import main
from dealflow.scenario import play_direct
from models import AuditEntry, Product
from models.deal import deal_by_number
from models.serials import Serial, SerialEvent
from models.stock import StockLevel
from services.db import session_scope

from .helpers import counts

EXAMPLES = int(os.environ.get("DEALFLOW_HYPOTHESIS_EXAMPLES", "40"))
VMCS = [f"GLM-VMC850-000{n}" for n in (1, 2, 3)]  # the seed's three machining centres, all numbered
PRESSES = ["GLM-HP100T-0001", "GLM-HP100T-0002"]
LATHES = [f"GLM-GL2000-000{n}" for n in (1, 2, 3, 4)]


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0].removeprefix("error: ")


def written() -> dict[str, object]:
    """What 'nothing written' means here: the business tables, stock levels, every unit's state and
    history, the products' serialized flags and the audit log."""
    with session_scope() as s:
        return {**counts(),
                "units": sorted((u.serial, u.status) for u in s.scalars(select(Serial))),
                "events": s.scalar(select(func.count()).select_from(SerialEvent)),
                "serialized": sorted(s.scalars(select(Product.sku).where(Product.serialized))),
                "audit": s.scalar(select(func.count()).select_from(AuditEntry))}


def in_stock(sku: str) -> tuple[int, list[str]]:
    """(on hand, the serial numbers of its units in stock)."""
    with session_scope() as s:
        product = s.scalars(select(Product).where(Product.sku == sku)).one()
        return s.get(StockLevel, product.id).on_hand, product.numbered_in_stock()


def adjust(sku: str, to: int | str, *more: str):
    return cli("stock", "adjust", sku, "--to", str(to), "--reason", "annual count", *more)


# --- a count below the numbered units in stock ------------------------------------------------------

def test_a_count_below_the_numbered_units_in_stock_is_refused_in_one_line_and_moves_nothing(db):
    before = written()
    refused = one_line_error(adjust("VMC-850", 2))
    assert refused == ("to: 2 counted, but 3 units of VMC-850 in stock have serial numbers (GLM-VMC850-0001, "
                       "GLM-VMC850-0002, GLM-VMC850-0003): on hand is never below the numbered units in stock; "
                       "name the 1 that is gone with --serials")
    assert one_line_error(adjust("HYD-PRESS-100T", 0)).endswith("name the 2 that are gone with --serials")
    assert written() == before


def test_the_units_named_as_gone_leave_the_stock_scrapped_with_the_counts_reason(db):
    counted = cli("stock", "adjust", "VMC-850", "--to", "2", "--reason", "damaged in storage",
                  "--serials", "glm-vmc850-0002")  # case aside
    assert counted.exit_code == 0, counted.output
    assert counted.output == "VMC-850: -1 (GLM-VMC850-0002 scrapped); on hand 2, reserved 0, available 2\n"
    assert in_stock("VMC-850") == (2, ["GLM-VMC850-0001", "GLM-VMC850-0003"])  # the next shipment starts there
    shown = json.loads(cli("serial", "show", "GLM-VMC850-0002", "--json").output)
    assert shown["status"] == "scrapped"
    assert [(h["event"], h["reference"]) for h in shown["history"]] == [
        ("received", "opening stock"), ("scrapped", "damaged in storage")]
    moves = json.loads(cli("stock", "moves", "VMC-850", "--json").output)
    assert (moves[0]["quantity"], moves[0]["reason"], moves[0]["reference"]) == (-1, "count", "damaged in storage")
    with session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "stock.counted")).one()
        assert (entry.subject, entry.details["serials"], entry.details["difference"]) == (
            "VMC-850", ["GLM-VMC850-0002"], -1)
    # and a count that only adds, or agrees, names none and scraps none
    assert adjust("VMC-850", 3).output.startswith("VMC-850: +1; on hand 3")
    assert in_stock("VMC-850") == (3, ["GLM-VMC850-0001", "GLM-VMC850-0003"])  # the one found has no number yet


def test_units_without_a_number_are_counted_out_first_without_naming_them(db):
    assert cli("stock", "receive", "VMC-850", "2", "--ref", "DN-1").exit_code == 0  # no serial numbers
    counted = adjust("VMC-850", 3, "--json")
    assert counted.exit_code == 0, counted.output
    assert json.loads(counted.output)["serials_gone"] == [] and in_stock("VMC-850") == (3, VMCS)
    # one of the unnumbered and one named: both at once
    # 3 on hand, all numbered: counting 1, naming one of the two that are gone is one too few
    assert one_line_error(adjust("VMC-850", 1, "--serials", "GLM-VMC850-0003")) == (
        "serials: 1 counted and 2 numbered units of VMC-850 not named (GLM-VMC850-0001, GLM-VMC850-0002): name 1 more "
        "that are gone")
    assert adjust("VMC-850", 1, "--serials", "GLM-VMC850-0003,GLM-VMC850-0001").exit_code == 0
    assert in_stock("VMC-850") == (1, ["GLM-VMC850-0002"])


@pytest.mark.parametrize(("args", "message"), [
    (["VMC-850", 2, "--serials", "VM-404"], "serials: VMC-850 has no unit numbered 'VM-404' (a unit without a serial "
                                            "number is counted out without naming it)"),
    (["VMC-850", 2, "--serials", "GLM-GL2000-0001"], "serials: VMC-850 has no unit numbered 'GLM-GL2000-0001'"),
    (["VMC-850", 1, "--serials", "GLM-VMC850-0001,glm-vmc850-0001"], "serials: glm-vmc850-0001 is given twice"),
    (["VMC-850", 2, "--serials", "GLM-VMC850-0001,GLM-VMC850-0002"],
     "serials: 2 serial numbers named, but the count takes 1 unit out (3 on hand, 2 counted): name only the units "
     "that are gone"),
    (["VMC-850", 4, "--serials", "GLM-VMC850-0001"], "serials: 1 serial number named, but the count takes 0 units "
                                                     "out (3 on hand, 4 counted)"),
    (["VMC-850", 3, "--serials", "GLM-VMC850-0001"], "serials: 1 serial number named, but the count takes 0 units"),
    (["VMC-850", 0, "--serials", "GLM-VMC850-0001"], "serials: 0 counted and 2 numbered units of VMC-850 not named "
                                                     "(GLM-VMC850-0002, GLM-VMC850-0003): name 2 more that are gone"),
    (["COOLANT-20L", 10, "--serials", "C-1"], "serials: COOLANT-20L is not serialized"),
    (["VMC-850", 2, "--serials", "-VM"], "serials: a serial number is letters, digits and . _ / # + - (spaces "
                                         "inside)"),
    (["VMC-850", "two", "--serials", "GLM-VMC850-0001"], "to: must be a whole number, got 'two'"),
])
def test_a_bad_unit_named_in_a_count_is_one_line_naming_it_and_nothing_moves(db, args, message):
    before = written()
    assert message in one_line_error(adjust(*args))
    assert written() == before


def test_a_unit_that_is_not_in_stock_cannot_be_counted_out(new_deal):
    play_direct(new_deal)  # the scenario ships three lathes: GLM-GL2000-0004 stays
    assert in_stock("CNC-LATHE-2000") == (1, ["GLM-GL2000-0004"])
    before = written()
    refused = one_line_error(adjust("CNC-LATHE-2000", 0, "--serials", "GLM-GL2000-0001"))
    assert refused.startswith("serials: CNC-LATHE-2000 GLM-GL2000-0001 is already shipped to Riverside Metalworks "
                              "Ltd on ")
    assert refused.endswith("and not returned: only a unit in stock is counted out")
    assert written() == before
    assert adjust("CNC-LATHE-2000", 0, "--serials", "GLM-GL2000-0004").exit_code == 0
    assert adjust("CNC-LATHE-2000", 0).output.startswith("CNC-LATHE-2000: no change (the count agrees)")


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(to=st.integers(0, 6), named=st.lists(st.sampled_from(VMCS + ["GLM-VMC850-0009", "GLM-HP100T-0001"]),
                                            max_size=4))
def test_any_count_keeps_every_numbered_unit_in_stock_on_hand_or_is_refused_writing_nothing(db, to, named):
    """Whatever is counted and named, on hand is never below the numbered units in stock: the
    count is taken (the named units scrapped, and only they) or refused in one line naming ``to``
    or ``serials``, with nothing written."""
    before, (on_hand, numbered) = written(), in_stock("VMC-850")
    result = adjust("VMC-850", to, *(["--serials", ",".join(named)] if named else []))
    after_hand, after_numbered = in_stock("VMC-850")
    assert after_hand >= len(after_numbered)
    if result.exit_code == 0:
        gone = [n.upper() for n in named]
        assert after_hand == to and after_numbered == [n for n in numbered if n not in gone]
        assert all(n in numbered for n in gone) and len(gone) <= max(on_hand - to, 0)
    else:
        assert one_line_error(result).split(":")[0] in ("to", "serials")
        assert written() == before


# --- the product's serialized flag ----------------------------------------------------------------------

def test_a_product_with_numbered_units_in_stock_stays_serialized_by_command_and_by_file(db, tmp_path):
    before = written()
    refused = one_line_error(cli("product", "edit", "CNC-LATHE-2000", "--not-serialized"))
    assert refused == ("serialized: 4 units of CNC-LATHE-2000 with us have serial numbers (GLM-GL2000-0001, "
                       "GLM-GL2000-0002, GLM-GL2000-0003, GLM-GL2000-0004): a product stays serialized while numbered "
                       "units are in stock, back from a customer or in repair")
    # other changes in the same command are not made either
    assert one_line_error(cli("product", "edit", "HYD-PRESS-100T", "--price", "1", "--not-serialized")).startswith(
        "serialized: 2 units of HYD-PRESS-100T with us have serial numbers (GLM-HP100T-0001, GLM-HP100T-0002)")
    catalogue = tmp_path / "products.csv"
    catalogue.write_text("sku,name,price,tax_rate,serialized\n"
                         "NEW-1,New one,10,18,no\n"
                         "VMC-850,Vertical machining centre VMC-850,72900,18,no\n")
    assert one_line_error(cli("product", "import", str(catalogue))).startswith(
        "serialized: 3 units of VMC-850 with us have serial numbers")
    assert written() == before
    with session_scope() as s:
        assert s.scalars(select(Product.unit_price).where(Product.sku == "HYD-PRESS-100T")).one() == 31250
        assert s.scalars(select(Product).where(Product.sku == "NEW-1")).first() is None  # all rows or none


def test_once_no_numbered_unit_is_with_us_a_product_stops_being_serialized_and_its_records_stay(db):
    assert adjust("HYD-PRESS-100T", 0, "--serials", ",".join(PRESSES)).exit_code == 0
    edited = cli("product", "edit", "HYD-PRESS-100T", "--not-serialized")
    assert edited.exit_code == 0 and edited.output == "HYD-PRESS-100T: serialized True -> False\n", edited.output
    assert json.loads(cli("serial", "show", "GLM-HP100T-0001", "--json").output)["status"] == "scrapped"
    # units that come in now have no serial numbers; numbers are refused as for any such product
    assert cli("stock", "receive", "HYD-PRESS-100T", "1", "--ref", "DN-5").exit_code == 0
    assert "HYD-PRESS-100T is not serialized" in one_line_error(
        cli("stock", "receive", "HYD-PRESS-100T", "1", "--ref", "DN-6", "--serials", "P-1"))


def test_a_unit_back_from_a_customer_keeps_its_product_serialized_until_it_is_inspected(new_deal):
    from models.return_steps import inspect, receive
    from models.returns import return_by_number

    from .test_return_documents import _staff, ask_back, authorize

    play_direct(new_deal)  # three lathes ship; GLM-GL2000-0004 stays and is counted out
    assert adjust("CNC-LATHE-2000", 0, "--serials", "GLM-GL2000-0004").exit_code == 0
    number = ask_back(new_deal, lines="CNC-LATHE-2000:1:GLM-GL2000-0001", reason="Spindle noise")
    authorize(number, "0", "Send it back on its pallet")
    with session_scope() as s:
        receive(s, return_by_number(s, number), _staff(s, "delivery"),
                [{"sku": "CNC-LATHE-2000", "quantity": 1, "serials": ["GLM-GL2000-0001"]}], "one pallet")
        s.commit()
    before = written()
    assert one_line_error(cli("product", "edit", "CNC-LATHE-2000", "--not-serialized")) == (
        "serialized: 1 unit of CNC-LATHE-2000 with us has a serial number (GLM-GL2000-0001): a product stays "
        "serialized while numbered units are in stock, back from a customer or in repair")
    assert written() == before
    with session_scope() as s:
        inspect(s, return_by_number(s, number), _staff(s, "qa"),
                [{"sku": "CNC-LATHE-2000", "serial": "GLM-GL2000-0001", "outcome": "scrap"}], "cracked bed")
        s.commit()
    assert cli("product", "edit", "CNC-LATHE-2000", "--not-serialized").exit_code == 0
    with session_scope() as s:  # the units that are with customers keep their records
        assert [u.serial for u in s.scalars(select(Serial).where(Serial.status == "shipped",
                                                                 Serial.deal_id == deal_by_number(s, new_deal).id)
                                            .order_by(Serial.serial))] == LATHES[1:3]


def test_a_product_made_serialized_with_units_on_hand_says_they_have_no_number_yet(db):
    assert cli("product", "add", "GEAR-7", "--name", "Gearbox 7", "--price", "900", "--tax-rate", "18",
               "--no-qa").exit_code == 0
    assert cli("stock", "receive", "GEAR-7", "3", "--ref", "DN-1").exit_code == 0
    edited = cli("product", "edit", "GEAR-7", "--serialized", "--warranty-months", "12")
    assert edited.exit_code == 0, edited.output
    assert edited.output == ("GEAR-7: serialized False -> True, warranty_months 0 -> 12; 3 units on hand have no "
                             "serial number yet: typed from the plate when shipped\n")
    assert json.loads(cli("product", "edit", "GEAR-7", "--name", "Gearbox 7b", "--json").output).get(
        "unnumbered") is None  # said only when it becomes serialized
    # numbered units come in beside them; a count takes the unnumbered ones first, never a numbered one
    assert cli("stock", "receive", "GEAR-7", "2", "--ref", "DN-2", "--serials", "G7-1,G7-2").exit_code == 0
    assert adjust("GEAR-7", 2).exit_code == 0 and in_stock("GEAR-7") == (2, ["G7-1", "G7-2"])
    assert one_line_error(adjust("GEAR-7", 1)).startswith("to: 1 counted, but 2 units of GEAR-7 in stock have "
                                                          "serial numbers (G7-1, G7-2)")
