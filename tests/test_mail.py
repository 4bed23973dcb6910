"""Mail really goes out over SMTP (a real server on loopback), once, with the PDF attached."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from dealflow.scenario import LEAD, SCRIPT, Move, play_direct
from models import Email, process
from models.pipeline import add_lead
from services.db import session_scope
from services.mailer import TransientMailError
from tasks.deal_steps import deliver_mail

from .conftest import SMTP_PASSWORD


def _pdf_text(part) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(part.get_content())).pages))


def test_the_estimate_arrives_with_its_pdf_and_the_pdf_has_the_numbers(new_deal, smtp):
    play_direct(new_deal, until="decision-rev-1")
    assert smtp.logins == [("sales@glocial.example", SMTP_PASSWORD)]
    [got] = smtp.received
    assert got.rcpt_tos == [LEAD["email"]]
    msg = got.message
    assert msg["Subject"] == "Estimate EST-0001-R1 for Riverside Metalworks Ltd"
    [pdf] = [p for p in msg.walk() if p.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == "EST-0001-R1.pdf"
    text = _pdf_text(pdf)
    # 2 lathes at 48,500 less 5 % = 92,150 + 18 % = 108,737; kits 4,900 + 882; chucks 3,700 + 666
    # (the tax label is left out: pypdf reads the kerned "Ta" of "Tax" as "T ax")
    for piece in ["Estimate EST-0001-R1", "CNC-LATHE-2000", "TOOL-KIT-PRO", "CHUCK-3J-250", "92,150.00",
                  "Net USD 100,750.00", "USD 18,135.00", "Total USD 118,885.00", "Riverside Metalworks Ltd"]:
        assert piece in text, piece
    with session_scope() as s:
        row = s.scalars(select(Email)).one()
        assert (row.status, row.message_id) == ("sent", msg["Message-ID"])


def test_a_server_saying_try_later_then_yes_gets_the_message_exactly_once(new_deal, smtp):
    smtp.refuse = 1
    with pytest.raises(TransientMailError, match="451"):
        play_direct(new_deal, until="decision-rev-1")
    with session_scope() as s:
        row = s.scalars(select(Email)).one()
        assert (row.status, row.attempts) == ("pending", 1)
        assert "451" in row.last_error
    assert smtp.received == []
    assert deliver_mail.fn(new_deal) == [1]  # what the task's retry does
    assert deliver_mail.fn(new_deal) == []
    assert len(smtp.received) == 1
    with session_scope() as s:
        assert s.scalars(select(Email.attempts)).one() == 2


def test_hostile_text_is_escaped_in_html_literal_in_text_and_adds_no_recipient(db, smtp):
    name = "<script>alert(1)</script> {{ 7*7 }} Ltd"
    note = "Delivery to gate 2\r\nBcc: x@evil.test\r\n<script>alert(1)</script> {{ 7*7 }}"
    with session_scope() as s:
        lead = add_lead(s, **(LEAD | {"company": name}))
        number = process.start_deal(s, lead.id).number
        s.commit()
    estimate = Move("estimate", "mark", {"lines": [{"sku": "VMC-850", "quantity": 1}], "notes": note}, "")
    play_direct(number, script=SCRIPT[:2] + [estimate], until="decision-rev-1")
    [got] = smtp.received
    assert got.rcpt_tos == [LEAD["email"]]
    msg = got.message
    assert msg["Bcc"] is None and "evil" not in str(msg["To"]) + str(msg["Cc"])
    assert msg["Subject"] == f"Estimate EST-0001-R1 for {name}"
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
    text = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{ 7*7 }}" in html and ">49<" not in html
    assert name in text and "Bcc: x@evil.test" in text and "{{ 7*7 }}" in text


@pytest.mark.flow
def test_the_send_task_retries_a_4xx_and_the_message_arrives_once(prefect_api, new_deal, smtp):
    from prefect import flow

    from tasks.deal_steps import plan_next_step, send_estimate

    from .helpers import record_answer

    play_direct(new_deal, until="estimate-rev-1")
    record_answer.fn(new_deal, "estimate-rev-1", {"by": "mark", "lines": [{"sku": "VMC-850", "quantity": 1}]})
    send_estimate.fn(new_deal)
    smtp.refuse = 1

    @flow
    def send_now(deal_number: str) -> list[int]:
        return deliver_mail(deal_number)

    assert send_now(new_deal) == [1]
    assert len(smtp.received) == 1
    with session_scope() as s:
        assert s.scalars(select(Email.attempts)).one() == 2
    assert plan_next_step(new_deal)["key"] == "decision-rev-1"  # and the deal goes on


@pytest.mark.flow
def test_the_smtp_password_from_a_secret_block_is_used_and_appears_nowhere(prefect_api, new_deal, smtp,
                                                                        monkeypatch, data_dir):
    """The password lives in a Prefect Secret block; after a deal's flow has mailed with it, it is
    in no log, flow or task parameter, artifact, business table or file dealflow wrote."""
    import json
    import threading
    import time
    from uuid import UUID

    from prefect import get_client
    from prefect.blocks.system import Secret
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from sqlalchemy import text

    from flows.deal import deal_flow
    from models import Base
    from models.deal import deal_by_number

    from .helpers import answers

    Secret(value=SMTP_PASSWORD).save("dealflow-smtp-test", overwrite=True)
    monkeypatch.delenv("SMTP_PASSWORD")
    monkeypatch.setenv("SMTP_PASSWORD_SECRET_BLOCK", "dealflow-smtp-test")

    moves = [("qualify", {"by": "sofia", "qualified": True}), ("handoff", {"by": "sofia", "engineer": "mark"}),
             ("estimate-rev-1", {"by": "mark", "lines": [{"sku": "VMC-850", "quantity": 1}]}),
             ("decision-rev-1", {"by": "mark", "decision": "decline", "reason": "no budget"})]

    def people() -> None:
        for key, payload in moves:
            while True:
                with session_scope() as s:
                    w = deal_by_number(s, new_deal).open_wait
                    if w is not None and w.key == key and w.flow_run_id:
                        break
                time.sleep(0.1)
            answers.answer(new_deal, key, payload)
            answers.wait_closed(new_deal, key)

    t = threading.Thread(target=people, daemon=True)
    t.start()
    assert deal_flow(deal_number=new_deal, poll_interval=1, wait_timeout=120)["status"] == "lost"
    t.join(timeout=30)
    assert smtp.logins == [("sales@glocial.example", SMTP_PASSWORD)] and len(smtp.received) == 1

    with session_scope() as s:
        run_id = UUID(s.scalars(text("SELECT flow_run_id FROM deals")).one())
        tables = {t.name: [tuple(map(str, row)) for row in s.execute(t.select())] for t in Base.metadata.sorted_tables}
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        for _ in range(100):  # the server records logs and task runs from events, a moment later
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            if len(logs) > 5 and len(task_runs) >= 5 and any(tr.name.startswith("mail-") for tr in task_runs):
                break
            time.sleep(0.1)
        artifacts = client.read_artifacts()
    # the haystacks are really there: the run's logs and its task runs (the answer and mail stages)
    assert len(logs) > 5 and len(task_runs) >= 5 and any(tr.name.startswith("mail-") for tr in task_runs)
    haystacks = {
        "flow parameters": json.dumps(run.parameters),
        "logs": "\n".join(log.message for log in logs),
        "task runs": json.dumps([tr.model_dump(mode="json") for tr in task_runs]),
        "artifacts": json.dumps([a.model_dump(mode="json") for a in artifacts]),
        "business database": json.dumps(tables),
        "data folder": "\n".join(p.read_bytes().decode("latin-1") for p in data_dir.rglob("*") if p.is_file()),
    }
    for where, haystack in haystacks.items():
        assert SMTP_PASSWORD not in haystack, where


@pytest.mark.flow
def test_a_mail_server_down_longer_than_every_retry_stops_no_deal_and_loses_no_mail(prefect_api, new_deal, db,
                                                                                    monkeypatch):
    """SMTP is down through all of the mail task's retries: the deal still reaches its next wait,
    the estimate email waits in the outbox, and when the server is back the outbox run sends
    it, once; the deal then goes on and nothing is sent twice."""
    import threading
    import time

    from flows.deal import deal_flow
    from flows.outbox import outbox_flow
    from models.deal import deal_by_number

    from .helpers import answers
    from .smtp_server import Recorder, free_port, start

    port = free_port()  # nothing listens here yet: every connection is refused
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(port))
    monkeypatch.setenv("SMTP_SECURITY", "none")
    monkeypatch.setenv("DEALFLOW_MAIL_RETRY_SECONDS", "0,1")
    moves = [("qualify", {"by": "sofia", "qualified": True}), ("handoff", {"by": "sofia", "engineer": "mark"}),
             ("estimate-rev-1", {"by": "mark", "lines": [{"sku": "VMC-850", "quantity": 1}]})]
    reached_decision = threading.Event()
    carry_on = threading.Event()

    def people() -> None:
        for key, payload in moves:
            _await_open(new_deal, key)
            answers.answer(new_deal, key, payload)
            answers.wait_closed(new_deal, key)
        _await_open(new_deal, "decision-rev-1")
        reached_decision.set()
        carry_on.wait(120)
        answers.answer(new_deal, "decision-rev-1", {"by": "mark", "decision": "decline", "reason": "no budget"})

    def _await_open(deal: str, key: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with session_scope() as s:
                w = deal_by_number(s, deal).open_wait
                if w is not None and w.key == key and w.flow_run_id:
                    return
            time.sleep(0.1)
        raise TimeoutError(key)

    t = threading.Thread(target=people, daemon=True)
    t.start()
    result: dict = {}
    flow_thread = threading.Thread(target=lambda: result.update(deal_flow(deal_number=new_deal, poll_interval=1,
                                                                          wait_timeout=300)), daemon=True)
    flow_thread.start()
    assert reached_decision.wait(180), "the deal did not reach its next wait while the mail server was down"
    with session_scope() as s:
        rows = s.scalars(select(Email)).all()
        assert [(m.kind, m.status, m.attempts) for m in rows] == [("estimate", "pending", 3)]
        assert "ConnectionRefusedError" in rows[0].last_error

    recorder = Recorder()
    controller = start(recorder, port=port)  # the mail server is back
    try:
        state = outbox_flow(return_state=True)
        assert state.is_completed(), state.message
        assert len(recorder.received) == 1
        assert outbox_flow(return_state=True).is_completed() and len(recorder.received) == 1
        carry_on.set()
        flow_thread.join(timeout=120)
        assert result["status"] == "lost"
    finally:
        controller.stop()
    assert len(recorder.received) == 1  # the deal's own run did not send it again
    with session_scope() as s:
        assert [m.status for m in s.scalars(select(Email))] == ["sent"]


@pytest.mark.flow
def test_the_outbox_run_fails_visibly_while_the_mail_server_is_down(prefect_api, new_deal, monkeypatch):
    from flows.outbox import outbox_flow

    from .smtp_server import free_port

    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(free_port()))
    monkeypatch.setenv("SMTP_SECURITY", "none")
    play_direct(new_deal, until="estimate-rev-1")
    from tasks.deal_steps import send_estimate

    from .helpers import record_answer
    record_answer.fn(new_deal, "estimate-rev-1", {"by": "mark", "lines": [{"sku": "VMC-850", "quantity": 1}]})
    send_estimate.fn(new_deal)
    state = outbox_flow(return_state=True)
    assert state.is_failed()
    assert state.message.startswith("the mail server cannot take mail: email 1 to ")
    assert "0 sent; 1 pending (oldest 0 min, email 1)" in state.message
