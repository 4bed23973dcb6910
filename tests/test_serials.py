"""Serial numbers: a machine is marked serialized with its warranty, comes in with its serial
numbers, ships with one serial number per unit (the form starts with the oldest in stock), and is
found again by its number: its customer, deal, order, shipment, ship date, warranty and history.
A serial number is unique per product (also on PostgreSQL); every refused number is one line
naming the field and the number, with nothing written."""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
from datetime import timedelta

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from dealflow.cli import main
from dealflow.scenario import LEAD, SCRIPT, Move, play_direct
from models import DomainError, Product, process, utcnow
from models.deal import deal_by_number
from models.errors import ValidationError
from models.orders import ShipmentLine
from models.pipeline import add_lead
from models.serials import (
    SERIAL_RULE,
    Serial,
    SerialEvent,
    ShipmentSerial,
    add_months,
    period_end,
    serial_by_number,
)
from services.db import session_scope
from services.rendering import render, render_email

from .helpers import check_answer, counts, record_answer

EXAMPLES = int(os.environ.get("DEALFLOW_HYPOTHESIS_EXAMPLES", "40"))
SLOW = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
REFS = itertools.count(1)
LATHES = [f"GLM-GL2000-000{n}" for n in range(1, 5)]  # the seed's four lathes, in the order they came in


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0].removeprefix("error: ")


def written() -> dict[str, int]:
    """What 'nothing written' means here: the business tables and stock, and every serial row."""
    with session_scope() as s:
        return {**counts(), **{m.__tablename__: s.scalar(select(func.count()).select_from(m))
                               for m in (Serial, SerialEvent, ShipmentSerial)},
                "shipped": s.scalar(select(func.count()).select_from(Serial).where(Serial.status == "shipped"))}


def units(sku: str) -> list[tuple[str, str]]:
    with session_scope() as s:
        return [(u.serial, u.status) for u in s.scalars(
            select(Serial).join(Product).where(Product.sku == sku).order_by(Serial.id))]


# --- the product, and goods in ----------------------------------------------------------------------

def test_a_product_is_marked_serialized_with_its_warranty_by_command_and_by_file(db, tmp_path):
    added = cli("product", "add", "SPINDLE-X1", "--name", "Spindle unit X1", "--price", "9800", "--tax-rate", "18",
                "--serialized", "--warranty-months", "12")
    assert added.exit_code == 0 and "serialized (warranty 12 months)" in added.output, added.output
    assert "--serials S1,S2" in added.output
    shown = cli("product", "show", "SPINDLE-X1")
    assert "serials    yes: one serial number per unit; warranty 12 months from shipping" in shown.output, shown.output
    row = json.loads(cli("product", "show", "SPINDLE-X1", "--json").output)
    assert (row["serialized"], row["warranty_months"]) == (True, 12)
    listed = cli("product", "list").output
    assert re.search(r"SPINDLE-X1 .* yes +12 months", listed) and re.search(r"COOLANT-20L .* no +none", listed)
    edited = cli("product", "edit", "SPINDLE-X1", "--not-serialized", "--warranty-months", "0")
    assert edited.exit_code == 0 and "serialized True -> False" in edited.output, edited.output

    catalogue = tmp_path / "products.csv"
    catalogue.write_text("sku,name,price,tax_rate,serialized,warranty_months\n"
                         "SPINDLE-X1,Spindle unit X1,9800,18,yes,36\n"
                         "GAUGE-7,Bore gauge,120,18,,\n")
    imported = cli("product", "import", str(catalogue))
    assert imported.exit_code == 0, imported.output
    with session_scope() as s:
        got = {p.sku: (p.serialized, p.warranty_months) for p in s.scalars(select(Product))}
    assert got["SPINDLE-X1"] == (True, 36) and got["GAUGE-7"] == (False, 0)
    assert got["CNC-LATHE-2000"] == (True, 24) and got["COOLANT-20L"] == (False, 0)  # the seed's
    # and back out and in again: the file says the same
    out = tmp_path / "again.csv"
    assert cli("product", "export", str(out)).exit_code == 0
    assert "SPINDLE-X1,Spindle unit X1,9800.00,18.00,yes,,,yes,yes,36" in out.read_text()
    assert json.loads(cli("product", "import", str(out), "--json").output)["unchanged"]


