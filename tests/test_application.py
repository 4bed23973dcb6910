"""The use cases (``application/``) called directly, as any door calls them: each is one unit of
work that commits what it did, audits it with who did it and returns plain data; a refused one
leaves nothing written. The layer knows nothing of Prefect, Click, the tasks, the flows or the
doors."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from application import (
    answers,
    catalog,
    company,
    customers,
    deals,
    demo,
    inbox,
    leads,
    outbox,
    pipeline,
    prices,
    reminders,
    reports,
    staff,
)
from application.uow import unit_of_work
from models import (
    AuditEntry,
    Base,
    DomainError,
    FileRefused,
    FollowUp,
    InvalidTransition,
    NotFound,
    Product,
    StaffUser,
    ValidationError,
    WaitNotOpen,
    identity,
    utcnow,
)
from models.errors import DealAlreadyRunning
from models.identity import ProofRefused, StaffSession
from models.reminders import ReminderRules
from services.db import session_scope

from .helpers import code_of, counts

ROOT = Path(__file__).resolve().parent.parent
BY = "cli:tester"


def audit_log() -> list[tuple[str, str, str]]:
    with session_scope() as s:
        return [(a.actor, a.action, a.subject) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def written() -> dict[str, object]:
    """What 'nothing written' means here: the business tables, the audit log, the staff and products."""
    with session_scope() as s:
        people = {p.handle: (p.roles, p.active, p.totp_secret) for p in s.scalars(select(StaffUser))}
        products = {p.sku: (p.name, p.unit_price) for p in s.scalars(select(Product))}
        sessions = s.scalar(select(func.count()).select_from(StaffSession))
    return {**counts(), "audit": audit_log(), "staff": people, "products": products, "sessions": sessions}


# --- the unit of work -------------------------------------------------------------------------------

def test_the_unit_of_work_commits_a_block_that_ends_and_rolls_back_one_that_raises(db):
    with unit_of_work() as s:
        s.add(AuditEntry(actor=BY, action="test.kept"))
    with pytest.raises(RuntimeError), unit_of_work() as s:
        s.add(AuditEntry(actor=BY, action="test.dropped"))
        s.flush()
        raise RuntimeError("a use case that fails after writing")
    actions = [action for _, action, _ in audit_log()]
    assert "test.kept" in actions and "test.dropped" not in actions


# --- use cases called without the command line ----------------------------------------------------

def test_a_product_is_added_received_counted_and_listed_without_the_command_line(db):
    added = catalog.add_product("GL-7", {"name": "Gauge", "price": "70", "tax_rate": "18", "needs_qa": False}, BY)
    assert (added["sku"], added["price"], added["needs_qa"], added["on_hand"]) == ("GL-7", Decimal("70.00"), False, 0)
    assert catalog.receive_stock("GL-7", "5", "DN-7", BY) == {
        "sku": "GL-7", "received": 5, "ref": "DN-7", "on_hand": 5, "reserved": 0, "available": 5,
        "serialized": False, "serials": []}
    assert catalog.count_stock("GL-7", "5", "annual count", BY)["difference"] == 0  # agrees: nothing moves
    assert catalog.count_stock("GL-7", "3", "damaged", BY)["on_hand"] == 3
    assert [r["sku"] for r in catalog.list_stock(["GL-7"])] == ["GL-7"]
    assert [m["quantity"] for m in catalog.list_stock_moves("GL-7")] == [-2, 5]
    assert catalog.retire_product("GL-7", BY) == {"sku": "GL-7", "changed": True}
    assert catalog.retire_product("GL-7", BY) == {"sku": "GL-7", "changed": False}
    assert "GL-7" not in [p["sku"] for p in catalog.list_products()]
    assert [(actor, action) for actor, action, subject in audit_log() if subject == "GL-7"] == [
        (BY, "product.added"), (BY, "stock.received"), (BY, "stock.counted"), (BY, "product.retired")]


def test_a_customer_file_is_imported_and_a_customer_edited_with_who_did_it(db, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("name,email,payment_terms\nAcme,buyer@acme.example,45\n")
    imported = customers.import_customers(path, BY)
    assert (imported.rows, imported.result) == (1, {"added": ["buyer@acme.example"], "changed": [], "unchanged": []})
    edited = customers.edit_customer("buyer@acme.example", {"payment_terms": "60"}, BY)
    assert edited["payment_terms"] == 60 and edited["changed"] == {"payment_terms_days": [45, 60]}
    assert customers.show_customer("buyer@acme.example")["deals"] == []
    assert [(actor, action) for actor, action, _ in audit_log()[-2:]] == [(BY, "customer.imported"),
                                                                         (BY, "customer.changed")]


def test_a_price_and_a_rate_are_set_in_another_currency(db):
    assert prices.set_price("COOLANT-20L", "EUR", "82.50", BY) == {"sku": "COOLANT-20L", "currency": "EUR",
                                                                   "price": "82.50"}
    assert prices.list_prices("eur") == [{"sku": "COOLANT-20L", "currency": "EUR", "price": "82.50"}]
    from datetime import date

    assert prices.set_rate("JPY", "150.25", date(2026, 12, 7), BY) == {"currency": "JPY", "rate": "150.25",
                                                                       "from": "USD", "on": "2026-12-07"}
    assert prices.list_rates()[0]["set_by"] == BY


def test_a_lead_is_added_and_found_by_its_owner(db):
    added = leads.add_lead(company="Zeta Tools", contact_name="Zed", email="zed@zeta.example", owner="sofia")
    assert added == {"lead": added["lead"], "company": "Zeta Tools", "owner": "sofia", "customer": None}
    assert [r["lead"] for r in leads.list_leads(owner="SOFIA")] == [added["lead"]]
    assert leads.show_lead(added["lead"])["deal"] is None


def test_a_report_is_built_from_the_database(db):
    df = reports.build_report("stock")
    assert "CNC-LATHE-2000" in list(df["sku"])


# --- a refused use case leaves nothing written --------------------------------------------------------

def test_a_product_file_with_one_bad_row_writes_nothing(db, tmp_path):
    path = tmp_path / "products.csv"
    path.write_text("sku,name,price,tax_rate\nNEW-1,Good row,10,18\nCOOLANT-20L,Coolant,ten,12\n")
    before = written()
    with pytest.raises(FileRefused) as refused:
        catalog.import_products(path, BY)
    assert refused.value.lines == ["products.csv: row 3, column price: must be a number, got 'ten'"]
    assert written() == before


def test_an_edit_refused_by_a_rule_writes_nothing(db):
    before = written()
    with pytest.raises(ValidationError, match="manager is the last enabled manager"):
        staff.disable_staff("manager", BY)
    with pytest.raises(ValidationError, match="price: must be a number"):
        catalog.edit_product("COOLANT-20L", {"name": "Renamed", "price": "cheap"}, BY)
    assert written() == before


def test_an_enrolment_whose_qr_code_cannot_be_written_enrols_no_one(db, tmp_path):
    (tmp_path / "a-file").write_text("")
    before = written()
    with pytest.raises(DomainError, match="png: cannot write"):
        staff.enroll("sofia", BY, tmp_path / "a-file" / "sofia.png")  # the secret was changed, then rolled back
    assert written() == before
    out = staff.enroll("sofia", BY, tmp_path / "sofia.png")
    assert out["uri"].startswith("otpauth://totp/") and Path(out["png"]).stat().st_mode & 0o777 == 0o600


def test_a_login_that_cannot_be_kept_opens_no_session_and_a_wrong_code_stays_on_the_record(db):
    def nowhere(opened):
        raise DomainError("config: cannot keep the session")

    before = written()
    with pytest.raises(DomainError, match="cannot keep"):
        staff.log_in("sofia", code_of("sofia"), 1, nowhere)
    assert written()["sessions"] == before["sessions"] and written()["audit"] == before["audit"]
    with pytest.raises(ProofRefused):
        staff.log_in("sofia", "000000", 1, lambda opened: "kept")
    assert audit_log()[-1][1:] == ("staff.login_refused", "sofia")  # committed although the use case raised
    opened, kept = staff.log_in("sofia", code_of("sofia"), 1, lambda opened: "kept")  # the first one's code is unused
    assert (opened.handle, kept) == ("sofia", "kept")
    assert staff.log_out(opened.id) is True and staff.log_out(opened.id) is False


# --- a deal and the people around it, without the command line, the flow or Prefect -----------------------

def _plain_form(step: str, payload: dict) -> dict:
    """What a door's form does with an answer (the command line's: ``flows.inputs``), in plain
    pydantic: the step's fields, and who answers."""
    from models.waits import KINDS

    fields = KINDS[step].fields.model_validate({k: v for k, v in payload.items() if k != "by"})
    return {"by": payload.get("by", ""), **fields.model_dump(mode="json")}


