"""Two returns of one order line asked for at the same moment, together for more than shipped:
one is taken, the other refused with one line, and what returns hold never exceeds what shipped
(PostgreSQL: SQLite writes one at a time). And a return's real Prefect run, paused in this
process, answered at its four waits as the UI's Resume does: it closes, named for the return and
its deal, with the stock back once, one credit note and one RMA email (DEALFLOW_E2E=1)."""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import func, select

from application import cases
from dealflow.scenario import TEAM
from models import Email
from models.catalog import StockLevel, StockMove
from models.credit_notes import CreditNote
from models.deal import deal_by_number
from models.errors import ValidationError
from models.products import product_by_sku
from models.returns import ReturnLine, ReturnOrder, parse_lines, start_return
from models.states import ReturnStatus
from services.db import session_scope

from .helpers import a_backend_waits_for_a_lock

LATHE = "CNC-LATHE-2000"
REASON = "Two lathes arrived with cracked guards."

on_postgres = pytest.mark.skipif(not os.environ.get("DEALFLOW_TEST_DATABASE_URL"),
                                 reason="the race needs PostgreSQL's row locks (SQLite writes one at a time)")
end_to_end = pytest.mark.skipif(not os.environ.get("DEALFLOW_E2E"), reason="set DEALFLOW_E2E=1 (CI does)")


def shipped(deal: str, sku: str = LATHE) -> int:
    with session_scope() as s:
        return deal_by_number(s, deal).order.line_for_sku(sku, "sku").shipped_qty


def held_by_returns(deal: str, sku: str = LATHE) -> int:
    """What the deal's returns that were not refused hold of ``sku``'s order line."""
    with session_scope() as s:
        line = deal_by_number(s, deal).order.line_for_sku(sku, "sku")
        return int(s.scalar(select(func.coalesce(func.sum(ReturnLine.quantity), 0)).join(ReturnOrder)
                            .where(ReturnLine.order_line_id == line.id,
                                   ReturnOrder.status != ReturnStatus.REFUSED)) or 0)


def _at_the_same_moment(deal: str, asks: list[tuple[str, int]]) -> dict[str, str]:
    """Each (person, quantity) asks for a return of that many lathes, all released at once by a
    barrier (each signed beforehand, by their own session: only the order's row is shared).
    Returns person -> the return's number, or the refusal's line."""
    signed = {}
    for by, qty in asks:
        lines = f"{LATHE}:{qty}"
        signed[by] = (lines, TEAM.login(by).prove(deal, "return", cases.return_payload(by, lines, REASON)))
    barrier = threading.Barrier(len(asks))
    outcomes: dict[str, str] = {}

    def ask(by: str) -> None:
        lines, proof = signed[by]
        barrier.wait()
        try:
            outcomes[by] = cases.ask_for_return(deal, lines, REASON, by, proof)["number"]
        except ValidationError as exc:
            outcomes[by] = str(exc)
        except BaseException as exc:  # noqa: BLE001 (shown by the test)
            outcomes[by] = f"unexpected {type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=ask, args=(by,)) for by, _ in asks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == len(asks), outcomes
    return outcomes


@on_postgres
def test_two_returns_of_one_line_at_the_same_moment_cannot_both_take_more_than_shipped(won_deal):
    assert shipped(won_deal) == 3
    outcomes = _at_the_same_moment(won_deal, [("manager", 2), ("delivery", 2)])
    taken = sorted(v for v in outcomes.values() if v.startswith("RMA-"))
    refused = [v for v in outcomes.values() if not v.startswith("RMA-")]
    assert taken == ["RMA-0001"], outcomes
    assert refused == [f"lines[1].quantity: at most 1 of {LATHE} can come back on {won_deal}: "
                       f"3 shipped, 2 on earlier returns"], outcomes
    assert held_by_returns(won_deal) == 2

    # the one lathe left, asked for twice at once: one takes it, nothing is left for the other
    outcomes = _at_the_same_moment(won_deal, [("manager", 1), ("delivery", 1)])
    assert sorted(v for v in outcomes.values() if v.startswith("RMA-")) == ["RMA-0002"], outcomes
    assert [v for v in outcomes.values() if not v.startswith("RMA-")] == [
        f"lines[1].quantity: at most 0 of {LATHE} can come back on {won_deal}: 3 shipped, 3 on earlier returns"]
    assert held_by_returns(won_deal) == 3 == shipped(won_deal)
    with session_scope() as s:  # the refused requests wrote nothing, not even a number
        assert [r.number for r in s.scalars(select(ReturnOrder).order_by(ReturnOrder.id))] == ["RMA-0001", "RMA-0002"]