@pytest.mark.parametrize(("args", "message"), [
    (["--warranty-months", "121"], "warranty_months: must be a whole number of months from 0 (none) to 120, got '121'"),
    (["--warranty-months", "-1"], "warranty_months: must be a whole number of months from 0 (none) to 120, got '-1'"),
    (["--warranty-months", "two"], "warranty_months: must be a whole number of months from 0 (none) to 120, got 'two'"),
    (["--warranty-months", "1.5"], "warranty_months: must be a whole number of months from 0 (none) to 120"),
])
def test_a_warranty_outside_0_to_120_months_is_one_line_and_changes_nothing(db, args, message):
    before = written()
    assert message in one_line_error(cli("product", "edit", "VMC-850", *args))
    assert written() == before
    with session_scope() as s:
        assert s.scalars(select(Product.warranty_months).where(Product.sku == "VMC-850")).one() == 24


def test_a_file_with_a_bad_serialized_or_warranty_cell_names_its_row_and_imports_nothing(db, tmp_path):
    catalogue = tmp_path / "products.csv"
    catalogue.write_text("sku,name,price,tax_rate,serialized,warranty_months\n"
                         "NEW-1,New one,10,18,maybe,12\nNEW-2,New two,10,18,yes,240\n")
    result = cli("product", "import", str(catalogue))
    assert result.exit_code == 2
    assert "row 2, column serialized: must be yes or no, got 'maybe'" in result.output
    assert "row 3, column warranty_months: must be a whole number of months from 0 (none) to 120" in result.output
    assert cli("product", "show", "NEW-1").exit_code == 2


def test_goods_in_with_serial_numbers_puts_each_unit_in_stock_with_its_history(db, tmp_path):
    received = cli("stock", "receive", "VMC-850", "2", "--ref", "DN-4711", "--serials", "VM-1001, VM-1002")
    assert received.exit_code == 0, received.output
    assert "VMC-850: 2 received (DN-4711) with serial numbers VM-1001, VM-1002; on hand 5" in received.output
    listing = tmp_path / "serials.txt"
    listing.write_text("VM-1003\n\nVM-1004\r\n")
    from_file = cli("stock", "receive", "VMC-850", "2", "--ref", "DN-4712", "--serials-file", str(listing), "--json")
    assert json.loads(from_file.output)["serials"] == ["VM-1003", "VM-1004"]
    without = cli("stock", "receive", "VMC-850", "1", "--ref", "DN-4713")  # a serialized product may come in without
    assert "VMC-850 is serialized: its serial numbers are typed when the units ship" in without.output
    assert units("VMC-850") == [(f"GLM-VMC850-000{n}", "in_stock") for n in (1, 2, 3)] + [
        (f"VM-100{n}", "in_stock") for n in (1, 2, 3, 4)]
    shown = json.loads(cli("serial", "show", "vm-1003", "--json").output)  # case aside
    assert (shown["serial"], shown["sku"], shown["status"], shown["received_ref"]) == (
        "VM-1003", "VMC-850", "in stock", "DN-4712")
    assert (shown["customer"], shown["warranty"], shown["warranty_end"]) == (None, "24 months from shipping", None)
    assert [(h["event"], h["reference"]) for h in shown["history"]] == [("received", "DN-4712")]


@pytest.mark.parametrize(("args", "message"), [
    (["VMC-850", "2", "--serials", "VM-1"], "serials: 2 units received and 1 serial number given: give one per unit"),
    (["VMC-850", "1", "--serials", "VM-1,VM-2"], "serials: 1 unit received and 2 serial numbers given"),
    (["VMC-850", "2", "--serials", "VM-1,vm-1"], "serials: vm-1 is given twice"),
    (["VMC-850", "1", "--serials", "GLM-VMC850-0002"], "serials: VMC-850 GLM-VMC850-0002 is already in stock "
                                                        "(received "),
    (["VMC-850", "1", "--serials", "glm-vmc850-0002"], "serials: VMC-850 GLM-VMC850-0002 is already in stock"),
    (["COOLANT-20L", "1", "--serials", "C-1"], "serials: COOLANT-20L is not serialized: receive it without serial "
                                               "numbers (or mark it with `dealflow product edit COOLANT-20L "
                                               "--serialized`)"),
    (["VMC-850", "1", "--serials", "-VM-1"], "serials: a serial number is letters, digits and . _ / # + - (spaces "
                                             "inside), starting with a letter or digit, at most 60 characters; got "
                                             "'-VM-1'"),
    (["VMC-850", "1", "--serials", "A" * 61], "serials: must be at most 60 characters, got 61"),
    (["VMC-850", "1", "--serials", "VM-1", "--serials-file", "x.txt"], "give the serial numbers with --serials or "
                                                                       "with --serials-file, not both"),
    (["VMC-850", "1", "--serials-file", "no-such-file.txt"], "--serials-file: no-such-file.txt does not exist"),
])
def test_a_bad_serial_number_at_goods_in_is_one_line_naming_it_and_nothing_comes_in(db, args, message):
    before = written()
    assert message in one_line_error(cli("stock", "receive", *args[:2], "--ref", "DN-9", *args[2:]))
    assert written() == before