class _Signer:
    """A login session as a door keeps it (the command line's: ``dealflow.login.Login``)."""

    def __init__(self, opened: identity.OpenedSession):
        self.handle, self.opened = opened.handle, opened

    def prove(self, deal_number: str, wait_key: str, answer: dict) -> dict:
        return {"session": self.opened.id, "signature": identity.sign(self.opened.key, deal_number, wait_key, answer)}


def _lead() -> int:
    return leads.add_lead(company="Zeta Tools", contact_name="Zed", email="zed@zeta.example", owner="sofia")["lead"]


def test_a_deal_is_started_once_per_lead_listed_and_shown(db):
    lead = _lead()
    started = deals.start_deal(lead, BY)
    assert started == {"deal": "DEAL-0001", "status": "open"}
    assert deals.start_deal(lead, BY, live_state=lambda run: None) == started  # the first, again
    assert audit_log()[-1] == (BY, "deal.started", "DEAL-0001")
    assert [(d["deal"], d["where"], d["waiting_for"]) for d in deals.list_deals(status="open")] == [
        ("DEAL-0001", "a lead, to qualify", "")]
    assert deals.list_deals(status="won") == [] and deals.list_deals(waiting_for="qa") == []
    summary = deals.deal_summary("deal-0001")
    assert (summary["deal"], summary["customer"], summary["owner"], summary["flow_run_id"]) == (
        "DEAL-0001", "Zeta Tools", "sofia", None)
    deals.open_wait("DEAL-0001", "qualify", "qualify", "run-1")
    assert deals.flow_run_of("DEAL-0001") is None  # the wait names its run; the deal's is attached
    deals.attach_run("DEAL-0001", "run-1", lambda run: None)
    assert deals.flow_run_of("DEAL-0001") == "run-1"
    assert deals.waits_of("DEAL-0001") == [{"key": "qualify", "step": "qualify", "status": "open", "answered_by": None}]
    assert [d["waiting_for"] for d in deals.list_deals(waiting_for="sales_rep")] == ["qualify"]