@on_postgres
def test_the_second_return_waits_for_the_first_and_counts_what_it_holds(won_deal):
    """The same race, its moment forced: the first return holds its transaction open until the
    second is seen waiting for the order's row; without that lock the second would count only
    what was committed and take the same lathes again."""
    first_asked = threading.Event()
    seen_waiting: list[bool] = []
    outcomes: dict[str, str] = {}

    def ask(name: str, hold_open: bool) -> None:
        try:
            with session_scope() as s:
                ret = start_return(s, deal_by_number(s, won_deal), parse_lines(f"{LATHE}:2"), REASON, name)
                if hold_open:
                    first_asked.set()
                    seen_waiting.append(a_backend_waits_for_a_lock())
                s.commit()
                outcomes[name] = ret.number
        except ValidationError as exc:
            outcomes[name] = str(exc)
        except BaseException as exc:  # noqa: BLE001 (shown by the test)
            outcomes[name] = f"unexpected {type(exc).__name__}: {exc}"

    a = threading.Thread(target=ask, args=("manager", True))
    a.start()
    assert first_asked.wait(30)
    b = threading.Thread(target=ask, args=("delivery", False))
    b.start()
    a.join(60)
    b.join(60)
    assert seen_waiting == [True], "the second return never waited for the first"
    assert outcomes == {"manager": "RMA-0001",
                        "delivery": f"lines[1].quantity: at most 1 of {LATHE} can come back on {won_deal}: "
                                    f"3 shipped, 2 on earlier returns"}, outcomes
    assert held_by_returns(won_deal) == 2


# --- a return's real Prefect run, answered as the UI's Resume does ---------------------------------

def on_hand(sku: str) -> int:
    with session_scope() as s:
        return s.get(StockLevel, product_by_sku(s, sku).id).on_hand


@end_to_end
@pytest.mark.flow
@pytest.mark.e2e  # so CI's PostgreSQL pass (-m 'not flow or e2e or ui') runs it
def test_a_return_run_answered_as_the_ui_does_closes_with_the_stock_back_once_and_one_credit_note(
        prefect_api, won_deal):
    from prefect import get_client

    from flows.cases import run_case_here

    from .helpers import in_background, resume_as_the_ui, wait_row
    from .test_returns import shipped_serials

    started = time.monotonic()
    sn = shipped_serials(won_deal, LATHE)[0]
    proof = TEAM.login("manager").prove(won_deal, "return", cases.return_payload("manager", f"{LATHE}:1:{sn}", REASON))
    number = cases.ask_for_return(won_deal, f"{LATHE}:1:{sn}", REASON, "manager", proof)["number"]
    assert number == "RMA-0001"
    before = on_hand(LATHE)

    ended: dict = {}
    thread, errors = in_background([lambda: ended.update(run_case_here("return", number, won_deal))])
    answers = [
        ("rma-0001-authorize", {"by": "manager", "decision": "authorize", "restocking_fee_pct": 10, "note": ""}),
        ("rma-0001-receive", {"by": "delivery", "note": "Crate intact.",
                              "lines": [{"sku": LATHE, "quantity": 1, "serials": [sn]}]}),
        ("rma-0001-inspect", {"by": "qa", "notes": "Guard replaced; as new.",
                              "lines": [{"sku": LATHE, "serial": sn, "quantity": 1, "outcome": "restock"}]}),
        ("rma-0001-credit", {"by": "finance", "settle": "refund", "method": "bank_transfer"}),
    ]
    for key, answer in answers:
        resume_as_the_ui(won_deal, key, TEAM.signed(won_deal, key, answer))
    said = [(key, wait_row(won_deal, key)) for key, _ in answers]
    thread.join(60)
    assert not thread.is_alive() and not errors, errors
    assert [(key, s["status"]) for key, s in said] == [(key, "answered") for key, _ in answers], said
    assert ended == {"case": number, "deal": won_deal, "status": "closed"}, ended
    assert len({s["flow_run_id"] for _, s in said}) == 1  # one run for the whole return

    run_id = cases.case_summary(number)["flow_run_id"]
    assert run_id == said[0][1]["flow_run_id"]
    from uuid import UUID

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    assert run.name == f"{number}-{won_deal}" == "RMA-0001-DEAL-0001"
    assert run.state.is_completed(), run.state

    assert on_hand(LATHE) == before + 1
    with session_scope() as s:
        ret = s.scalars(select(ReturnOrder).where(ReturnOrder.number == number)).one()
        assert ret.status == "closed"
        moves = s.scalars(select(StockMove).where(StockMove.reason == "return")).all()
        assert [(m.quantity, m.reference) for m in moves] == [(1, number)]
        notes = s.scalars(select(CreditNote).where(CreditNote.return_id == ret.id)).all()
        assert [(n.number, n.settlement) for n in notes] == [("CN-0001", "refund")]
        rma = s.scalars(select(Email).where(Email.deal_id == ret.deal_id, Email.kind == "rma")).all()
        assert len(rma) == 1 and rma[0].status == "sent", [(m.kind, m.status) for m in rma]
        credit = s.scalars(select(Email).where(Email.deal_id == ret.deal_id, Email.kind == "credit_note")).all()
        assert len(credit) == 1
    assert time.monotonic() - started < 60
