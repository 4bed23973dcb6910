"""The credit on a customer's account (a cancelled order's deposit kept as credit) is spent once:
two payments "credit on account" on two deals of the customer at the same moment (each locks
only its own deal) cannot both take the same credit (PostgreSQL: SQLite writes one at a time)."""

from __future__ import annotations

import os
import threading
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from dealflow.scenario import LEAD, play_direct, start_scenario_deal
from models import StaffUser
from models.cancellation import cancel_deal
from models.credit_notes import credit_balance
from models.customers import edit_customer, find_customer
from models.deal import deal_by_number
from models.errors import ValidationError
from models.waits.payment import record
from services.db import session_scope

from .helpers import a_backend_waits_for_a_lock

pytestmark = pytest.mark.skipif(not os.environ.get("DEALFLOW_TEST_DATABASE_URL"),
                                reason="the race needs PostgreSQL's row locks (SQLite writes one at a time)")


def test_two_payments_from_the_customers_credit_at_the_same_moment_do_not_spend_it_twice(new_deal):
    play_direct(new_deal, until="shipment-1")  # the deposit, 52255.10, paid in full
    with session_scope() as s:
        manager = s.scalars(select(StaffUser).where(StaffUser.handle == "manager")).one()
        cancel_deal(s, deal_by_number(s, new_deal), manager, "Plant postponed", "credit")
        edit_customer(s, find_customer(s, LEAD["email"]), {"deposit": "50", "credit_limit": "none"})
        s.commit()
    others = [start_scenario_deal(), start_scenario_deal(restock=5, restock_key="credit-race")]
    for deal in others:
        play_direct(deal, until="deposit-1")  # each owes a 50 % deposit, more than the credit
    first_paid, outcomes = threading.Event(), {}

    def pay(number: str, hold_open: bool) -> None:
        try:
            with session_scope() as s:
                deal = deal_by_number(s, number)
                s.execute(text("select id from deals where id = :id for update"), {"id": deal.id})  # as every door
                finance = s.scalars(select(StaffUser).where(StaffUser.handle == "finance")).one()
                record(s, deal, deal.deposit_invoice, finance,
                       {"amount": "30000.00", "method": "account_credit", "reference": "CN-0001"})
                if hold_open:
                    first_paid.set()
                    outcomes["second waited"] = a_backend_waits_for_a_lock()
                s.commit()
                outcomes[number] = "paid"
        except ValidationError as exc:
            outcomes[number] = str(exc)

    a = threading.Thread(target=pay, args=(others[0], True))
    a.start()
    assert first_paid.wait(60)
    b = threading.Thread(target=pay, args=(others[1], False))
    b.start()
    a.join(60)
    b.join(60)
    assert outcomes[others[0]] == "paid", outcomes
    assert outcomes[others[1]] == ("amount: is more than the credit on Riverside Metalworks Ltd's account "
                                   "(22255.10 USD)"), outcomes
    with session_scope() as s:
        customer = find_customer(s, LEAD["email"])
        assert credit_balance(s, customer, "USD") == Decimal("22255.10")
