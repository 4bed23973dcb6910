"""The deal's stage tasks. Each takes the deal's number (never an ORM object), commits once and
returns plain data; each is idempotent by business key, so a flow re-run repeats nothing.

The stages (automatic steps, recording an answer, sending mail) are Prefect tasks: they show in
the run's graph and carry retries. The flow's bookkeeping (``attach_run``, ``plan_next_step``,
``open_wait``, ``tag_run``, ``mail_pending``, ``publish_deal_page``) are plain functions: as
tasks they would cost a task run each (three events for the server to record), several times per
answer, and show nothing a person looks for.
No task caches (``NO_CACHE``): the database, not a cache, says what has been done."""

from __future__ import annotations

from typing import Any

from prefect import task
from sqlalchemy.exc import IntegrityError, OperationalError

from models import DomainError, process
from models.deal import deal_by_number
from services import keys, mailer
from services.config import MAIL_RETRY_SECONDS, load_settings, with_smtp_password
from services.db import session_scope
from services.orchestration import runs
from services.orchestration.engine import NO_CACHE


def _retry_on_race(task, task_run, state) -> bool:  # noqa: ARG001
    """Retry only what a retry can cure: a lost race on a unique key, a lock timeout."""
    try:
        state.result()
    except (IntegrityError, OperationalError):
        return True
    except Exception:
        return False
    return False


def attach_run(deal_number: str, flow_run_id: str) -> int:
    """The run ``flow_run_id`` drives the deal from now on; ``DealAlreadyRunning`` while another
    run of it is live (one started from the UI's "Run", a script: the flow calls this first)."""
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        if process.attach_flow_run(s, deal, flow_run_id, runs.live_state):
            s.commit()
        return deal.id


def tag_run(deal_number: str, flow_run_id: str, step: str) -> list[str]:
    """Tags on the deal's run for the UI's filters: customer, owner, the current step, and whose
    turn it is (``waiting-for:ROLE`` or ``waiting-for:customer``, ``assignee:HANDLE``), all
    written anew each time, so none is left from an earlier step."""
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        slug = "".join(c if c.isalnum() else "-" for c in deal.customer_name.lower()).strip("-")[:40]
        tags = ["dealflow", f"customer:{slug}", f"owner:{deal.owner.handle}", f"step:{step}"]
        waiting_for, assignee = process.whose_turn(deal, process.next_step(s, deal))
        tags += [f"waiting-for:{waiting_for}"] if waiting_for else []
        tags += [f"assignee:{assignee}"] if assignee else []
    runs.tag(flow_run_id, tags)
    return tags


def plan_next_step(deal_number: str) -> dict[str, Any]:
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        step = process.next_step(s, deal)
        wait = deal.open_wait if step.kind == "wait" else None
        opened = ({"description": wait.description, "flow_run_id": wait.flow_run_id,
                   **process.form_start(s, deal, step.name, step.key)}
                  if wait is not None and wait.key == step.key else None)
        return {"name": step.name, "kind": step.kind, "key": step.key, "roles": list(step.roles),
                "facts": step.facts, "deal_status": deal.status, "opened": opened}


def open_wait(deal_number: str, step: str, key: str, flow_run_id: str | None) -> dict[str, Any]:
    """Write the wait (who may answer, since when, what the form says) and return what its form
    starts with. Bookkeeping, not a stage: a plain call (as a task it cost three events on the
    server at every wait, and the run shows the wait itself as Paused/Suspended at its key)."""
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        planned = process.next_step(s, deal)
        if planned.key != key:
            raise DomainError(f"{deal_number} is at {planned.key}, not {key}")
        described: list[str] = []  # described only when the wait is new

        def describe() -> str:
            described.append(process.describe_wait(s, deal, step, key))
            return described[0]

        wait = process.open_wait(s, deal, planned, describe, flow_run_id)
        new = bool(described)
        s.commit()
        return {"wait_id": wait.id, "status": wait.status, "description": wait.description,
                "answer": wait.answer, "new": new, **process.form_start(s, deal, step, key)}


def form_start(deal_number: str, key: str) -> dict[str, Any]:
    """What the form of the wait ``key`` starts with and offers (recovery stores a lost form
    again with them): ``prefill`` and ``choices``."""
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        wait = next((w for w in deal.waits if w.key == key), None)
        return process.form_start(s, deal, wait.step, key) if wait is not None else {}


def form_stored(deal_number: str, key: str, flow_run_id: str) -> None:
    """Confirm that the run waiting at ``key`` has its form stored (a plain write, not a task)."""
    from sqlalchemy import update

    from models import Wait, utcnow

    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        s.execute(update(Wait).where(Wait.deal_id == deal.id, Wait.key == key, Wait.flow_run_id == flow_run_id)
                  .values(form_stored_at=utcnow()))
        s.commit()


