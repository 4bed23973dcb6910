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