@SLOW
@given(data=st.data())
def test_any_serial_number_at_goods_in_is_taken_as_its_rule_says_or_refused_naming_it(db, data):
    """Typed numbers of every kind (valid, too long, odd characters, ones in stock, twice in one
    list, a count that does not match): refused as one line naming ``serials`` and the number, or
    taken whole; never a half receipt."""
    typed = data.draw(st.lists(st.one_of(st.from_regex(SERIAL_RULE, fullmatch=True),
                                         st.sampled_from(["GLM-VMC850-0001", "glm-vmc850-0003"]),
                                         st.text(max_size=70)), min_size=1, max_size=4))
    count = data.draw(st.integers(1, 4))
    ref = f"DN-{next(REFS)}"  # a new delivery each time (the database stays for all examples)
    before = written()
    try:
        with session_scope() as s:
            from models.serials import receive_units

            vmc = s.scalars(select(Product).where(Product.sku == "VMC-850")).one()
            _, made = receive_units(s, vmc, count, ref, "test", typed)
            s.commit()
    except ValidationError as exc:
        assert exc.field == "serials" and "\n" not in str(exc), exc
        assert written() == before
        return
    texts = [t.strip() for t in typed if t.strip()]
    if not texts:  # only blanks: received without serial numbers (typed when the units ship)
        assert made == [] and written()["stock_moves"] == before["stock_moves"] + 1
        return
    assert len(made) == count == len(texts) and [u.serial for u in made] == texts
    assert all(SERIAL_RULE.fullmatch(t) for t in texts)
    assert written()["serials"] == before["serials"] + count


# --- serial numbers are unique per product ------------------------------------------------------------

def test_a_serial_number_is_unique_per_product_in_the_database_and_found_by_sku_when_shared(db):
    with session_scope() as s:
        lathe, press = (s.scalars(select(Product).where(Product.sku == sku)).one()
                        for sku in ("CNC-LATHE-2000", "HYD-PRESS-100T"))
        s.add(Serial(product=lathe, serial="GLM-GL2000-0001", received_ref="again"))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
    with session_scope() as s:  # the same number on another product is another unit
        press = s.scalars(select(Product).where(Product.sku == "HYD-PRESS-100T")).one()
        s.add(Serial(product=press, serial="GLM-GL2000-0001", received_ref="DN-1"))
        s.commit()
    with session_scope() as s, pytest.raises(ValidationError) as shared:
        serial_by_number(s, "glm-gl2000-0001")
    assert str(shared.value) == ("serial: GLM-GL2000-0001 is a serial number of CNC-LATHE-2000, HYD-PRESS-100T: say "
                                 "which, as CNC-LATHE-2000:GLM-GL2000-0001")
    with session_scope() as s:
        assert serial_by_number(s, "hyd-press-100t:GLM-GL2000-0001").product.sku == "HYD-PRESS-100T"
    assert one_line_error(cli("serial", "show", "NOPE-1")) == "serial: no serial number 'NOPE-1'"
    assert "serial: GLM-GL2000-0001 is a serial number of" in one_line_error(cli("serial", "show", "GLM-GL2000-0001"))


# --- shipping ---------------------------------------------------------------------------------------

def _serials_of(deal_number: str) -> dict[str, list[str]]:
    """Per shipment: the serial numbers that left in it."""
    with session_scope() as s:
        order = deal_by_number(s, deal_number).order
        return {sh.number: [u.unit.serial for sl in sh.lines for u in s.scalars(
            select(ShipmentSerial).where(ShipmentSerial.shipment_line_id == sl.id).order_by(ShipmentSerial.id))]
            for sh in order.shipments}


