"""Stock as the warehouse keeps it: goods in (once per delivery reference), counts, the ledger,
and reservations: an order holds its quantities from the moment it is made, a shipment takes
them out of stock and out of the reservation, a lost deal frees them; orders racing for the last
machine are both allowed (shown over-reserved), and only one of them can ship."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dealflow.cli import main
from dealflow.scenario import LEAD, SCRIPT, TEAM, Move, play_direct
from models import StockMove, process
from models.catalog import shortages
from models.deal import deal_by_number
from models.pipeline import add_lead
from services.db import session_scope
from tasks.deal_steps import AUTOMATIC, record_answer

from .helpers import counts


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def level(sku: str) -> dict:
    rows = json.loads(cli("stock", "--json").output)
    row = next(r for r in rows if r["sku"] == sku)
    return {k: row[k] for k in ("on_hand", "reserved", "available")}


def test_goods_in_counts_and_the_ledger(db):
    received = cli("stock", "receive", "VMC-850", "2", "--ref", "DN-4711")
    assert received.exit_code == 0 and "on hand 5, reserved 0, available 5" in received.output, received.output
    again = cli("stock", "receive", "VMC-850", "2", "--ref", "DN-4711")
    assert again.exit_code == 2 and "ref: DN-4711 was already received for VMC-850" in again.output
    counted = cli("stock", "adjust", "VMC-850", "--to", "4", "--reason", "annual count")
    assert counted.exit_code == 0 and "VMC-850: -1; on hand 4" in counted.output, counted.output
    assert "no change" in cli("stock", "adjust", "VMC-850", "--to", "4", "--reason", "recount").output
    moves = json.loads(cli("stock", "moves", "VMC-850", "--json").output)
    assert [(m["quantity"], m["reason"], m["reference"]) for m in moves] == [
        (-1, "count", "annual count"), (2, "goods_in", "DN-4711"), (3, "initial", "")]
    assert all(m["by"] for m in moves)
    assert level("VMC-850") == {"on_hand": 4, "reserved": 0, "available": 4}
    assert [r["sku"] for r in json.loads(cli("stock", "--sku", "VMC-850", "--json").output)] == ["VMC-850"]


@pytest.mark.parametrize(("args", "message"), [
    (["receive", "VMC-850", "0", "--ref", "DN-1"], "quantity: must be between 1 and 1,000,000, got 0"),
    (["receive", "VMC-850", "1.5", "--ref", "DN-1"], "quantity: must be a whole number, got '1.5'"),
    (["receive", "VMC-850", "--ref", "DN-1", "--", "-3"], "quantity: must be between 1 and 1,000,000, got -3"),
    (["receive", "VMC-850", "2e3", "--ref", "DN-1"], "quantity: must be a whole number, got '2e3'"),
    (["receive", "VMC-850", "²", "--ref", "DN-1"], "quantity: must be a whole number, got '²'"),
    (["adjust", "VMC-850", "--to", "--5", "--reason", "x"], "to: must be a whole number, got '--5'"),
    (["receive", "VMC-850", "99999999", "--ref", "DN-1"], "quantity: must be between 1 and 1,000,000"),
    (["receive", "VMC-850", "2", "--ref", " "], "ref: must not be empty"),
    (["receive", "NOPE", "2", "--ref", "DN-1"], "sku: no product 'NOPE'"),
    (["receive", "VMC-850", "2"], "Missing option '--ref'"),
    (["adjust", "VMC-850", "--to", "-1", "--reason", "x"], "to: must be between 0 and 1,000,000, got -1"),
    (["adjust", "VMC-850", "--to", "two", "--reason", "x"], "to: must be a whole number, got 'two'"),
    (["adjust", "VMC-850", "--to", "1", "--reason", ""], "reason: must not be empty"),
    (["adjust", "VMC-850", "--to", "1", "--reason", "x" * 41], "reason: must be at most 40 characters"),
    (["moves", "NOPE"], "sku: no product 'NOPE'"),
    (["--sku", "NOPE"], "sku: no product 'NOPE'"),
])
def test_a_bad_stock_command_is_one_clear_line_and_moves_nothing(db, args, message):
    before = counts()
    result = cli("stock", *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert counts() == before and level("VMC-850") == {"on_hand": 3, "reserved": 0, "available": 3}


def _approve(*lines) -> list[Move]:
    return SCRIPT[:2] + [Move("estimate", "mark", {"lines": [{"sku": s, "quantity": q} for s, q in lines]}, "quote"),
                         Move("decision", "mark", {"decision": "approve", "channel": "email"}, "approved")]


def test_an_order_reserves_a_shipment_consumes_and_a_lost_deal_frees(new_deal):
    play_direct(new_deal, _approve(("VMC-850", 2), ("CHUCK-3J-250", 1)), until="decision-rev-1")
    with session_scope() as s:
        from models.waits import KINDS

        deal = deal_by_number(s, new_deal)
        vmc = next(o for o in KINDS["estimate"].choices(s, deal)["products"] if o.startswith("VMC-850"))
        assert vmc.endswith("3 available")
    assert level("VMC-850") == {"on_hand": 3, "reserved": 0, "available": 3}  # an estimate holds nothing
    play_direct(new_deal, _approve(("VMC-850", 2), ("CHUCK-3J-250", 1)), until="qa-attempt-1")
    assert level("VMC-850") == {"on_hand": 3, "reserved": 2, "available": 1}
    assert level("CHUCK-3J-250") == {"on_hand": 10, "reserved": 1, "available": 9}
    with session_scope() as s:
        from models.waits import KINDS

        deal = deal_by_number(s, new_deal)
        vmc = next(o for o in KINDS["estimate"].choices(s, deal)["products"] if o.startswith("VMC-850"))
        assert vmc.endswith("1 available")  # what a new estimate's list shows now
    script = _approve(("VMC-850", 2), ("CHUCK-3J-250", 1)) + [
        Move("qa", "qa", {"passed": True, "notes": "ok"}, "passed"), DEPOSIT,
        Move("shipment", "delivery", {"carrier": "DHL", "tracking_number": "T1",
                                      "lines": [{"sku": "VMC-850", "quantity": 1}]}, "one machine")]
    play_direct(new_deal, script, until="shipment-2")
    assert level("VMC-850") == {"on_hand": 2, "reserved": 1, "available": 1}
    with session_scope() as s:
        deal_by_number(s, new_deal).close_lost("customer cancelled the rest")
        s.commit()
    assert level("VMC-850") == {"on_hand": 2, "reserved": 0, "available": 2}
    assert level("CHUCK-3J-250") == {"on_hand": 10, "reserved": 0, "available": 10}


# the scenario's customer pays a 30 % deposit before shipping
DEPOSIT = Move("deposit", "finance", lambda summary: {"amount": summary["deposit"]["due"]}, "the deposit")


def _second_deal() -> str:
    with session_scope() as s:
        lead = add_lead(s, **{**LEAD, "company": "Hillside Tools", "email": "buyer@hillside.example"})
        number = process.start_deal(s, lead.id, by="sofia").number
        s.commit()
        return number


def _race(action, deals: list[str]) -> list:
    barrier = threading.Barrier(len(deals))
    results: dict[str, object] = {}

    def run(deal: str) -> None:
        barrier.wait()
        try:
            results[deal] = action(deal)
        except Exception as exc:  # noqa: BLE001 - what each racer met is the result
            results[deal] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=run, args=(d,)) for d in deals]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return [results[d] for d in deals]


def test_two_orders_racing_for_the_last_machine_are_both_made_and_only_one_ships(new_deal):
    assert cli("stock", "adjust", "HYD-PRESS-100T", "--to", "1", "--reason", "one left",
               "--serials", "GLM-HP100T-0002").exit_code == 0  # the numbered one gone is named
    deals = [new_deal, _second_deal()]
    moves = _approve(("HYD-PRESS-100T", 1))
    for deal in deals:
        play_direct(deal, moves, until="decision-rev-1")
        record_answer.fn(deal, "decision-rev-1", TEAM.signed(deal, "decision-rev-1", {
            "by": "mark", "decision": "approve", "channel": "email"}))
    with session_scope() as s:
        short = shortages(s, [(deal_by_number(s, deals[0]).estimate.latest.lines[0].product, 1)])
        assert short == []  # both approved, neither ordered yet: the press is still available
    made = _race(lambda deal: AUTOMATIC["create_order"].fn(deal), deals)
    assert all("created from" in str(m) for m in made), made
    assert level("HYD-PRESS-100T") == {"on_hand": 1, "reserved": 2, "available": -1}
    assert "over-reserved by 1" in cli("stock").output

    qa = Move("qa", "qa", {"checklist": {c: True for c in ("hydraulics", "pressure_relief_valve", "safety_guards",
                                                            "emergency_stop")}, "notes": "ok"}, "passed")
    for deal in deals:  # (the scenario's customer pays its 30 % deposit first; Hillside Tools has none to pay)
        play_direct(deal, moves + [qa, DEPOSIT], until="shipment-1")
    # each ships the one press on hand: the stock, locked, lets only one take it
    ship = {deal: {"by": "delivery", "carrier": "DHL", "tracking_number": "T", "lines": [
        {"sku": "HYD-PRESS-100T", "quantity": 1, "serials": ["GLM-HP100T-0001"]}]} for deal in deals}
    outcomes = _race(lambda deal: record_answer.fn(deal, "shipment-1", TEAM.signed(deal, "shipment-1", ship[deal])),
                     deals)
    assert sorted(o["accepted"] for o in outcomes) == [False, True], outcomes
    refused = next(o for o in outcomes if not o["accepted"])
    assert refused["reason"] == "Line 1, quantity: HYD-PRESS-100T: 1 requested but only 0 in stock", refused
    with session_scope() as s:
        shipped = s.scalars(select(StockMove).where(StockMove.reason == "shipment")).all()
        assert [m.quantity for m in shipped] == [-1]
    assert level("HYD-PRESS-100T") == {"on_hand": 0, "reserved": 1, "available": -1}


def test_a_new_revision_starts_with_lines_the_list_offers_while_other_orders_hold_stock(new_deal):
    from models.waits import KINDS, form_start

    play_direct(new_deal, _approve(("VMC-850", 2)), until="qa-attempt-1")  # holds 2 of the 3
    other = _second_deal()
    play_direct(other, SCRIPT[:2] + [
        Move("estimate", "mark", {"lines": [{"sku": "VMC-850", "quantity": 1}]}, "quote"),
        Move("decision", "mark", {"decision": "request_changes", "channel": "email", "changes": "5 %"}, "changes")],
        until="estimate-rev-2")
    with session_scope() as s:
        deal = deal_by_number(s, other)
        [line] = form_start(s, deal, "estimate", "estimate-rev-2")["prefill"]["lines"]
        assert line["sku"].endswith("1 available") and line["sku"] in KINDS["estimate"].choices(s, deal)["products"]


def test_a_line_at_zero_is_not_in_this_shipment_and_all_at_zero_ships_nothing(new_deal):
    play_direct(new_deal, until="shipment-1")
    at_zero = {"by": "delivery", "carrier": "DHL", "tracking_number": "T0",
               "lines": [{"sku": "CNC-LATHE-2000", "quantity": 0}, {"sku": "TOOL-KIT-PRO", "quantity": 0}]}
    refused = record_answer.fn(new_deal, "shipment-1", TEAM.signed(new_deal, "shipment-1", at_zero))
    assert refused["reason"] == ("lines: nothing to ship: every line is at 0 (leave the lines out to ship all that "
                                 "is left)")
    partial = {"by": "delivery", "carrier": "DHL", "tracking_number": "T1",
               "lines": [{"sku": "CNC-LATHE-2000", "quantity": 2, "serials": ["GLM-GL2000-0001", "GLM-GL2000-0002"]},
                         {"sku": "TOOL-KIT-PRO", "quantity": 0},
                         {"sku": "CHUCK-3J-250", "quantity": 0}]}
    from tasks.deal_steps import open_wait

    open_wait(new_deal, "shipment", "shipment-1-retry-1", None)  # the deal waits again, as the flow makes it
    accepted = record_answer.fn(new_deal, "shipment-1-retry-1",
                                TEAM.signed(new_deal, "shipment-1-retry-1", partial))
    assert accepted["accepted"], accepted
    with session_scope() as s:
        order = deal_by_number(s, new_deal).order
        assert [(sl.order_line.sku, sl.quantity) for sl in order.shipments[0].lines] == [("CNC-LATHE-2000", 2)]
        assert {ln.sku: ln.remaining for ln in order.lines if ln.remaining} == {
            "CNC-LATHE-2000": 1, "TOOL-KIT-PRO": 3, "CHUCK-3J-250": 3, "COOLANT-20L": 10}
