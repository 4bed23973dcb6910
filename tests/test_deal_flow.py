"""The deal flow against a real Prefect API (a temporary server, started once per session):
waits are real pauses, answers are real resumes through the API."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from click.testing import CliRunner

from dealflow.cli import main
from dealflow.scenario import SCRIPT, answer_for, play_direct
from models.deal import deal_by_number
from models.markdown import plain
from services.db import session_scope
from services.orchestration.forms import stored_schema as _stored_form

from .helpers import answers, audit_actions, counts, in_background, resume_as_the_ui, wait_for_run, wait_row

pytestmark = pytest.mark.flow


def _answer(deal: str, key: str, payload: dict) -> Callable[[], None]:
    def act() -> None:
        wait_for_run(deal, key)
        answers.answer(deal, key, payload)
        answers.wait_closed(deal, key)
    return act


def test_the_demo_plays_the_whole_sale_through_prefect(prefect_api, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "placeholder")  # the demo sets its own; restored after
    monkeypatch.setenv("DEALFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DEALFLOW_PUBLIC_URL", raising=False)
    result = CliRunner().invoke(main, ["demo", "--json", "--data-dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "won"
    assert [r["number"] for r in summary["estimate_revisions"]] == ["EST-0001-R1", "EST-0001-R2"]
    assert summary["order"]["number"] == "SO-0001" and summary["receipt"]["number"] == "RCPT-0001"
    assert len(summary["shipments"]) == 2 and len(summary["payments"]) == 2
    assert summary["invoice"]["due"] == "0.00"
    # the 30 % deposit before shipping: invoiced, paid in one payment, deducted on the final invoice
    deposit = summary["deposit"]
    assert (deposit["invoice"], deposit["terms"], deposit["due"], len(deposit["payments"])) == (
        "DEP-0001", "30 % deposit before shipping", "0.00", 1)
    assert deposit["deducted"] == {"invoice": "INV-0001", "deposit_invoice": "DEP-0001", "amount": deposit["total"],
                                   "before": summary["order"]["total"], "total": summary["invoice"]["total"]}
    assert Decimal(summary["invoice"]["total"]) == Decimal(summary["order"]["total"]) - Decimal(deposit["total"])
    assert summary["stock"] == {
        "CHUCK-3J-250": {"before": 10, "after": 7}, "CNC-LATHE-2000": {"before": 4, "after": 1},
        "COOLANT-20L": {"before": 200, "after": 190}, "HYD-PRESS-100T": {"before": 2, "after": 2},
        "TOOL-KIT-PRO": {"before": 25, "after": 22}, "VMC-850": {"before": 3, "after": 3}}
    assert len(summary["emails"]) == 12 and all(Path(m["file"]).is_file() for m in summary["emails"])
    assert len(list(Path(summary["documents_dir"]).glob("*.html"))) == 11
    assert f"deposit-1: PAY-0001: {deposit['total']} received, 0.00 due, signed by finance" in result.stderr
    assert "Impostors first: Sofia, logged in as herself, tries to sign off QA" in result.stderr
    assert "qa-attempt-1 refused before anything moved: by: sofia (sales_rep) may not answer 'qa'" in result.stderr
    assert ("qa-attempt-1 refused before anything moved: code: wrong or expired code" in result.stderr)
    assert "qa-attempt-2: attempt 2 passed; released for picking, signed by qa" in result.stderr
    assert summary["refused"] == 2
    # the customer's decisions came through the portal, from the links in the estimate emails
    assert [(a["revision"], a["action"], a["name"], a["po_number"]) for a in summary["online_answers"]] == [
        ("EST-0001-R1", "request_changes", "Priya Raman", ""), ("EST-0001-R2", "accept", "Priya Raman", "PO 4500-2231")]
    assert "decision-rev-2: EST-0001-R2 approved, online from the customer's link" in result.stderr
    assert "DEALFLOW_PUBLIC_URL" not in os.environ  # the demo's portal is gone: so is its address


def test_an_answer_from_the_ui_by_the_wrong_person_is_refused_and_the_deal_waits_again(prefect_api, new_deal):

    from flows.deal import deal_flow

    def wrong_person() -> None:
        resume_as_the_ui(new_deal, "qualify", {"by": "qa", "qualified": True})

    def second_start_is_refused() -> None:
        wait_for_run(new_deal, "qualify-retry-1")
        result = CliRunner().invoke(main, ["deal", "start", "1"])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"error: lead: deal {new_deal} already runs as flow run ")

    moves = [wrong_person, second_start_is_refused,
             _answer(new_deal, "qualify-retry-1", {"by": "sofia", "qualified": True, "budget": "90000"}),
             _answer(new_deal, "handoff", {"by": "sofia", "engineer": "mark"}),
             _answer(new_deal, "estimate-rev-1", {"by": "mark", "lines": [{"sku": "VMC-850", "quantity": 1}]}),
             _answer(new_deal, "decision-rev-1", {"by": "sofia", "decision": "decline", "channel": "phone",
                                                  "reason": "bought second-hand"})]
    thread, errors = in_background(moves)
    result = deal_flow(deal_number=new_deal, poll_interval=1, wait_timeout=120)
    thread.join(timeout=30)
    assert not errors, errors
    assert result["status"] == "lost"
    refused = wait_row(new_deal, "qualify")
    assert refused["status"] == "refused" and refused["by"] == "qa"
    assert refused["reason"] == "by: qa (qa) may not answer 'qualify'; it needs the role sales_rep"
    assert "the reason: by: qa (qa) may not answer" in plain(wait_row(new_deal, "qualify-retry-1")["description"])
    actions = audit_actions()
    assert actions.count("qualify.refused") == 1 and actions.count("qualify.answered") == 1
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        assert (deal.status, deal.lost_reason) == ("lost", "estimate declined: bought second-hand")


def test_a_flow_started_on_a_deal_part_way_continues_and_a_rerun_repeats_nothing(prefect_api, new_deal):
    from flows.deal import deal_flow

    play_direct(new_deal, until="payment-1")
    first, second = [m for m in SCRIPT if m.step == "payment"]
    moves = [_answer(new_deal, "payment-1", answer_for(new_deal, first)),
             _answer(new_deal, "payment-2", {"by": "finance", "amount": "73157.15"})]
    thread, errors = in_background(moves)
    result = deal_flow(deal_number=new_deal, poll_interval=1, wait_timeout=120)
    thread.join(timeout=30)
    assert not errors, errors
    assert result["status"] == "won"
    assert [s["key"] for s in result["steps"]] == ["payment-1", "payment-2", f"close-{new_deal}"]
    after = counts()
    assert (after["emails"], after["documents"], after["payments"]) == (12, 11, 3)  # the deposit's too

    from prefect import get_client
    from prefect.artifacts import Artifact
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    with session_scope() as s:
        run_id = deal_by_number(s, new_deal).flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    assert run.name == f"{new_deal}-riverside-metalworks-ltd"  # the UI shows number and customer
    assert set(run.tags) >= {"dealflow", "customer:riverside-metalworks-ltd", "owner:sofia", "step:won"}
    assert not [t for t in run.tags if t.startswith(("waiting-for:", "assignee:"))]  # nobody's turn: none left
    page = plain(Artifact.get(f"deal-{new_deal.lower()}").data)  # as the UI shows it
    assert page.startswith(f"# {new_deal} · Riverside Metalworks Ltd\n\n**won, paid in full** · owner Sofia Marin")
    for piece in ["| invoice INV-0001 | paid: 121928.58 USD paid, 0.00 USD due by ",
                  "Farah Nair (finance) answered a payment: PAY-0003: 73157.15 received, 0.00 due",
                  "| CNC-LATHE-2000 | 3 | 3 | 48500.00 |"]:
        assert piece in page, piece
    # one page per deal, kept current in place: the key has one version, not one per step
    with get_client(sync_client=True) as client:
        versions = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[
            f"deal-{new_deal.lower()}"])))
    assert len(versions) == 1
    # its documents open through the portal with a signed, short-lived link: never a server path
    data = Artifact.get(f"deal-{new_deal.lower()}").data
    from services.config import load_settings
    assert f"[PAY-0002 PDF]({load_settings().public_url}/d/" in data and "/documents/" not in data

    again = deal_flow(deal_number=new_deal, poll_interval=1, wait_timeout=120)
    assert again == {"deal": new_deal, "status": "won", "steps": []}
    assert counts() == after

    # a page deleted in the UI comes back at the next change (the update goes to the page this
    # process wrote last; when that is gone, to the key's latest or a new one)
    from tasks.deal_steps import publish_deal_page
    with get_client(sync_client=True) as client:
        client.delete_artifact(versions[0].id)
    publish_deal_page(new_deal)
    assert plain(Artifact.get(f"deal-{new_deal.lower()}").data).startswith(f"# {new_deal} · Riverside")


def test_a_wait_whose_form_was_lost_is_given_it_again_and_can_be_answered(prefect_api, new_deal):
    """Prefect marks a run Suspended, then stores the wait's form; a process killed in between
    leaves a run no one can answer. Recovery finds the wait whose form was never confirmed and
    stores the form again; the deal is then answered as usual. (Here the form is deleted from a
    paused run to make that state; the end-to-end fault test meets it for real.)"""
    from prefect import get_client
    from sqlalchemy import update

    from flows.deal import deal_flow
    from flows.waits import restore_missing_forms
    from models import Wait, utcnow

    def lose_the_form_then_answer() -> None:
        run_id = UUID(wait_for_run(new_deal, "qualify"))
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 60
            while True:
                state = client.read_flow_run(run_id).state
                keyset = state.state_details.run_input_keyset if state.is_paused() else None
                if keyset and _stored_form(client, run_id, state) is not None:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.1)
            for key in (keyset["schema"], keyset["description"]):
                client.delete_flow_run_input(run_id, key)
            assert _stored_form(client, run_id, state) is None
        with session_scope() as s:  # as a run that died before confirming its form leaves it
            s.execute(update(Wait).values(form_stored_at=None, opened_at=utcnow() - timedelta(minutes=1)))
            s.commit()
        assert restore_missing_forms(older_than_seconds=30) == [f"{new_deal} qualify"]
        assert restore_missing_forms(older_than_seconds=30) == []  # confirmed now
        with get_client(sync_client=True) as client:
            assert _stored_form(client, run_id, client.read_flow_run(run_id).state) is not None
            description = client.read_flow_run_input(run_id, keyset["description"])
        assert "qualify the lead from Priya Raman" in plain(description)
        answers.answer(new_deal, "qualify", {"by": "sofia", "qualified": False, "notes": "no budget"})
        answers.wait_closed(new_deal, "qualify")

    thread, errors = in_background([lose_the_form_then_answer])
    result = deal_flow(deal_number=new_deal, poll_interval=1, wait_timeout=120)
    thread.join(timeout=30)
    assert not errors, errors
    assert result["status"] == "lost"


def test_after_a_refusal_the_form_starts_with_what_was_typed_and_a_new_revision_with_the_last_lines(
        prefect_api, new_deal):
    """The forms a person sees in the UI (the schema Prefect stores for the wait): a refused
    estimate comes back with its lines, so only the wrong one is corrected; revision 2 starts
    with revision 1's lines."""
    from prefect import get_client

    from dealflow.scenario import Move
    from models.catalog import sku_of

    from .helpers import answer_as_staff, run_deal_with

    typed = [{"sku": "CNC-LATHE-2000", "quantity": 2, "discount_pct": "5"},
             {"sku": "VMC-850", "quantity": 200_000}]  # refused by the rule (at most 100,000), not the form's schema
    forms: dict[str, dict] = {}

    def form_of(key: str) -> dict:
        run_id = wait_for_run(new_deal, key)
        with get_client(sync_client=True) as client:
            for _ in range(50):
                try:
                    return json.loads(client.read_flow_run_input(UUID(run_id), f"paused-{key}-schema"))["properties"]
                except Exception:  # stored a moment after the run pauses
                    time.sleep(0.1)
        raise AssertionError(f"no form stored for {key}")

    def described(key: str) -> str:
        with get_client(sync_client=True) as client:
            return json.loads(client.read_flow_run_input(UUID(wait_for_run(new_deal, key)), f"paused-{key}-description"))

    def people() -> None:
        from flows.waits import refresh_description
        from models import pipeline
        from models.deal import deal_by_number
        from services.db import session_scope

        answer_as_staff(new_deal, "qualify", SCRIPT[0])
        form_of("handoff")
        forms["handoff before"] = described("handoff")
        with session_scope() as s:  # a follow-up is scheduled while the deal waits for the hand-off
            pipeline.add_followup(s, deal_by_number(s, new_deal), by="sofia", kind="call",
                                  due_at=datetime.now() + timedelta(days=1), notes="call back")
            s.commit()
        forms["rewritten"] = refresh_description(new_deal)
        forms["handoff after"] = described("handoff")
        answer_as_staff(new_deal, "handoff", SCRIPT[1])
        answer_as_staff(new_deal, "estimate-rev-1", Move("estimate", "mark", {"lines": typed, "notes": "two"}, ""))
        forms["retry"] = form_of("estimate-rev-1-retry-1")
        answer_as_staff(new_deal, "estimate-rev-1-retry-1", Move("estimate", "mark", {"lines": typed[:1]}, ""))
        answer_as_staff(new_deal, "decision-rev-1", SCRIPT[3])  # the customer asks for changes (by phone)
        forms["revision 2"] = form_of("estimate-rev-2")
        answer_as_staff(new_deal, "estimate-rev-2", Move("estimate", "mark", {"lines": typed[:1]}, ""))
        answer_as_staff(new_deal, "decision-rev-2",
                        Move("decision", "mark", {"decision": "decline", "channel": "phone", "reason": "budget"}, ""))

    assert run_deal_with(new_deal, people)["status"] == "lost"
    retry = forms["retry"]
    assert [(sku_of(ln["sku"]), ln["quantity"], ln["discount_pct"]) for ln in retry["lines"]["default"]] == [
        ("CNC-LATHE-2000", 2, 5), ("VMC-850", 200_000, 0)]  # as the list shows them, to pick again
    # the waiting form's description says what changed while it waited (stored again on the server)
    assert "0 of 0 follow-ups done" in forms["handoff before"] and forms["rewritten"] is True
    assert "0 of 1 follow-ups done" in forms["handoff after"]
    assert retry["lines"]["default"][0]["sku"] in retry["lines"]["items"]["properties"]["sku"]["enum"]
    assert retry["notes"]["default"] == "two"
    assert not {"by", "code", "seal", "session", "signature"} & set(retry)  # the gateway names the person
    assert [(sku_of(ln["sku"]), ln["quantity"]) for ln in forms["revision 2"]["lines"]["default"]] == [
        ("CNC-LATHE-2000", 2)]
    description = wait_row(new_deal, "estimate-rev-1-retry-1")["description"]
    assert "The form starts with what was typed" in plain(description)