def test_a_deal_whose_run_is_live_is_not_started_again_and_nothing_is_written(db):
    lead = _lead()
    number = deals.start_deal(lead, BY)["deal"]
    deals.attach_run(number, "run-1", lambda run: None)
    before = written()
    with pytest.raises(DealAlreadyRunning, match="run-1"):
        deals.start_deal(lead, BY, live_state=lambda run: "Running")
    with pytest.raises(NotFound, match="lead"):
        deals.start_deal(99, BY)
    assert written() == before


def test_sales_work_the_opportunity_with_follow_ups_and_stages(new_deal):
    from dealflow.scenario import play_direct

    play_direct(new_deal, until="handoff")
    due = utcnow() + timedelta(days=2)
    added = pipeline.add_followup(new_deal.lower(), "sofia", "call", lambda: due, "Ask about the floor")
    assert added == {"followup": added["followup"], "deal": new_deal, "kind": "call", "due_at": due.isoformat()}
    done = pipeline.complete_followup(added["followup"], "sofia", "Floor ready in January")
    assert done["deal"] == new_deal and done["done_at"]
    assert pipeline.move_stage(new_deal, "needs_analysis", "sofia") == {
        "deal": new_deal, "stage": "needs_analysis", "probability": 40}
    assert pipeline.move_stage(new_deal, "proposal", "sofia", probability=55)["probability"] == 55
    assert [(actor, action) for actor, action, _ in audit_log()[-4:]] == [
        ("sofia", "followup.scheduled"), ("sofia", "followup.done"), ("sofia", "opportunity.stage"),
        ("sofia", "opportunity.stage")]


