"""A repaired unit goes back to its customer (``return_ship_back``): after QA sends units of a
return to repair, delivery ships them back with a carrier, a tracking number and a date. Each unit
is the same customer's again with its warranty as it was, its history says so, the return's lines
count what went back, the customer gets the delivery note once, and nothing repaired is credited.
Bad input is one line naming the field with nothing written; on PostgreSQL two deliveries shipping
the same return back at the same moment ship it once."""

from __future__ import annotations

import os
import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from application import cases, deals
from dealflow.scenario import TEAM
from models import AuditEntry, Document, Email
from models.catalog import StockMove
from models.clock import utcnow
from models.credit_notes import CreditNote
from models.markdown import plain
from models.return_steps import ship_back
from models.returns import ReturnOrder, return_by_number, returnable
from models.serials import SerialEvent, serial_by_number
from models.staff import StaffUser
from services.db import session_scope
from services.rendering import render, render_email

from . import test_returns
from .helpers import a_backend_waits_for_a_lock
from .test_bad_input_cli import _fingerprint
from .test_documents import _pdf_cells
from .test_returns import (
    AUTHORIZE,
    CREDIT,
    KIT,
    LATHE,
    RECEIVE,
    SHIP_BACK,
    _ask,
    _claim,
    drive_case,
    inspected,
    received,
    shipped_serials,
)

staff = test_returns.staff  # the manager signed in (won_deal: tests/conftest.py)

on_postgres = pytest.mark.skipif(not os.environ.get("DEALFLOW_TEST_DATABASE_URL"),
                                 reason="the race needs PostgreSQL's row locks (SQLite writes one at a time)")


def unit(sn: str) -> dict:
    with session_scope() as s:
        u = serial_by_number(s, sn)
        return {"status": u.status, "customer_id": u.customer_id, "deal_id": u.deal_id, "shipped_on": u.shipped_on,
                "warranty_end": u.warranty_end, "shipment_line_id": u.shipment_line_id,
                "events": [(e.event, e.reference) for e in u.events]}