def test_the_scenario_ships_its_lathes_with_the_serial_numbers_the_form_starts_with(new_deal):
    play_direct(new_deal, until="shipment-1")
    from application.serials import shipment_form

    assert shipment_form(new_deal)[0] == {"sku": "CNC-LATHE-2000", "quantity": 3, "serials": LATHES[:3]}
    assert "serials" not in shipment_form(new_deal)[1]  # the tool kit has none
    play_direct(new_deal)
    assert _serials_of(new_deal) == {"SHP-0001": LATHES[:2], "SHP-0002": LATHES[2:3]}
    assert units("CNC-LATHE-2000") == [(n, "shipped") for n in LATHES[:3]] + [(LATHES[3], "in_stock")]
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        for shipment in deal.order.shipments:  # serials shipped == quantity shipped, line by line
            for line in shipment.lines:
                shipped = s.scalar(select(func.count()).select_from(ShipmentSerial).where(
                    ShipmentSerial.shipment_line_id == line.id))
                assert shipped == (line.quantity if line.order_line.product.serialized else 0), line.order_line.sku
        first = s.scalars(select(Serial).where(Serial.serial == LATHES[0])).one()
        shipment = deal.order.shipments[0]
        assert (first.customer_id, first.deal_id, first.shipment_line.shipment.number) == (
            deal.customer_id, deal.id, "SHP-0001")
        assert first.shipped_on == shipment.at.date()
        assert first.warranty_end == add_months(shipment.at.date(), 24)
        assert [(e.event, e.reference, e.by) for e in first.events] == [
            ("received", "opening stock", "init"), ("shipped", "SHP-0001", "delivery")]
    shown = json.loads(cli("serial", "show", LATHES[0], "--json").output)
    days = (add_months(utcnow().date(), 24) - utcnow().date()).days
    assert {k: shown[k] for k in ("sku", "status", "customer", "deal", "order", "shipment", "days_left", "expired")} == {
        "sku": "CNC-LATHE-2000", "status": "shipped", "customer": LEAD["company"], "deal": new_deal,
        "order": "SO-0001", "shipment": "SHP-0001", "days_left": days, "expired": False}
    text = cli("serial", "show", LATHES[0]).output
    for said in ("status     shipped", f"customer   {LEAD['company']}", f"deal       {new_deal}, order SO-0001, "
                 "shipment SHP-0001", f"warranty   until {shown['warranty_end']} ({days} days left)",
                 "received         opening stock", "shipped          SHP-0001"):
        assert said in text, (said, text)


def test_the_delivery_note_its_email_and_the_invoice_list_the_serial_numbers_under_their_line(new_deal):
    from models import Document, Email

    play_direct(new_deal)
    with session_scope() as s:
        docs = {d.number: d.context for d in s.scalars(select(Document))}
        mail = s.scalars(select(Email).where(Email.kind == "shipment").order_by(Email.id)).first().context
    first = next(ln for ln in docs["SHP-0001"]["lines"] if ln["sku"] == "CNC-LATHE-2000")
    assert first["serials"] == LATHES[:2]
    assert all("serials" not in ln for ln in docs["SHP-0001"]["lines"] if ln["sku"] != "CNC-LATHE-2000")
    note = render("documents/shipment.html", docs["SHP-0001"])
    assert re.search(r"CNC-LATHE-2000</span><span class=\"sku serial\">S/N GLM-GL2000-0001</span>"
                     r"<span class=\"sku serial\">S/N GLM-GL2000-0002</span></td>", note), note
    text, html = render_email("emails/shipment", mail)
    assert "2 × CNC lathe GL-2000, 2 m bed, serial numbers GLM-GL2000-0001, GLM-GL2000-0002" in html
    assert "- 2 × CNC lathe GL-2000, 2 m bed, serial numbers GLM-GL2000-0001, GLM-GL2000-0002" in text
    items = [line for line in text.splitlines() if line.startswith("- ")]  # each item on a line of its own
    assert len(items) == len(docs["SHP-0001"]["lines"]) and items[0].startswith("- 2 × CNC lathe"), text
    invoice = next(ln for ln in docs["INV-0001"]["lines"] if ln["sku"] == "CNC-LATHE-2000")
    assert invoice["serials"] == LATHES[:3]  # both shipments' lathes
    printed = render("documents/invoice.html", docs["INV-0001"])
    assert "S/N GLM-GL2000-0003" in printed and printed.count("S/N ") == 3