def test_a_refused_pipeline_step_writes_nothing(new_deal):
    before = written()
    with pytest.raises(NotFound, match="DEAL-0099"):  # the deal is looked up before the due time is read
        pipeline.add_followup("DEAL-0099", "sofia", "call", lambda: pytest.fail("read before the deal was found"))
    with pytest.raises(InvalidTransition, match="qualify it first"):
        pipeline.add_followup(new_deal, "sofia", "call", utcnow() + timedelta(days=1))
    with pytest.raises(NotFound, match="follow-up"):
        pipeline.complete_followup(404, "sofia", "done")
    with pytest.raises(InvalidTransition):
        pipeline.move_stage(new_deal, "needs_analysis", "sofia")
    assert written() == before
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(FollowUp)) == 0


def test_an_answer_is_checked_before_it_is_sent_and_only_a_refusal_is_written(new_deal):
    deals.open_wait(new_deal, "qualify", "qualify", "run-1")
    assert answers.turn_at(new_deal, "qualify") == "qualify" and answers.turn_at(new_deal, "handoff") is None
    sofia = _Signer(answers.open_answer_session("sofia", code_of("sofia"), "test", 1))
    before = written()
    wait, data = answers.check_answer(new_deal, "qualify", {"qualified": True, "budget": "150000"},
                                      read_form=_plain_form, login=sofia, door="test")
    assert (wait.deal, wait.key, wait.step, wait.flow_run_id) == (new_deal, "qualify", "qualify", "run-1")
    assert data["by"] == "sofia" and data["qualified"] is True and data["session"] == sofia.opened.id
    assert written() == before and leads.list_leads()[0]["status"] == "new"  # the dry run was rolled back
    with pytest.raises(WaitNotOpen):
        answers.check_answer(new_deal, "qa", {"passed": True}, read_form=_plain_form, login=sofia)
    with pytest.raises(DomainError, match="you are logged in as sofia"):
        answers.check_answer(new_deal, "qualify", {"by": "mark", "qualified": True}, read_form=_plain_form,
                             login=sofia)
    assert written() == before
    answers.record_refusal(new_deal, "qualify", {"by": "mark", "qualified": True}, "by: not yours", "test")
    assert audit_log()[-1] == ("mark", "qualify.refused", "qualify")
    assert answers.wait_state(new_deal, "qualify") == answers.ClosedWait("qualify", "open", None, "")
    assert answers.wait_state(new_deal, "handoff") is None


def test_a_wrong_code_is_counted_and_nothing_else_is_written(new_deal):
    from models.identity import AnswerFailure

    def wrong_codes() -> int:
        with session_scope() as s:
            return s.scalar(select(func.count()).select_from(AnswerFailure))

    deals.open_wait(new_deal, "qualify", "qualify", None)
    before = written()
    with pytest.raises(ProofRefused, match="wrong or expired code"):
        answers.check_answer(new_deal, "qualify", {"by": "sofia", "qualified": True}, read_form=_plain_form,
                             code=demo.wrong_code("sofia"), door="test")
    assert wrong_codes() == 1  # committed although the use case raised: it counts towards a lock
    assert written() == before and leads.list_leads()[0]["status"] == "new"
    with pytest.raises(ProofRefused):
        answers.open_answer_session("sofia", "000000", "test", 1)
    assert wrong_codes() == 2 and written()["sessions"] == before["sessions"]


def test_the_inbox_lists_open_waits_for_a_role(new_deal):
    assert inbox.open_waits() == []
    deals.open_wait(new_deal, "qualify", "qualify", "run-1")
    rows = inbox.open_waits("sales_rep", run_states={})
    assert [(r["deal"], r["key"], r["roles"], r["run"]) for r in rows] == [
        (new_deal, "qualify", ["sales_rep"], "not on this server")]
    assert inbox.open_waits("qa") == []


def test_due_reminders_are_queued_sent_and_never_twice(new_deal):
    from dealflow.scenario import play_direct

    play_direct(new_deal, until="payment-1")
    with session_scope() as s:
        from models import Invoice

        due = s.scalars(select(Invoice.due_date).where(Invoice.kind == "final")).one()  # (the deposit is paid)
    at = datetime.combine(due + timedelta(days=1), time(8))
    queued = reminders.queue_due(at, ReminderRules())
    assert [q["rule"] for q in queued if q["rule"].startswith("dunning")] == ["dunning-1"]
    assert sorted(reminders.send([q["email_id"] for q in queued])) == sorted(q["email_id"] for q in queued)
    assert reminders.queue_due(at, ReminderRules()) == [] and reminders.send([]) == []