def repaired_under_claim(sn: str) -> list[dict]:
    """A claim on ``sn`` diagnosed for a return, the unit received and sent to repair by QA."""
    number = _claim(sn)
    return drive_case(number, {
        "claim_diagnose": {"by": "mark", "diagnosis": "Spindle bearing worn.", "resolution": "return"},
        "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]},
        "return_inspect": {"by": "qa", "notes": "Bearing replaced.", "lines": [
            {"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "repair"}]}})


def counted(number: str) -> dict:
    """What shipping a return back writes, counted."""
    with session_scope() as s:
        ret = return_by_number(s, number)
        back = f"{number}-BACK"
        return {"events": s.scalar(select(func.count()).select_from(SerialEvent)
                                   .where(SerialEvent.event == "shipped_back")),
                "documents": s.scalar(select(func.count()).select_from(Document).where(Document.number == back)),
                "emails": s.scalar(select(func.count()).select_from(Email).where(Email.dedupe_key == f"shipment:{back}")),
                "audit": s.scalar(select(func.count()).select_from(AuditEntry)
                                  .where(AuditEntry.action == "return.shipped_back")),
                "shipped_back": [ln.shipped_back_qty for ln in ret.lines],
                "on": ret.shipped_back_on, "carrier": ret.back_carrier, "tracking": ret.back_tracking_number}


def test_a_claims_unit_repaired_ships_back_to_the_same_customer_with_its_warranty_unchanged(won_deal, staff):
    sn = shipped_serials(won_deal, LATHE)[0]
    before = unit(sn)
    steps = repaired_under_claim(sn)
    assert [s["key"] for s in steps] == ["wc-0001-diagnose", "rma-0001-receive", "rma-0001-inspect"], steps
    assert unit(sn)["status"] == "in_repair"

    # the claim waits for the unit to go back; its form lists the unit with its serial and warranty
    at = cases.next_step("WC-0001")
    assert (at["name"], at["key"], at["roles"]) == ("return_ship_back", "rma-0001-ship-back", ["delivery"])
    deals.open_wait(won_deal, at["name"], at["key"], None)
    described = plain(cases.next_step("WC-0001")["opened"]["description"])
    assert "ship the repaired units of RMA-0001 back to Riverside Metalworks" in described, described
    assert f"| {LATHE} |" in described and f"| 1 | {sn} | {before['warranty_end']} |" in described, described

    steps = drive_case("WC-0001", {"return_ship_back": {**SHIP_BACK, "note": "Bearing and seals replaced."},
                                   "claim_close": {"by": "mark", "note": "Bearing replaced, unit shipped back."}})
    assert [s["key"] for s in steps] == ["rma-0001-ship-back", "close-rma-0001", "wc-0001-close"], steps
    assert steps[0]["accepted"], steps
    after = unit(sn)
    # the customer's again, on the same deal and shipment line, shipped on the same day: its
    # warranty runs as it did
    assert after["status"] == "shipped"
    assert {k: after[k] for k in ("customer_id", "deal_id", "shipped_on", "warranty_end", "shipment_line_id")} == \
        {k: before[k] for k in ("customer_id", "deal_id", "shipped_on", "warranty_end", "shipment_line_id")}
    assert [e for e, _ in after["events"]][-5:] == ["claim_opened", "return_received", "in_repair", "shipped_back",
                                                   "claim_closed"]
    assert ("shipped_back", "RMA-0001") in after["events"]
    out = cases.case_summary("WC-0001")
    assert out["status"] == "closed" and cases.case_summary("RMA-0001")["status"] == "closed"
    got = counted("RMA-0001")
    assert (got["events"], got["documents"], got["emails"], got["audit"]) == (1, 1, 1, 1)
    assert (got["shipped_back"], got["on"], got["carrier"], got["tracking"]) == (
        [1], utcnow().date(), "DHL Freight", "DHLF-7845999")
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CreditNote)) == 0  # a warranty return: never credited
        assert s.scalar(select(func.count()).select_from(StockMove).where(StockMove.reason == "return")) == 0
        mail = s.scalars(select(Email).where(Email.dedupe_key == "shipment:RMA-0001-BACK")).one()
        doc = s.scalars(select(Document).where(Document.number == "RMA-0001-BACK")).one()
        subject, context, to = mail.subject, doc.context, mail.to_addr
    assert subject == "Repaired and on its way back: RMA-0001 (DHL Freight DHLF-7845999)"
    assert to == context["customer"]["email"]
    cells = [c for line in _pdf_cells(render("documents/shipment.html", context)) for c in line]
    for said in ("Delivery note RMA-0001-BACK", "Order SO-0001 (repaired under return RMA-0001)",
                 "Carrier DHL Freight, tracking DHLF-7845999", f"S/N {sn}, warranty until {before['warranty_end']}"):
        assert said in cells, (said, cells[:40])
    text, html = render_email("emails/shipment", context)
    assert "under return RMA-0001 (warranty claim WC-0001) are repaired" in text
    assert "1 × " in text and sn in text and "covered by the warranty, at no charge" in text
    assert "The rest of your order" not in text and sn in html


def test_an_ordinary_return_credits_what_stays_and_ships_the_unit_repaired_back(won_deal, staff):
    first, second = shipped_serials(won_deal, LATHE)[:2]
    number = _ask(won_deal, f"{LATHE}:2:{first}/{second}")
    steps = drive_case(number, {
        "return_authorize": AUTHORIZE,
        "return_receive": {**RECEIVE, "lines": [{"sku": LATHE, "quantity": 2, "serials": [first, second]}]},
        "return_inspect": {"by": "qa", "notes": "One as new, one with a bent spindle.", "lines": [
            {"sku": LATHE, "serial": first, "quantity": 1, "outcome": "restock"},
            {"sku": LATHE, "serial": second, "quantity": 1, "outcome": "repair"}]},
        "return_credit": CREDIT})
    assert [s["key"] for s in steps][-1] == "rma-0001-credit" and steps[-1]["accepted"], steps
    with session_scope() as s:
        ret = return_by_number(s, number)
        note = ret.credit_note
        line = ret.lines[0].order_line
        one = line.net_for(1) + line.tax_for(1)
        # the credit counts the restocked lathe only: the repaired one goes back to the customer
        assert note.lines[0]["quantity"] == 1 and note.lines[0]["serials"] == [first]
        assert note.restocking_fee == (one * Decimal("0.10")).quantize(Decimal("0.01"))
        assert note.amount == one - note.restocking_fee
        assert ret.status == "inspected" and ret.to_ship_back == 1  # credited, not closed: one unit to go back
    assert cases.next_step(number)["key"] == "rma-0001-ship-back"
    steps = drive_case(number, {"return_ship_back": SHIP_BACK})
    assert [s["key"] for s in steps] == ["rma-0001-ship-back", "close-rma-0001"] and steps[0]["accepted"], steps
    assert cases.case_summary(number)["status"] == "closed"
    assert unit(first)["status"] == "in_stock" and unit(second)["status"] == "shipped"
    assert unit(second)["customer_id"] is not None
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CreditNote)) == 1
        ret = return_by_number(s, number)
        assert [(ln.restock_qty, ln.repair_qty, ln.shipped_back_qty) for ln in ret.lines] == [(1, 1, 1)]
        # the repaired lathe is with its customer again: it may come back again, the restocked one not
        assert returnable(s, ret.lines[0].order_line) == 3 - 1
    assert _ask(won_deal, f"{LATHE}:1:{second}") == "RMA-0002"


def test_a_return_all_sent_to_repair_has_no_credit_note_and_closes_once_shipped_back(won_deal, staff):
    number = _ask(won_deal, f"{KIT}:1")
    steps = drive_case(number, {"return_authorize": AUTHORIZE, "return_receive": received((KIT, 1)),
                                "return_inspect": inspected((KIT, 1, "repair")), "return_credit": CREDIT,
                                "return_ship_back": SHIP_BACK})
    assert [s["key"] for s in steps] == ["rma-0001-authorize", "rma-0001-receive", "rma-0001-inspect",
                                         "rma-0001-ship-back", "close-rma-0001"], steps
    assert all(s.get("accepted", True) for s in steps), steps
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CreditNote)) == 0
        ctx = s.scalars(select(Document).where(Document.number == "RMA-0001-BACK")).one().context
    assert [(ln["sku"], ln["quantity"], ln["serials"]) for ln in ctx["lines"]] == [(KIT, 1, [])]
    assert ctx["claim"] == ""
    text, _ = render_email("emails/shipment", ctx)
    assert "at no charge" not in text and "Their warranty runs as before" in text


