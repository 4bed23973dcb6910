"""A deal as use cases, without Prefect: starting one, looking at one or all of them, and its
steps: where it stands, opening a wait, recording an answer, an automatic step, its mail, its
page. Each takes the deal's number (never an ORM object), is one unit of work and returns plain
data; each step is idempotent by business key, so a run that repeats one repeats nothing.
``tasks.deal_steps`` makes Prefect tasks of the stages; ``application.driver`` runs a deal's
plan with them, for the flow and for the scripted deals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import DomainError, process
from models.company import the_company
from models.deal import Deal, Wait, deal_by_number
from models.states import DealStatus, WaitStatus
from services import keys, mailer
from services.config import UNVERIFIED_NOTE, load_settings, with_smtp_password

from .uow import unit_of_work

# the orchestrator's answer for a recorded run: the state name of a live run, None if it is not
Liveness = Callable[[str], str | None]


def start_deal(lead_id: int, by: str, live_state: Liveness | None = None) -> dict[str, Any]:
    """The lead's deal, started by ``by`` (one per lead: starting it again returns the first);
    its ``deal`` number and ``status``. Refused (``DealAlreadyRunning``) while a run of it is
    live (``live_state``), so that a second driver does not open every wait twice, and when the
    deal is over already."""
    with unit_of_work() as s:
        deal = process.start_deal(s, lead_id, by=by)
        number, status = deal.number, str(deal.status)
        if status == DealStatus.OPEN and live_state is not None:
            deal.refuse_second_run(live_state)
    if status != DealStatus.OPEN:
        raise DomainError(f"lead: its deal {number} is already {status}")
    return {"deal": number, "status": status}


def deal_summary(deal_number: str, history: bool = False) -> dict[str, Any]:
    """Everything about one deal (``services.views.deal_summary``): stage, waits, documents,
    money, mail, the serial numbers each shipment took, and after the sale its ``returns`` and
    warranty ``claims`` (``application.after_sale``). With ``history``, also its ``history``: every
    entry of the audit log about it, oldest first (``services.views.deal_history``)."""
    from services.views import deal_history
    from services.views import deal_summary as summary

    from .after_sale import after_sale

    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        cases = after_sale(s, deal)  # first: the summary's credit notes then find their returns loaded
        return {**summary(s, deal), **cases, **({"history": deal_history(s, deal)} if history else {})}


def list_deals(status: str | None = None, waiting_for: str | None = None) -> list[dict[str, Any]]:
    """Every deal, newest first: where each stands and the key of the wait it is at (``status``:
    only those; ``waiting_for``: only those waiting for this role, or for the customer)."""
    from services.views import where_it_stands

    with unit_of_work() as s:
        q = select(Deal).order_by(Deal.id.desc())
        if status:
            q = q.where(Deal.status == status)
        deals = list(s.scalars(q))
        if waiting_for:
            deals = [d for d in deals if d.open_wait is not None and (
                waiting_for in d.open_wait.role_list or (waiting_for == "customer" and d.open_wait.step == "decision"))]
        return [{"deal": d.number, "customer": d.customer_name, "status": d.status, "where": where_it_stands(d),
                 "owner": d.owner.handle, "waiting_for": d.open_wait.key if d.open_wait else ""} for d in deals]


def flow_run_of(deal_number: str) -> str | None:
    """The id of the flow run recorded as driving the deal, if any."""
    with unit_of_work() as s:
        return deal_by_number(s, deal_number).flow_run_id


def cancelled_reason(deal_number: str) -> str | None:
    """Why the deal was cancelled, if it was (a run paused in a process no server reaches looks
    here, to stop waiting for an answer that will not come); None while it is not."""
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        return deal.lost_reason if deal.status == DealStatus.CANCELLED else None


def waits_of(deal_number: str) -> list[dict[str, Any]]:
    """The deal's waits in the order they were opened: key, step, status, who answered."""
    with unit_of_work() as s:
        return [{"key": w.key, "step": w.step, "status": w.status, "answered_by": w.answered_by}
                for w in deal_by_number(s, deal_number).waits]


