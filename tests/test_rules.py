"""Domain rules, without a database."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from models import (
    Estimate,
    EstimateLine,
    EstimateRevision,
    FollowUp,
    InvalidTransition,
    Lead,
    Opportunity,
    PermissionDenied,
    StaffUser,
    ValidationError,
    utcnow,
)
from models.deal import Deal
from models.money import parse_money, round_money
from models.pricing import Totals


def line(qty, price, disc="0", tax="18"):
    return EstimateLine(line_no=1, sku="X", description="x", quantity=qty, unit_price=Decimal(price),
                        discount_pct=Decimal(disc), tax_rate=Decimal(tax), product_id=1)


def test_rounds_half_up_to_the_cent():
    assert round_money(Decimal("2.345")) == Decimal("2.35")
    assert round_money(Decimal("2.344")) == Decimal("2.34")
    assert round_money(Decimal("1.5"), "JPY") == Decimal("2")


def test_line_discount_and_tax_are_rounded_per_line_then_summed():
    # 3 × 33.33 = 99.99; 7.5 % discount = 7.49925 -> 7.50; net 92.49; 18 % tax = 16.6482 -> 16.65
    ln = line(3, "33.33", disc="7.5")
    assert (ln.gross, ln.discount, ln.net, ln.tax, ln.line_total) == (
        Decimal("99.99"), Decimal("7.50"), Decimal("92.49"), Decimal("16.65"), Decimal("109.14"))
    totals = Totals([ln, line(1, "0.10", tax="12")])
    assert totals.net == Decimal("92.59")
    assert totals.tax == Decimal("16.66")  # 16.65 + 0.012 -> 0.01
    assert totals.total == Decimal("109.25")


def test_parse_money_rejects_garbage_with_the_field_name():
    assert parse_money("12.50", "amount") == Decimal("12.50")
    with pytest.raises(ValidationError, match="amount: must be a number"):
        parse_money("twelve", "amount")
    with pytest.raises(ValidationError, match="amount: must be a finite number"):
        parse_money("NaN", "amount")


def test_a_lead_is_qualified_once():
    lead = Lead(company="A", contact_name="B", email="b@a.example", status="new", source="web")
    lead.qualify("fits", Decimal("1000"), "Q1")
    assert lead.status == "qualified"
    with pytest.raises(InvalidTransition, match="lead .* is qualified: cannot qualify"):
        lead.qualify("again", None, "")


def test_a_lead_needs_a_real_email_address():
    lead = Lead(company="A", contact_name="B", email="b@a.example\r\nBcc: x@evil.test", source="web")
    with pytest.raises(ValidationError, match="^email: must be one e-mail address"):
        lead.validate()


def test_moving_a_stage_records_history_and_default_probability():
    rep = StaffUser(handle="sofia", name="Sofia", email="s@x", roles="sales_rep", active=True)
    opp = Opportunity(name="o", stage="qualification", probability=20)
    opp.move_to("proposal", rep)
    assert (opp.stage, opp.probability) == ("proposal", 60)
    assert [(c.from_stage, c.to_stage) for c in opp.history] == [("qualification", "proposal")]
    with pytest.raises(ValidationError, match="^stage: must be one of"):
        opp.move_to("dreaming", rep)
    opp.move_to("closed_lost", rep)
    with pytest.raises(InvalidTransition, match="closed_lost: cannot move to proposal"):
        opp.move_to("proposal", rep)


def test_a_follow_up_is_done_once_with_an_outcome():
    f = FollowUp(kind="call", due_at=utcnow() - timedelta(hours=1))
    assert f.is_overdue(utcnow())
    with pytest.raises(ValidationError, match="^outcome:"):
        f.complete("  ")
    f.complete("called; sends drawings")
    assert not f.is_overdue(utcnow())
    with pytest.raises(InvalidTransition):
        f.complete("again")


def test_only_the_steps_role_or_a_manager_may_answer():
    qa = StaffUser(handle="qa", name="Q", email="q@x", roles="qa", active=True)
    boss = StaffUser(handle="boss", name="B", email="b@x", roles="manager", active=True)
    rep = StaffUser(handle="sofia", name="S", email="s@x", roles="sales_rep", active=True)
    qa.require_role("qa", "qa")
    boss.require_role("qa", "qa")
    with pytest.raises(PermissionDenied, match="by: sofia \\(sales_rep\\) may not answer 'qa'; it needs the role qa"):
        rep.require_role("qa", "qa")


def _revision(status="sent", valid_until=None):
    deal = Deal(number="DEAL-0001", currency="USD")
    est = Estimate(deal=deal, number="EST-0001")
    rev = EstimateRevision(revision=1, status=status, valid_until=valid_until or date.today() + timedelta(days=5))
    est.revisions.append(rev)
    return rev


def test_a_sent_revision_can_be_decided_once():
    rev = _revision()
    cr = rev.request_changes("mark", "email", "third lathe")
    assert (rev.status, cr.text, rev.number) == ("changes_requested", "third lathe", "EST-0001-R1")
    with pytest.raises(InvalidTransition, match="EST-0001-R1 is changes_requested: cannot approve it"):
        rev.approve("mark", "email")


def test_an_expired_estimate_cannot_be_approved():
    rev = _revision(valid_until=date.today() - timedelta(days=1))
    with pytest.raises(ValidationError, match="^decision: estimate EST-0001-R1 expired"):
        rev.approve("mark", "phone")
    assert rev.status == "sent"


def test_a_decision_must_say_how_it_came():
    with pytest.raises(ValidationError, match="^channel: must be one of"):
        _revision().decline("mark", "pigeon", "too dear")


def test_a_change_request_must_say_what_to_change():
    with pytest.raises(ValidationError, match="^changes: must say"):
        _revision().request_changes("mark", "email", "")