def test_running_the_step_again_writes_nothing_twice(won_deal, staff):
    sn = shipped_serials(won_deal, LATHE)[1]
    repaired_under_claim(sn)
    steps = drive_case("WC-0001", {"return_ship_back": SHIP_BACK}, repeat=2)
    assert [s["key"] for s in steps] == ["rma-0001-ship-back", "close-rma-0001"], steps
    first = counted("RMA-0001")
    deals.deliver_mail(won_deal)
    # the step's rule run again (a re-run after a crash), even with other words: nothing changes
    with session_scope() as s:
        person = s.scalars(select(StaffUser).where(StaffUser.handle == "delivery")).one()
        ship_back(s, return_by_number(s, "RMA-0001"), person, "UPS", "1Z999", utcnow().date(), "again")
        s.commit()
    assert counted("RMA-0001") == first
    assert (first["events"], first["documents"], first["emails"], first["audit"]) == (1, 1, 1, 1)
    assert [e for e, _ in unit(sn)["events"]].count("shipped_back") == 1
    assert cases.run_automatic("close_return", "WC-0001", "close-rma-0001") == "close-rma-0001: already done"


def test_the_claim_is_not_closed_while_its_unit_is_still_in_repair(won_deal, staff):
    from models.errors import DomainError
    from models.warranty import claim_by_number, close_claim

    sn = shipped_serials(won_deal, LATHE)[2]
    repaired_under_claim(sn)
    with session_scope() as s:
        person = s.scalars(select(StaffUser).where(StaffUser.handle == "mark")).one()
        with pytest.raises(DomainError, match="^note: return RMA-0001 has 1 repaired unit"):
            close_claim(s, claim_by_number(s, "WC-0001"), person, "Done.")
        from models.return_steps import close

        with pytest.raises(DomainError, match="1 repaired unit.* to ship back"):
            close(s, return_by_number(s, "RMA-0001"))