def test_the_customers_invoice_page_shows_the_serial_numbers(new_deal, portal, data_dir):
    from dealflow.customer import PortalCustomer, link_in_mail

    play_direct(new_deal, until="payment-2")
    link = link_in_mail(data_dir / "mail", "Invoice INV-", kind="i")
    with PortalCustomer() as customer:
        page = customer.open(link)
    assert page.status_code == 200
    assert [f"S/N {n}" for n in LATHES[:3]] == re.findall(r"S/N GLM-GL2000-000\d", page.text)


def _at_second_shipment(deal: str) -> None:
    """The scenario's deal after its first shipment of two lathes (GLM-GL2000-0001, -0002)."""
    play_direct(deal, until="shipment-2")


def _lathe(serials, quantity: int = 1) -> dict:
    return {"by": "delivery", "carrier": "DHL", "tracking_number": "T2",
            "lines": [{"sku": "CNC-LATHE-2000", "quantity": quantity, "serials": serials}]}


@pytest.mark.parametrize(("answer", "message"), [
    (_lathe([]), "Line 1, serials: CNC-LATHE-2000 is serialized: give one serial number per unit, 1 unit and 0 serial "
                 "numbers given"),
    (_lathe([LATHES[2], LATHES[3]]), "Line 1, serials: CNC-LATHE-2000 is serialized: give one serial number per "
                                     "unit, 1 unit and 2 serial numbers given"),
    (_lathe([LATHES[2], LATHES[2].lower()], quantity=1), f"Line 1, serials: {LATHES[2].lower()} is given twice"),
    (_lathe([LATHES[0]]), f"Line 1, serials: CNC-LATHE-2000 {LATHES[0]} is already shipped to Riverside Metalworks "
                          "Ltd on "),
    (_lathe(["GLM-GL2000-0099"]), "Line 1, serials: CNC-LATHE-2000: GLM-GL2000-0099 is not a serial number in stock "
                                  f"(in stock: {LATHES[2]}, {LATHES[3]})"),
    ({**_lathe([LATHES[2]]), "lines": [_lathe([LATHES[2]])["lines"][0],
                                       {"sku": "TOOL-KIT-PRO", "quantity": 1, "serials": ["TK-1"]}]},
     "Line 2, serials: TOOL-KIT-PRO is not serialized: leave its serial numbers empty"),
    ({**_lathe([]), "lines": []}, "Line 1, serials: CNC-LATHE-2000 is serialized: give one serial number per unit, "
                                  "1 unit and 0 serial numbers given"),
])
def test_a_shipment_with_serial_numbers_that_do_not_fit_is_refused_naming_them_and_writes_nothing(
        new_deal, answer, message):
    _at_second_shipment(new_deal)
    before = written()
    with pytest.raises(DomainError) as err:
        check_answer(new_deal, "shipment", answer)
    assert str(err.value).startswith(message), str(err.value)
    assert written() == before
    result = record_answer.fn(new_deal, "shipment-2", answer)  # the flow's check: only the refusal is written
    assert not result["accepted"] and result["reason"].startswith(message), result
    assert written() == before
    assert units("CNC-LATHE-2000") == [(n, "shipped") for n in LATHES[:2]] + [(n, "in_stock") for n in LATHES[2:]]


@SLOW
@given(data=st.data())
def test_any_serial_numbers_on_a_shipment_are_shipped_as_given_or_refused_in_one_line(new_deal, data):
    """Whatever delivery types for the last lathe and a tool kit (numbers in stock, shipped, new,
    misspelt, twice, too many or too few, on the tool kit): refused as one line naming the line's
    serials and never half-written, or shipped as given; after any of them, a unit is either in
    stock or shipped once, and serials shipped equal lathes shipped."""
    with session_scope() as s:  # the first example brings the deal there; a check writes nothing, so it stays
        at_two = deal_by_number(s, new_deal).open_wait
        at_two = at_two is not None and at_two.key == "shipment-2"
    if not at_two:
        _at_second_shipment(new_deal)
    number = st.one_of(st.sampled_from(LATHES + [n.lower() for n in LATHES]), st.from_regex(SERIAL_RULE, fullmatch=True),
                       st.text(max_size=64))
    lathe = data.draw(st.lists(number, max_size=3), label="lathe serials")
    kit = data.draw(st.one_of(st.just([]), st.lists(number, max_size=2)), label="kit serials")
    answer = {"by": "delivery", "carrier": "DHL", "tracking_number": "T2",
              "lines": [{"sku": "CNC-LATHE-2000", "quantity": 1, "serials": lathe},
                        {"sku": "TOOL-KIT-PRO", "quantity": 1, "serials": kit}]}
    before = written()
    try:
        check_answer(new_deal, "shipment", answer)
    except DomainError as exc:
        said = str(exc)
        assert "\n" not in said and re.match(r"Line [12], serials: ", said), said
        assert written() == before
        return
    # taken: the one lathe in stock the numbers name (what the check accepted, it would ship)
    given = [t.strip() for t in lathe if str(t).strip()]
    assert len(given) == 1 and not [t for t in kit if str(t).strip()]
    assert given[0].upper() in (LATHES[2], LATHES[3]), given


