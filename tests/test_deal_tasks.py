"""The stage tasks against a real database (SQLite, or PostgreSQL in CI): the whole sale,
re-runs that repeat nothing, and stock that never goes below zero."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlalchemy import select

from dealflow.scenario import play_direct
from models import Deal, Document, Email, OutOfStock, Product, StockLevel, StockMove, catalog
from models.deal import deal_by_number
from services.db import session_scope
from services.views import deal_summary
from tasks.deal_steps import AUTOMATIC, deliver_mail, plan_next_step

from .helpers import counts, record_answer


def _summary(number: str) -> dict:
    with session_scope() as s:
        return deal_summary(s, deal_by_number(s, number))


def _stock() -> dict[str, int]:
    with session_scope() as s:
        return {p.sku: lvl.on_hand for p, lvl in s.execute(select(Product, StockLevel).join(StockLevel))}


def test_the_glocial_sale_runs_from_lead_to_cash(new_deal, data_dir):
    before = _stock()
    trail = play_direct(new_deal)

    summary = _summary(new_deal)
    assert summary["status"] == "won"
    assert [(r["number"], r["status"], r["total"]) for r in summary["estimate_revisions"]] == [
        ("EST-0001-R1", "changes_requested", "118885.00"),  # hand-computed: see test_documents
        ("EST-0001-R2", "approved", "174183.68"),
    ]
    assert summary["order"]["number"] == "SO-0001"
    assert [a["passed"] for a in summary["order"]["qa_attempts"]] == [False, True]
    assert summary["receipt"] == {"number": "RCPT-0001", "amount": "174183.68"}
    assert [s["number"] for s in summary["shipments"]] == ["SHP-0001", "SHP-0002"]
    # the customer's 30 % deposit, invoiced when the order was made and paid before shipping
    assert (summary["deposit"]["invoice"], summary["deposit"]["total"], summary["deposit"]["status"]) == (
        "DEP-0001", "52255.10", "paid")
    assert [(p["number"], p["amount"]) for p in summary["deposit"]["payments"]] == [("PAY-0001", "52255.10")]
    # the final invoice: the order less the deposit
    assert summary["invoice"]["total"] == "121928.58" and summary["invoice"]["due"] == "0.00"
    assert [(p["number"], p["amount"]) for p in summary["payments"]] == [
        ("PAY-0002", "48771.43"), ("PAY-0003", "73157.15")]

    after = _stock()
    shipped = {"CNC-LATHE-2000": 3, "TOOL-KIT-PRO": 3, "CHUCK-3J-250": 3, "COOLANT-20L": 10}
    assert {sku: before[sku] - after[sku] for sku in before if before[sku] != after[sku]} == shipped
    with session_scope() as s:
        moves = s.scalars(select(StockMove).where(StockMove.reason == "shipment")).all()
        assert sorted((m.reference, m.quantity) for m in moves)[0] == ("SHP-0001", -10)
        assert -sum(m.quantity for m in moves) == sum(shipped.values())

    kinds = [m["kind"] for m in summary["emails"]]
    assert kinds == ["estimate", "estimate", "order", "deposit_invoice", "receipt", "finance_notice", "payment",
                     "shipment", "shipment", "invoice", "payment", "payment"]
    assert all(m["status"] == "sent" for m in summary["emails"])
    assert len(list((data_dir / "mail").glob("*.eml"))) == 12
    assert sorted(p.name for p in (data_dir / "documents").iterdir()) == sorted(
        [d["file"] for d in summary["documents"]] + [d["pdf"] for d in summary["documents"]])
    assert trail[-1] == {"key": "close-DEAL-0001", "outcome": "DEAL-0001 won"}


def test_running_every_stage_again_repeats_nothing(new_deal, data_dir):
    play_direct(new_deal)
    before = counts()
    files = sorted(p.name for p in (data_dir / "mail").iterdir())
    for step_task in AUTOMATIC.values():
        step_task.fn(new_deal)  # as after a crash or a re-run from the top
    assert deliver_mail.fn(new_deal) == []
    again = record_answer.fn(new_deal, "payment-1", {"by": "finance", "amount": "1.00"})
    assert again == {"accepted": True, "outcome": "already recorded", "reason": ""}
    assert plan_next_step(new_deal)["kind"] == "done"
    assert counts() == before
    assert sorted(p.name for p in (data_dir / "mail").iterdir()) == files


def test_each_automatic_step_run_twice_as_it_happens_writes_once(new_deal):
    trail = play_direct(new_deal, repeat=2)
    assert trail[-1]["outcome"] == "DEAL-0001 won"
    c = counts()
    assert (c["estimate_revisions"], c["sales_orders"], c["sales_receipts"], c["invoices"], c["emails"],
            c["documents"]) == (2, 1, 1, 2, 12, 11)  # invoices: the deposit's and the final one
    assert c["seq:order"] == 1 and c["seq:receipt"] == 1 and c["seq:invoice"] == 1 and c["seq:deposit"] == 1


def test_a_continued_deal_picks_up_where_the_database_says(new_deal):
    play_direct(new_deal, until="shipment-1")
    assert plan_next_step(new_deal)["key"] == "shipment-1"
    play_direct(new_deal)  # a fresh driver, like a flow started again from its top
    c = counts()
    assert (c["estimate_revisions"], c["shipments"], c["payments"], c["emails"]) == (2, 2, 3, 12)


def test_two_shipments_racing_for_the_last_machine_never_take_stock_below_zero(db):
    with session_scope() as s:
        product = s.scalars(select(Product).where(Product.sku == "VMC-850")).one()
        level = s.get(StockLevel, product.id)
        level.on_hand = 1
        s.commit()
        product_id = product.id
    barrier = threading.Barrier(2)
    results: list[str] = []

    def ship(i: int) -> None:
        with session_scope() as s:
            barrier.wait()
            try:
                catalog.issue(s, s.get(Product, product_id), 1, reason="shipment", source_key=f"race-{i}")
                s.commit()
                results.append("shipped")
            except OutOfStock as exc:
                results.append(str(exc))

    threads = [threading.Thread(target=ship, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["quantity: VMC-850: 1 requested but only 0 in stock", "shipped"]
    with session_scope() as s:
        assert s.get(StockLevel, product_id).on_hand == 0


def test_an_email_handed_to_the_mail_server_by_a_sender_that_died_is_not_sent_again(new_deal, data_dir):
    play_direct(new_deal, until="decision-rev-1")
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        mail = s.scalars(select(Email).where(Email.deal_id == deal.id)).one()
        assert mail.status == "sent" and mail.message_id
        # as if the sender died after the DATA step began (SMTP may have accepted it)
        mail.status, mail.claimed_by, mail.handed_at = "sending", "gone-host:1:1", mail.sent_at
        s.commit()
    (data_dir / "mail" / f"{mail.id:05d}-estimate.eml").unlink()
    assert deliver_mail.fn(new_deal) == []
    assert not (data_dir / "mail" / f"{mail.id:05d}-estimate.eml").exists()


def test_documents_and_emails_belong_to_their_deal(new_deal):
    play_direct(new_deal)
    with session_scope() as s:
        deal_id = s.scalars(select(Deal.id).where(Deal.number == new_deal)).one()
        assert {d.deal_id for d in s.scalars(select(Document))} == {deal_id}
        assert s.scalars(select(Document.number).where(Document.kind == "estimate").order_by(Document.id)).all() == [
            "EST-0001-R1", "EST-0001-R2"]


@pytest.mark.parametrize("amount", ["0", "-5", "0.001"])
def test_a_payment_must_be_a_positive_amount_in_cents(new_deal, amount):
    play_direct(new_deal, until="payment-1")
    before = counts()
    result = record_answer.fn(new_deal, "payment-1", {"by": "finance", "amount": amount})
    assert result["accepted"] is False and result["reason"].startswith("amount: must")
    assert counts() == before
    assert Decimal(_summary(new_deal)["invoice"]["due"]) == Decimal("121928.58")  # the order less its deposit


def test_a_deal_with_nothing_to_pay_closes_without_a_payment(new_deal):
    from dealflow.scenario import SCRIPT, Move

    free = [Move("estimate", "mark", {"lines": [{"sku": "COOLANT-20L", "quantity": 1, "discount_pct": "100"}]},
                 "a free can of coolant"),
            Move("discount", "manager", {"decision": "approve"}, "100 % is over Mark's limit: the manager approves")]
    script = [m for m in SCRIPT[:2]] + free + [m for m in SCRIPT if m.step == "decision"][1:2]
    script += [Move("shipment", "delivery", {"carrier": "Post", "tracking_number": "P1"}, "ship it")]
    play_direct(new_deal, script=script)
    summary = _summary(new_deal)
    assert summary["status"] == "won"
    assert summary["invoice"]["total"] == "0.00" and summary["invoice"]["status"] == "paid"
    assert summary["payments"] == []


def test_each_wait_says_whose_turn_it_is_the_engineer_once_the_deal_is_handed_over(new_deal):
    from models import process

    def turn(key: str) -> tuple:
        play_direct(new_deal, until=key)
        with session_scope() as s:
            deal = deal_by_number(s, new_deal)
            step = process.next_step(s, deal)
            assert step.key == key
            return process.whose_turn(deal, step)

    assert turn("qualify") == ("sales_rep", "sofia")
    assert turn("handoff") == ("sales_rep", "sofia")
    assert turn("estimate-rev-1") == ("sales_engineer", "mark")  # not the owner any more
    assert turn("decision-rev-1") == ("customer", "mark")  # the engineer follows the customer up
    assert turn("qa-attempt-1") == ("qa", None)  # a team's queue
    assert turn("shipment-1") == ("delivery", None)
    assert turn("payment-1") == ("finance", None)
    play_direct(new_deal)
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert process.whose_turn(deal, process.next_step(s, deal)) == (None, None)  # won: nobody's