def attach_run(deal_number: str, flow_run_id: str, live_state: Liveness) -> int:
    """The run ``flow_run_id`` drives the deal from now on; ``DealAlreadyRunning`` while another
    run of it is live (``live_state``: the state name of a live run, None if it is not)."""
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        process.attach_flow_run(s, deal, flow_run_id, live_state)
        return deal.id


def run_tags(deal_number: str, step: str) -> list[str]:
    """Tags for the deal's run, for the UI's filters: customer, owner, the current step, and whose
    turn it is (``waiting-for:ROLE`` or ``waiting-for:customer``, ``assignee:HANDLE``)."""
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        slug = "".join(c if c.isalnum() else "-" for c in deal.customer_name.lower()).strip("-")[:40]
        tags = ["dealflow", f"customer:{slug}", f"owner:{deal.owner.handle}", f"step:{step}"]
        waiting_for, assignee = process.whose_turn(deal, process.next_step(s, deal))
        tags += [f"waiting-for:{waiting_for}"] if waiting_for else []
        tags += [f"assignee:{assignee}"] if assignee else []
        return tags


def plan_next_step(deal_number: str) -> dict[str, Any]:
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        step = process.next_step(s, deal)
        wait = deal.open_wait if step.kind == "wait" else None
        opened = ({"description": wait.description, "flow_run_id": wait.flow_run_id,
                   **process.form_start(s, deal, step.name, step.key)}
                  if wait is not None and wait.key == step.key else None)
        return {"name": step.name, "kind": step.kind, "key": step.key, "roles": list(step.roles),
                "facts": step.facts, "deal_status": deal.status, "opened": opened,
                "reason": deal.lost_reason if not deal.is_open else ""}


def open_wait(deal_number: str, step: str, key: str, flow_run_id: str | None) -> dict[str, Any]:
    """Write the wait (who may answer, since when, what the form says) and return what its form
    starts with."""
    with unit_of_work() as s:
        deal = locked_deal(s, deal_number)
        planned = _planned(s, deal, step, key)
        if planned.key != key:
            raise DomainError(f"{deal_number} is at {planned.key}, not {key}")
        described: list[str] = []  # described only when the wait is new

        def describe() -> str:
            described.append(process.describe_wait(s, deal, step, key))
            return described[0]

        wait = process.open_wait(s, deal, planned, describe, flow_run_id)
        s.commit()
        return {"wait_id": wait.id, "status": wait.status, "description": wait.description,
                "answer": wait.answer, "new": bool(described), **process.form_start(s, deal, step, key)}


def _planned(s: Session, deal: Deal, step: str, key: str) -> process.Step:
    """Where the deal, or the case (a return, a claim) the wait ``key`` is of, stands now."""
    kind = process.KINDS.get(step)
    if kind is not None and kind.case is not None:
        from models.cases import next_case_step

        return next_case_step(s, kind.of(s, deal, key))
    return process.next_step(s, deal)


def form_start(deal_number: str, key: str) -> dict[str, Any]:
    """What the form of the wait ``key`` starts with and offers (recovery stores a lost form
    again with them): ``prefill`` and ``choices``."""
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        wait = next((w for w in deal.waits if w.key == key), None)
        return process.form_start(s, deal, wait.step, key) if wait is not None else {}


def form_stored(deal_number: str, key: str, flow_run_id: str) -> None:
    """Confirm that the run waiting at ``key`` has its form stored."""
    from models import utcnow

    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        s.execute(update(Wait).where(Wait.deal_id == deal.id, Wait.key == key, Wait.flow_run_id == flow_run_id)
                  .values(form_stored_at=utcnow()))


def unconfirmed_waits(older_than_seconds: float, within_days: int = 2) -> list[dict[str, Any]]:
    """Open waits whose run has not confirmed its form stored for a while: a run that died
    between suspending and storing its form, or one that is still on its way."""
    from models import utcnow

    now = utcnow()
    with unit_of_work() as s:
        rows = s.execute(select(Deal.number, Wait.key, Wait.step, Wait.description, Wait.flow_run_id)
                         .join(Deal, Deal.id == Wait.deal_id)
                         .where(Wait.status == WaitStatus.OPEN, Wait.form_stored_at.is_(None),
                                Wait.flow_run_id.is_not(None),
                                Wait.opened_at < now - timedelta(seconds=older_than_seconds),
                                Wait.opened_at > now - timedelta(days=within_days))).all()
        return [{"deal": r.number, "key": r.key, "step": r.step, "description": r.description,
                 "flow_run_id": r.flow_run_id} for r in rows]