def test_an_answer_a_moment_after_the_ui_answered_the_same_wait_is_refused_and_the_first_stands(
        prefect_api, new_deal):
    """Two people answer one wait at once: the manager's resume from the UI lands first, Sofia's
    from this process a moment later, while the flow (in this process) has not yet noticed. She
    is told so, in one line; the manager's answer is the one the deal records."""
    from uuid import UUID

    from prefect.flow_runs import resume_flow_run

    import dealflow.answers as real
    from flows.deal import run_here
    from flows.waits import paused_here
    from models import DomainError

    from .helpers import as_the_gateway_sends, login_of

    refusals: list[str] = []

    def both_answer() -> None:
        run_id = wait_for_run(new_deal, "qualify")
        deadline = time.monotonic() + 60
        while paused_here(run_id, "qualify") is None:  # paused here, its form stored
            assert time.monotonic() < deadline
            time.sleep(0.02)
        mine = {"by": "sofia", "qualified": True, "budget": "90000"}
        wait, data = real.check_answer(new_deal, "qualify", mine, login=login_of(mine))
        theirs = {"by": "manager", "qualified": False, "notes": "no budget this year"}
        resume_flow_run(UUID(run_id), run_input=as_the_gateway_sends(new_deal, "qualify", run_id, theirs))
        try:
            real.resume_wait(wait, data)
        except DomainError as exc:
            refusals.append(str(exc))
        real.wait_closed(new_deal, "qualify")

    thread, errors = in_background([both_answer])
    # the flow looks for a resume from elsewhere every 5 s: the second answer comes well before
    result = run_here(new_deal, poll_interval=5, wait_timeout=120)
    thread.join(timeout=30)
    assert not errors, errors
    assert refusals == [f"step: qualify of {new_deal} was answered by someone else a moment ago"]
    assert result["status"] == "lost"
    answered = wait_row(new_deal, "qualify")
    assert answered["status"] == "answered" and answered["by"] == "manager"
    with session_scope() as s:
        assert deal_by_number(s, new_deal).lost_reason == "lead disqualified: no budget this year"