def test_a_unit_received_without_its_serial_number_ships_under_the_one_typed_and_no_more(new_deal):
    assert cli("stock", "receive", "CNC-LATHE-2000", "1", "--ref", "DN-NOSN").exit_code == 0  # 5 on hand, 4 numbered
    _at_second_shipment(new_deal)
    typo = record_answer.fn(new_deal, "shipment-2", _lathe(["PLATE-777", "PLATE-778"], quantity=1))
    assert typo["reason"].endswith("1 unit and 2 serial numbers given"), typo
    from tasks.deal_steps import open_wait

    open_wait(new_deal, "shipment", "shipment-2-retry-1", None)
    shipped = record_answer.fn(new_deal, "shipment-2-retry-1", {
        **_lathe(["PLATE-777"]), "lines": [{"sku": "CNC-LATHE-2000", "quantity": 1, "serials": ["PLATE-777"]},
                                           {"sku": "TOOL-KIT-PRO", "quantity": 1},
                                           {"sku": "CHUCK-3J-250", "quantity": 1}]})
    assert shipped["accepted"], shipped
    assert units("CNC-LATHE-2000")[-1] == ("PLATE-777", "shipped")
    with session_scope() as s:
        plate = s.scalars(select(Serial).where(Serial.serial == "PLATE-777")).one()
        assert (plate.received_ref, [e.event for e in plate.events]) == ("", ["shipped"])
    # no unit without a number is left: a second new number is a typo, and is refused
    with session_scope() as s:
        lathe = s.scalars(select(Product).where(Product.sku == "CNC-LATHE-2000")).one()
        from models.serial_shipping import units_to_ship
        from models.stock import issue

        issue(s, lathe, 1, reason="test", source_key="t")
        with pytest.raises(ValidationError) as err:
            units_to_ship(s, lathe, ["PLATE-779"], 1, "Line 1, serials")
        s.rollback()
    assert str(err.value) == ("Line 1, serials: CNC-LATHE-2000: PLATE-779 is not a serial number in stock (in stock: "
                              f"{LATHES[2]}, {LATHES[3]})")


def _second_deal(company: str = "Hillside Tools") -> str:
    with session_scope() as s:
        lead = add_lead(s, **{**LEAD, "company": company, "email": f"buyer@{company.split()[0].lower()}.example"})
        number = process.start_deal(s, lead.id, by="sofia").number
        s.commit()
        return number


LATHE_ORDER = SCRIPT[:2] + [Move("estimate", "mark", {"lines": [{"sku": "CNC-LATHE-2000", "quantity": 1}]}, "one"),
                            Move("decision", "mark", {"decision": "approve", "channel": "email"}, "approved"),
                            SCRIPT[7], SCRIPT[8]]


def test_two_shipments_confirmed_at_once_start_with_different_units(new_deal):
    """Two deals waiting at their shipment at the same time: the one that waited first starts with
    the oldest lathe, the other with the next one, so neither delivery is refused for the other's."""
    from application.serials import shipment_form

    deals = [new_deal, _second_deal()]
    for deal in deals:
        play_direct(deal, LATHE_ORDER if deal != new_deal else None, until="shipment-1")
    assert [shipment_form(d)[0]["serials"] for d in deals] == [LATHES[:3], [LATHES[3]]]


@pytest.mark.skipif(not os.environ.get("DEALFLOW_TEST_DATABASE_URL"),
                    reason="the race needs PostgreSQL's row locks (SQLite writes one at a time)")