def unconfirmed_waits(older_than_seconds: float, within_days: int = 2) -> list[dict[str, Any]]:
    """Open waits whose run has not confirmed its form stored for a while: a run that died
    between suspending and storing its form, or one that is still on its way."""
    from datetime import timedelta

    from sqlalchemy import select

    from models import Deal, Wait, utcnow

    now = utcnow()
    with session_scope() as s:
        rows = s.execute(select(Deal.number, Wait.key, Wait.step, Wait.description, Wait.flow_run_id)
                         .join(Deal, Deal.id == Wait.deal_id)
                         .where(Wait.status == "open", Wait.form_stored_at.is_(None), Wait.flow_run_id.is_not(None),
                                Wait.opened_at < now - timedelta(seconds=older_than_seconds),
                                Wait.opened_at > now - timedelta(days=within_days))).all()
        return [{"deal": r.number, "key": r.key, "step": r.step, "description": r.description,
                 "flow_run_id": r.flow_run_id} for r in rows]


@task(task_run_name="answer-{key}", cache_policy=NO_CACHE)
def record_answer(deal_number: str, key: str, answer: dict[str, Any],
                  sent: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check who answers (the person, their role, the gateway's seal or their signed session) and
    the business rules, then apply the answer; a refused answer is recorded with its reason, with
    nothing else written (but a seal it carried is used up). ``sent``: the answer exactly as
    Prefect stored it, which a seal covers. The answer's proof is in no log or record."""
    with session_scope() as s:
        result = process.answer_wait(s, deal_by_number(s, deal_number), key, answer, keys.answer_check(),
                                     sent=sent)
        s.commit()
        return result


def _auto(step_fn, name: str):
    def run(deal_number: str) -> str:
        with session_scope() as s:
            deal = deal_by_number(s, deal_number)
            outcome = step_fn(s, deal)
            s.commit()
            return outcome
    run.__name__ = step_fn.__name__
    run.__doc__ = step_fn.__doc__
    return task(run, name=name, retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE,
                retry_condition_fn=_retry_on_race)


def _create_receipt(session, deal):
    from models.company import the_company

    return process.create_receipt(session, deal, load_settings().finance_email or the_company(session).email)


def _convert_lead(session, deal):
    return process.convert_lead(session, deal)


convert_lead = _auto(_convert_lead, "convert-lead")
send_estimate = _auto(process.send_estimate, "send-estimate")
create_order = _auto(process.create_order, "create-order")
create_receipt = _auto(_create_receipt, "create-receipt")
create_invoice = _auto(process.create_invoice, "create-invoice")
close_deal = _auto(process.close_deal, "close-deal")

AUTOMATIC = {
    "convert": convert_lead,
    "send_estimate": send_estimate,
    "create_order": create_order,
    "receipt": create_receipt,
    "invoice": create_invoice,
    "close": close_deal,
}


def _retry_on_transient_mail(task, task_run, state) -> bool:  # noqa: ARG001
    try:
        state.result()
    except mailer.TransientMailError:
        return True
    except Exception:
        return False
    return False


def publish_deal_page(deal_number: str) -> str:
    """The deal's page, one artifact per deal under a stable key, kept current in place (one page
    to find, not a version per step); its documents link through the portal."""
    from models.portal import DOCUMENT_LINK_DAYS
    from services.config import UNVERIFIED_NOTE
    from services.links import document_url, run_page
    from services.views import deal_page

    from .ui import markdown_page

    settings = load_settings()
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        markdown = deal_page(s, deal, lambda doc_id: document_url(doc_id, settings),
                             note=None if settings.answer_codes else UNVERIFIED_NOTE, link_days=DOCUMENT_LINK_DAYS,
                             run_link=run_page(deal.flow_run_id))
        key = f"deal-{deal.number.lower()}"
        description = f"{deal.number} · {deal.customer_name}"
    markdown_page(key, markdown, description)
    return key


def mail_pending(deal_number: str) -> bool:
    """Whether the deal has email to send: pending, or claimed by a sender that died before
    handing it to the mail server (so the mail task runs only when it has work)."""
    with session_scope() as s:
        return mailer.has_mail_to_send(s, deal_by_number(s, deal_number).id)


@task(task_run_name="mail-{deal_number}", retries=len(MAIL_RETRY_SECONDS),
      retry_delay_seconds=list(MAIL_RETRY_SECONDS),
      retry_condition_fn=_retry_on_transient_mail, cache_policy=NO_CACHE)
def deliver_mail(deal_number: str) -> list[int]:
    """Send the deal's pending outbox rows (and write its documents). When the mail server stays
    unreachable through the retries, the task fails and the mail stays pending for the outbox run;
    the flow goes on (``flows.deal.send_mail``)."""
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        deal_id = deal.id
        s.commit()
        return mailer.deliver(s, deal_id=deal_id, settings=with_smtp_password(load_settings()))


def redescribe_open_wait(deal_number: str) -> dict[str, Any] | None:
    """The deal's open wait described afresh (what it says changed: a follow-up done, the stage
    moved), written on the wait; None without an open wait, or if nothing it says changed.
    Returns its key, run and new description, for the form's stored description."""
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        wait = deal.open_wait
        if wait is None:
            return None
        text = process.describe_wait(s, deal, wait.step, wait.key)
        if text == wait.description:
            return None
        wait.description = text
        s.commit()
        return {"key": wait.key, "flow_run_id": wait.flow_run_id, "description": text}