def test_the_outbox_run_sends_what_waits_and_says_how_the_outbox_stands(new_deal):
    from dealflow.scenario import play_direct

    play_direct(new_deal, until="decision-rev-1")
    ran = outbox.send_all_pending()
    assert (ran["sent"], ran["error"], ran["pending"], ran["oldest_pending_since"]) == ([], None, 0, None)


def test_the_demo_seeds_starts_its_deal_and_works_the_opportunity(db):
    from dealflow.scenario import LEAD, play_direct

    assert demo.seed_installation() == {"staff": 0, "products": 0, "customers": 0}  # seeded already: nothing added
    before = demo.stock_on_hand()
    number = demo.start_scenario_deal(LEAD, by="sofia", restock=2, restock_key="test")
    assert {sku: n - 2 for sku, n in demo.stock_on_hand().items()} == before
    with pytest.raises(InvalidTransition):  # not qualified yet: nothing written
        demo.work_the_opportunity(number)
    play_direct(number, until="handoff")
    with session_scope() as s:
        last = s.scalar(select(func.max(AuditEntry.id)))
    demo.work_the_opportunity(number)
    entries = demo.audit_after(last)
    assert [(e["actor"], e["action"]) for e in entries] == [("sofia", "followup.scheduled"), ("sofia", "followup.done"),
                                                           ("sofia", "opportunity.stage"),
                                                           ("sofia", "followup.scheduled"), ("sofia", "followup.done"),
                                                           ("sofia", "followup.scheduled")]
    assert demo.refused_answers(number) == 0 and demo.online_answers(number) == []
    opened = demo.sign_in_with_app("mark")
    assert opened.handle == "mark" and demo.session_open(opened.id, timedelta(minutes=5))
    assert not demo.session_open("no-such-session", timedelta(0))
    assert demo.wrong_code("mark") != code_of("mark")


# --- plain data out, and no door in -----------------------------------------------------------------

def _no_orm(value: object, where: str) -> None:
    assert not isinstance(value, Base), f"{where}: an ORM object ({type(value).__name__})"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else ()
    for key, inner in items:
        _no_orm(inner, f"{where}[{key!r}]")


def test_use_cases_return_plain_data_never_orm_objects(db):
    mail = outbox.list_mail()
    for name, result in {
        "list_products": catalog.list_products(everything=True), "show_product": catalog.show_product("VMC-850"),
        "list_stock": catalog.list_stock(), "list_customers": customers.list_customers(),
        "list_staff": staff.list_staff(), "list_leads": leads.list_leads(), "list_prices": prices.list_prices(),
        "list_rates": prices.list_rates(), "list_mail": [mail.mail, mail.health],
        "show_company": company.show_company(),
        "set_discount_limit": staff.set_discount_limit("sofia", "12.5", BY),
        "change_roles": staff.change_roles("mark", ["sales_engineer", "sales_rep"], BY),
    }.items():
        _no_orm(result, name)


def test_the_deal_use_cases_return_plain_data(new_deal):
    deals.open_wait(new_deal, "qualify", "qualify", "run-1")
    for name, result in {
        "deal_summary": deals.deal_summary(new_deal), "list_deals": deals.list_deals(),
        "waits_of": deals.waits_of(new_deal), "open_waits": inbox.open_waits(),
        "wait_state": [answers.wait_state(new_deal, "qualify").__dict__], "audit_after": demo.audit_after(0),
        "send_all_pending": outbox.send_all_pending(),
    }.items():
        _no_orm(result, name)


FORBIDDEN = ("prefect", "click", "tasks", "flows", "dealflow")


def test_the_application_layer_imports_neither_prefect_click_tasks_flows_nor_the_doors():
    found = []
    for path in sorted((ROOT / "application").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):  # in functions too
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {name}" for name in names
                      if name.split(".")[0] in FORBIDDEN]
    assert not found, "\n".join(found)