def test_two_shipments_of_one_unit_at_the_same_moment_ship_it_once(new_deal):
    """Two deliveries name the same lathe at the same moment: the product's stock lock makes them
    queue, one ships it, the other is refused naming it, and the unit has one shipment."""
    deals = [new_deal, _second_deal()]
    play_direct(new_deal, LATHE_ORDER, until="shipment-1")
    play_direct(deals[1], LATHE_ORDER, until="shipment-1")
    barrier = threading.Barrier(2)
    outcomes: dict[str, dict] = {}

    def ship(deal: str) -> None:
        barrier.wait()
        outcomes[deal] = record_answer.fn(deal, "shipment-1", _lathe([LATHES[0]]))

    threads = [threading.Thread(target=ship, args=(d,)) for d in deals]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(o["accepted"] for o in outcomes.values()) == [False, True], outcomes
    refused = next(o for o in outcomes.values() if not o["accepted"])
    assert refused["reason"].startswith(f"Line 1, serials: CNC-LATHE-2000 {LATHES[0]} is already shipped to "), refused
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(ShipmentSerial)) == 1
        assert s.scalar(select(func.count()).select_from(ShipmentLine)) == 1


# --- finding units: by customer, by warranty end ------------------------------------------------------

def test_serial_list_by_customer_and_warranty_end_and_the_days_left(new_deal):
    play_direct(new_deal)
    today = utcnow().date()
    with session_scope() as s:  # the first lathe shipped two years ago: its warranty ended yesterday
        old = s.scalars(select(Serial).where(Serial.serial == LATHES[0])).one()
        old.shipped_on, old.warranty_end = today - timedelta(days=731), today - timedelta(days=1)
        soon = s.scalars(select(Serial).where(Serial.serial == LATHES[1])).one()
        soon.warranty_end = today + timedelta(days=20)
        s.commit()
    rows = json.loads(cli("serial", "list", "--customer", "riverside metalworks", "--json").output)
    assert [(r["serial"], r["status"]) for r in rows] == [(LATHES[0], "shipped"), (LATHES[1], "shipped"),
                                                          (LATHES[2], "shipped")]  # by warranty end
    assert (rows[0]["expired"], rows[0]["days_left"], rows[1]["days_left"]) == (True, 0, 20)
    assert f"ended {today - timedelta(days=1)} (expired)" in cli("serial", "show", LATHES[0]).output
    soon = json.loads(cli("serial", "list", "--expiring-within", "30d", "--json").output)
    assert [r["serial"] for r in soon] == [LATHES[1]]
    for within in ("4w", "1m", "24m", "3y"):
        listed = [r["serial"] for r in json.loads(cli("serial", "list", "--expiring-within", within, "--json").output)]
        assert listed == ([LATHES[1]] if within in ("4w", "1m") else [LATHES[1], LATHES[2]]), (within, listed)
    table = cli("serial", "list").output.splitlines()
    assert table[0].split() == ["SERIAL", "SKU", "STATUS", "CUSTOMER", "DEAL", "SHIPPED_ON", "WARRANTY"]
    assert table[1].startswith(LATHES[0]) and "in stock" in table[-1]  # the unit in stock last (no warranty yet)


@pytest.mark.parametrize(("args", "message"), [
    (["--expiring-within", "30"], "--expiring-within: must be a number of days, weeks, months or years, like 30d, "
                                  "12w, 6m or 1y (at most 3650), got '30'"),
    (["--expiring-within", "soon"], "--expiring-within: must be a number of days, weeks, months or years"),
    (["--expiring-within", "-3d"], "--expiring-within: must be a number of days, weeks, months or years"),
    (["--expiring-within", "99999d"], "--expiring-within: must be a number of days, weeks, months or years"),
    (["--customer", "Nobody At All"], "--customer: no customer 'Nobody At All' (give their name, number or e-mail)"),
])
def test_a_bad_serial_list_option_is_one_line_naming_it(db, args, message):
    assert message in one_line_error(cli("serial", "list", *args))


@given(text=st.text(max_size=12))
def test_any_period_is_read_as_days_weeks_months_or_years_or_refused_naming_the_option(text):
    today = utcnow().date()
    try:
        end = period_end(text, today, "--expiring-within")
    except ValidationError as exc:
        assert exc.field == "--expiring-within"
    else:
        assert end >= today and re.fullmatch(r"\s*[0-9]{1,4}\s*[dwmyDWMY]\s*", text)


def test_a_warranty_ends_the_same_day_months_later_or_at_the_months_end():
    from datetime import date

    assert add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert add_months(date(2027, 3, 15), 24) == date(2029, 3, 15)
    assert add_months(date(2027, 12, 31), 2) == date(2028, 2, 29)