TOMORROW = utcnow().date() + timedelta(days=1)
BAD = {
    "carrier": st.one_of(st.sampled_from(["", "   ", "DHL\nFreight", "x" * 81]),
                         st.text(min_size=1, max_size=20).map(lambda t: f"DHL{t}\x07")),
    "tracking_number": st.one_of(st.sampled_from(["", "\t", "a\r\nb", "9" * 81]),
                                 st.text(min_size=81, max_size=90).filter(lambda t: len(t.strip()) > 80)),
    "shipped_on": st.one_of(st.sampled_from(["tomorrow", "2026-13-01", "31/12/2026", "yesterday"]),
                            st.dates(min_value=TOMORROW, max_value=date(2100, 1, 1)).map(str),
                            st.dates(max_value=utcnow().date() - timedelta(days=1)).map(str)),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_shipping_details_are_one_line_naming_the_field_and_nothing_is_written(won_deal, staff, data):
    number = "RMA-0001"
    with session_scope() as s:
        first_example = s.scalar(select(func.count()).select_from(ReturnOrder)) == 0
    if first_example:  # a kit sent to repair (the database stays between hypothesis's examples)
        drive_case(_ask(won_deal, f"{KIT}:1"), {"return_authorize": AUTHORIZE, "return_receive": received((KIT, 1)),
                                                "return_inspect": inspected((KIT, 1, "repair"))})
    field = data.draw(st.sampled_from(list(BAD)))
    answer = {**SHIP_BACK, field: data.draw(BAD[field])}
    key = cases.next_step(number)["key"]
    assert key.startswith("rma-0001-ship-back")
    deals.open_wait(won_deal, "return_ship_back", key, None)
    before = _fingerprint()
    result = deals.record_answer(won_deal, key, TEAM.signed(won_deal, key, answer))
    assert result["accepted"] is False, (answer, result)
    reason = result["reason"]
    assert len(reason.splitlines()) == 1 and reason.startswith(f"{field}:"), (answer, reason)
    changed = {t for t, h in _fingerprint().items() if before[t] != h}
    assert changed <= {"waits"}, changed  # the refused answer is recorded, nothing else
    got = counted(number)
    assert (got["events"], got["documents"], got["emails"], got["shipped_back"], got["on"]) == (0, 0, 0, [0], None)


# --- PostgreSQL: two deliveries shipping one return back at the same moment --------------------------

def _ship_back_at_once(number: str, hold_first_open: bool) -> tuple[dict[str, str], list[bool]]:
    started, seen_waiting, outcomes = threading.Event(), [], {}
    barrier = threading.Barrier(2)

    def ship(name: str, first: bool) -> None:
        try:
            with session_scope() as s:
                person = s.scalars(select(StaffUser).where(StaffUser.handle == "delivery")).one()
                ret = return_by_number(s, number)
                assert ret.to_ship_back == 1
                if not hold_first_open:
                    barrier.wait()
                ship_back(s, ret, person, f"Carrier {name}", f"TRK-{name}", None, "")
                if hold_first_open and first:
                    started.set()
                    seen_waiting.append(a_backend_waits_for_a_lock())
                s.commit()
                outcomes[name] = "ok"
        except BaseException as exc:  # noqa: BLE001 (shown by the test)
            outcomes[name] = f"unexpected {type(exc).__name__}: {exc}"

    a = threading.Thread(target=ship, args=("a", True))
    a.start()
    if hold_first_open:
        assert started.wait(30)
    b = threading.Thread(target=ship, args=("b", False))
    b.start()
    a.join(60)
    b.join(60)
    return outcomes, seen_waiting


@on_postgres
@pytest.mark.parametrize("hold_first_open", [False, True], ids=["released-at-once", "first-held-open"])
def test_two_deliveries_shipping_one_return_back_at_once_ship_it_once(won_deal, staff, hold_first_open):
    sn = shipped_serials(won_deal, LATHE)[0]
    repaired_under_claim(sn)
    outcomes, seen_waiting = _ship_back_at_once("RMA-0001", hold_first_open)
    assert outcomes == {"a": "ok", "b": "ok"}, outcomes
    if hold_first_open:
        assert seen_waiting == [True], "the second never waited for the first's lock on the return"
    got = counted("RMA-0001")
    assert (got["events"], got["documents"], got["emails"], got["audit"], got["shipped_back"]) == (1, 1, 1, 1, [1])
    assert got["carrier"] == ("Carrier a" if hold_first_open else got["carrier"])
    assert unit(sn)["status"] == "shipped"


def test_the_migrations_make_the_schema_the_models_declare(db):
    """After every migration (0020: what went back), the database is what the models say: no
    column, constraint or index one has and the other lacks (SQLite, or PostgreSQL)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    import models.reminders  # noqa: F401 - every table in the metadata
    import models.waits  # noqa: F401
    from models import Base
    from services.db import alembic_config, engine_for

    with engine_for(db).connect() as conn:
        head = ScriptDirectory.from_config(alembic_config(db)).get_current_head()
        assert MigrationContext.configure(conn).get_current_revision() == head
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        # CHECK constraints are not compared by alembic: the database's own, by name
        checks = {c["name"] for c in inspect(conn).get_check_constraints("return_lines")}
    assert diff == []
    declared = {str(c.name) for c in Base.metadata.tables["return_lines"].constraints
                if getattr(c, "sqltext", None) is not None}
    assert checks == declared and "ck_return_lines_shipped_back_in_range" in checks