def test_importing_every_use_case_loads_neither_prefect_nor_click():
    """What the modules it imports import, too: a use case runs where neither is installed."""
    probe = ("import importlib, pkgutil, sys, application\n"
             "for m in pkgutil.iter_modules(application.__path__): importlib.import_module('application.' + m.name)\n"
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- the portal's use cases: what a customer does through a link --------------------------------------

def _customer_link(deal_number: str, other_contact: bool = False):
    """The link of the deal's first revision as the estimate email names it (``other_contact``: a
    link made for another customer's contact, which verifies but names no deal of theirs)."""
    from models.crm import Contact
    from models.deal import deal_by_number
    from models.portal import Link

    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        contact = deal.customer.primary_contact.id if not other_contact else s.scalars(
            select(Contact.id).where(Contact.customer_id != deal.customer_id)).first()
    return Link("estimate", deal_number, "1", contact)


def _waits_for_its_run(deal_number: str) -> str:
    """The deal's open wait as if its flow run waited there (play_direct runs no flow)."""
    from models.deal import deal_by_number

    with session_scope() as s:
        wait = deal_by_number(s, deal_number).open_wait
        wait.flow_run_id = "00000000-0000-4000-8000-000000000001"
        s.commit()
        return wait.flow_run_id


def test_a_customer_reads_an_estimate_downloads_it_and_an_answer_is_signed_for_the_run_without_the_portal(
        new_deal, data_dir):
    from application import portal
    from dealflow.scenario import play_direct
    from services import keys

    play_direct(new_deal, until="decision-rev-1")
    link = _customer_link(new_deal)
    shown = portal.estimate_page(link)
    assert (shown["state"], shown["latest"], shown["answered"], shown["order"], shown["notice"]) == (
        "open", 1, None, None, "")
    number = shown["doc"]["number"]
    pdf = portal.linked_pdf(link)
    assert pdf["number"] == number and pdf["pdf"].startswith(b"%PDF")
    kwargs = {"secret": keys.portal_secret(), "ip": "203.0.113.9", "user_agent": "test"}
    assert portal.answer_estimate(link, "accept", {"name": "Priya Raman", "terms": "yes"}, **kwargs).outcome == \
        "not_waiting"  # no run waits for it: the page says to try again
    run_id = _waits_for_its_run(new_deal)
    before = written()
    typo = portal.answer_estimate(link, "accept", {"name": "P", "terms": "yes"}, **kwargs)
    assert (typo.outcome, typo.error, typo.page["state"]) == (
        "invalid", "name: type your full name to accept (it is your signature)", "open")
    ready = portal.answer_estimate(link, "accept", {"name": "Priya Raman", "terms": "yes", "po_number": "PO-7"},
                                   **kwargs)
    assert (ready.outcome, ready.deal, ready.key, ready.step, ready.flow_run_id) == (
        "ready", new_deal, "decision-rev-1", "decision", run_id)
    assert ready.run_input["po_number"] == "PO-7" and ready.run_input["portal"]  # signed for the flow to check
    assert written() == before  # the flow records the answer, not the portal
    for name, result in {"estimate_page": shown, "linked_pdf": pdf, "invalid": typo.page,
                         "ready": ready.run_input}.items():
        _no_orm(result, name)


def test_a_renewal_is_asked_once_of_an_expired_estimate_and_of_one_still_open_writes_nothing(new_deal, data_dir):
    from datetime import timedelta

    from sqlalchemy import update

    from application import portal
    from dealflow.scenario import play_direct
    from models import Email, EstimateRevision

    play_direct(new_deal, until="decision-rev-1")
    link = _customer_link(new_deal)
    before = written()
    assert portal.ask_for_renewal(link) == {"mail": None, "error": None}  # still open: nothing to ask
    assert written() == before
    with session_scope() as s:
        rev = s.scalars(select(EstimateRevision)).one()
        s.execute(update(EstimateRevision).where(EstimateRevision.id == rev.id)
                  .values(valid_until=rev.valid_until - timedelta(days=40)))
        s.commit()
    assert portal.estimate_page(link)["state"] == "expired"
    asked = portal.ask_for_renewal(link)
    assert asked["mail"] is not None and asked["error"] is None
    assert portal.ask_for_renewal(link) == {"mail": None, "error": None}  # pressed twice: one note
    assert audit_log()[-1] == ("customer: Priya Raman", "estimate.renewal_requested", audit_log()[-1][2])
    with session_scope() as s:
        assert [(m.kind, m.status) for m in s.scalars(select(Email).where(Email.id == asked["mail"]))] == [
            ("renewal_request", "sent")]
    assert portal.estimate_page(link)["renewal"] is not None


def test_a_link_that_names_another_customers_deal_is_not_found_and_writes_nothing(new_deal, tmp_path):
    import models.errors
    from application import portal
    from dealflow.scenario import play_direct
    from models.crm import Contact, Customer
    from services import keys

    play_direct(new_deal, until="decision-rev-1")
    (tmp_path / "customers.csv").write_text("name,email\nAcme,buyer@acme.example\n")
    customers.import_customers(tmp_path / "customers.csv", BY)  # another customer, with a contact of theirs
    with session_scope() as s:
        acme = s.scalars(select(Customer).where(Customer.name == "Acme")).one()
        s.add(Contact(customer_id=acme.id, name="Ann Buyer", email="buyer@acme.example", is_primary=True))
        s.commit()
    stranger = _customer_link(new_deal, other_contact=True)
    assert stranger.contact is not None
    before = written()
    for call in (lambda: portal.estimate_page(stranger), lambda: portal.linked_pdf(stranger),
                 lambda: portal.ask_for_renewal(stranger),
                 lambda: portal.answer_estimate(stranger, "decline", {"reason": "no"}, secret=keys.portal_secret(),
                                                ip="203.0.113.9", user_agent="test")):
        with pytest.raises(models.errors.NotFound):
            call()
    with pytest.raises(models.errors.NotFound):
        portal.document_pdf(10**9)
    assert written() == before


# --- the gateway's use cases: signing in, a Resume sealed, refusals on the record ---------------------

def test_a_person_signs_in_at_the_gateway_is_known_by_the_sessions_key_and_signs_out(db):
    from application import gateway

    person = gateway.sign_in("sofia", code_of("sofia"), 8, "gateway")
    assert (person.handle, person.roles) == ("sofia", ("sales_rep",))
    assert gateway.signed_in(person.session_id, person.key) == person
    assert gateway.signed_in(person.session_id, b"another key") is None
    assert gateway.sign_out(person.session_id) is True and gateway.sign_out(person.session_id) is False
    assert gateway.signed_in(person.session_id, person.key) is None
    before = written()
    with pytest.raises(ProofRefused):
        gateway.sign_in("sofia", "000000", 8, "gateway")
    assert written()["sessions"] == before["sessions"]  # no session; the refusal is on the record
    assert audit_log()[-1][1:] == ("staff.login_refused", "sofia")


def test_a_resume_is_named_after_the_person_and_sealed_to_the_wait_its_run_is_at(new_deal):
    import models.identity
    from application import gateway
    from dealflow.scenario import play_direct
    from services import keys

    play_direct(new_deal, until="qa-attempt-1")
    run_id = _waits_for_its_run(new_deal)
    before = written()
    sealed = gateway.seal_answer(run_id, {"by": "sofia", "passed": True, "code": "123456"}, "qa", ("qa",),
                                 keys.seal_key())
    assert (sealed["deal"], sealed["key"]) == (new_deal, "qa-attempt-1")
    answer = sealed["answer"]
    assert answer["by"] == "qa" and "code" not in answer  # from the session, whatever was typed
    with session_scope() as s:
        models.identity.check_seal(s, models.identity.staff_member(s, "qa"), answer["seal"], new_deal, "qa-attempt-1",
                                   answer, keys.seal_key(), models.identity.utcnow(), consume=False)
    with pytest.raises(gateway.ResumeRefused) as not_theirs:
        gateway.seal_answer(run_id, {"passed": True}, "sofia", ("sales_rep",), keys.seal_key())
    assert (str(not_theirs.value), not_theirs.value.at_a_wait) == (
        f"sofia (sales_rep) may not answer qa of {new_deal}: it needs qa", True)
    with pytest.raises(gateway.ResumeRefused) as nowhere:
        gateway.seal_answer("00000000-0000-4000-8000-00000000dead", {}, "qa", ("qa",), keys.seal_key())
    assert (str(nowhere.value), nowhere.value.at_a_wait) == ("this run waits at no open wait of a deal", False)
    assert written() == before  # a seal, made or refused, writes nothing
    gateway.record_refused("sofia", "POST", "/api/flow_runs/x/resume", "not hers")
    assert audit_log()[-1] == ("sofia", "gateway.refused", "POST /api/flow_runs/x/resume")