def record_answer(deal_number: str, key: str, answer: dict[str, Any],
                  sent: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check who answers (the person, their role, the gateway's seal or their signed session) and
    the business rules, then apply the answer; a refused answer is recorded with its reason, with
    nothing else written (but a seal it carried is used up). ``sent``: the answer exactly as
    Prefect stored it, which a seal covers. The answer's proof is in no log or record. The deal's
    row is locked first: an answer and a cancel of the deal happen one after the other."""
    with unit_of_work() as s:
        return process.answer_wait(s, locked_deal(s, deal_number), key, answer, keys.answer_check(), sent=sent)


def locked_deal(s: Session, deal_number: str) -> Deal:
    """The deal, its row read afresh and locked until the unit of work ends (SELECT … FOR UPDATE;
    SQLite's write lock serves the same end): its cancel and its own steps (an answer recorded,
    an automatic step, a wait opened) happen one after the other, never interleaved, so that a
    cancel never misses a payment recorded at the same moment, nor an order made from it."""
    deal = deal_by_number(s, deal_number)
    s.scalars(select(Deal).where(Deal.id == deal.id).with_for_update()
              .execution_options(populate_existing=True)).one()
    return deal


def _create_receipt(session: Session, deal: Deal) -> str:
    return process.create_receipt(session, deal, load_settings().finance_email or the_company(session).email)


# the automatic steps of the plan (``models.plan.AUTOMATIC_STEPS``), by name
AUTOMATIC: dict[str, Callable[[Session, Deal], str]] = {
    "convert": process.convert_lead,
    "send_estimate": process.send_estimate,
    "create_order": process.create_order,
    "deposit_invoice": process.create_deposit_invoice,
    "receipt": _create_receipt,
    "invoice": process.create_invoice,
    "close": process.close_deal,
}


def run_automatic(name: str, deal_number: str) -> str:
    """The automatic step ``name`` of the deal: what it did (or that it was done already, or that
    the deal was cancelled or lost since its run planned it: then nothing)."""
    with unit_of_work() as s:
        deal = locked_deal(s, deal_number)
        if not deal.is_open:
            return f"{deal.number} is {deal.status}: {name} not run"
        return AUTOMATIC[name](s, deal)


def mail_pending(deal_number: str) -> bool:
    """Whether the deal has email to send: pending, or claimed by a sender that died before
    handing it to the mail server."""
    with unit_of_work() as s:
        return mailer.has_mail_to_send(s, deal_by_number(s, deal_number).id)


def deliver_mail(deal_number: str) -> list[int]:
    """Send the deal's pending outbox rows (and write its documents); a mail server that cannot
    take them raises ``mailer.TransientMailError`` and they stay pending."""
    with unit_of_work() as s:
        deal_id = deal_by_number(s, deal_number).id
        s.commit()
        return mailer.deliver(s, deal_id=deal_id, settings=with_smtp_password(load_settings()))


def deal_page(deal_number: str) -> tuple[str, Any, str]:
    """The deal's page as Markdown: (its artifact key, the page, its description). Its documents
    link through the portal; its returns and claims link to their runs' pages."""
    from models.portal import DOCUMENT_LINK_DAYS
    from services.config import run_page
    from services.links import document_url
    from services.views import deal_page as page

    from .after_sale import after_sale, after_sale_page

    settings = load_settings()
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        cases = after_sale_page(after_sale(s, deal), deal.currency, run_page)
        markdown = page(s, deal, lambda doc_id: document_url(doc_id, settings),
                        note=None if settings.answer_codes else UNVERIFIED_NOTE, link_days=DOCUMENT_LINK_DAYS,
                        run_link=run_page(deal.flow_run_id), after_sale=cases)
        return f"deal-{deal.number.lower()}", markdown, f"{deal.number} · {deal.customer_name}"


def redescribe_open_wait(deal_number: str) -> dict[str, Any] | None:
    """The deal's open wait described afresh (what it says changed: a follow-up done, the stage
    moved), written on the wait; None without an open wait, or if nothing it says changed.
    Returns its key, run and new description, for the form's stored description."""
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        wait = deal.open_wait
        if wait is None:
            return None
        text = process.describe_wait(s, deal, wait.step, wait.key)
        if text == wait.description:
            return None
        wait.description = text
        return {"key": wait.key, "flow_run_id": wait.flow_run_id, "description": text}


# the orchestrator's way to end a deal's run: (flow run id, message) -> what happened, in words
RunStopper = Callable[[str, str], str]


def cancel_deal(deal_number: str, by: str, reason: str, *, settle: str = "refund", method: str = "bank_transfer",
                proof: dict[str, Any] | None = None, stop_run: RunStopper | None = None) -> dict[str, Any]:
    """A manager (``by``, proven by ``proof``: see ``application.staff.acting_manager``, over
    ``cancel_payload``) cancels the deal before its first shipment (``models.cancellation``), in
    one unit of work that holds the deal's row. After the commit, the deal's flow run is ended
    Cancelled with the reason (``stop_run``, if the deal has a run) and its mail is sent (the
    cancellation, the credit note). Repeated, or run again after a process died in between, the
    cancel itself is not done twice: only the run's end and the mail left pending are tried again.

    Returns ``deal``, ``already`` (it was cancelled before), ``order``, ``reason``, ``credit_note``
    (number, invoice, amount, settlement, refunded, kept_as_credit, method; None without a deposit
    invoice), ``flow_run_id``, ``run`` (what became of it, in words; None without one or without
    ``stop_run``), ``mail_sent`` (the emails sent now) and ``mail_left`` (why some wait in the
    outbox, if they do)."""
    from models import cancellation
    from models.billing import METHOD_WORDS, PAYMENT_METHODS
    from models.credit_notes import CreditNote
    from models.errors import ValidationError

    from .staff import acting_manager

    payload = cancel_payload(by, reason, settle, method)  # as typed: what a session signed
    method = METHOD_WORDS.get(str(method).strip().lower(), str(method).strip().lower())
    if method not in PAYMENT_METHODS:
        raise ValidationError("method", f"must be one of {', '.join(PAYMENT_METHODS)} (how a refund is paid)")
    with unit_of_work() as s:
        deal = locked_deal(s, deal_number)
        person, _ = acting_manager(s, by, proof or {}, subject=deal_number, action="cancel", what="cancel an order",
                                   payload=payload)
        done = cancellation.cancel_deal(s, deal, person, reason, settle, method,
                                        finance_email=load_settings().finance_email or the_company(s).email)
        note = (s.scalars(select(CreditNote).where(CreditNote.number == done.credit_note)).one()
                if done.credit_note else None)
        out: dict[str, Any] = {
            "deal": done.deal, "already": done.already, "order": done.order, "reason": done.reason,
            "by": person.handle, "currency": deal.currency, "flow_run_id": done.flow_run_id,
            "credit_note": {"number": note.number, "invoice": note.invoice.number, "amount": str(note.amount),
                            "settlement": note.settlement, "refunded": str(note.refunded),
                            "kept_as_credit": str(note.kept_as_credit), "method": note.refund_method or None}
            if note else None}
    out["run"] = None
    if done.flow_run_id and stop_run is not None:
        try:
            out["run"] = stop_run(done.flow_run_id, f"{done.deal} cancelled: {done.reason}"[:1000])
        except Exception as exc:  # noqa: BLE001 - the deal is cancelled; the run is ended when this is repeated
            out["run"] = f"not reached ({type(exc).__name__}: {str(exc)[:200]})"
    out["mail_sent"], out["mail_left"] = [], None
    try:
        out["mail_sent"] = deliver_mail(done.deal)
    except mailer.TransientMailError as exc:
        out["mail_sent"], out["mail_left"] = exc.sent, str(exc)[:300]
    return out


def cancel_payload(by: str, reason: str, settle: str, method: str) -> dict[str, Any]:
    """What a manager's session signs for ``deal cancel`` (with the deal's number as typed)."""
    return {"by": by, "reason": reason, "settle": settle, "method": method}
