"""Small helpers for the tests: counting what a step wrote."""

from __future__ import annotations

from sqlalchemy import func, select

from models import (
    AuditEntry,
    Document,
    DocumentSequence,
    Email,
    Estimate,
    EstimateRevision,
    Invoice,
    Payment,
    SalesOrder,
    SalesReceipt,
    Shipment,
    StockLevel,
    StockMove,
    Wait,
)
from services.db import session_scope

COUNTED = (Estimate, EstimateRevision, SalesOrder, SalesReceipt, Shipment, Invoice, Payment, StockMove,
           Document, Email)


def counts() -> dict[str, int]:
    """Rows per business table, the sequences and the stock levels: what 'nothing written' means."""
    with session_scope() as s:
        out = {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in COUNTED}
        out.update({f"seq:{q.doc_type}": q.last_value for q in s.scalars(select(DocumentSequence))})
        out.update({f"stock:{lvl.product_id}": lvl.on_hand for lvl in s.scalars(select(StockLevel))})
        return out


def audit_actions(deal_id: int | None = None) -> list[str]:
    with session_scope() as s:
        q = select(AuditEntry.action).order_by(AuditEntry.id)
        if deal_id is not None:
            q = q.where(AuditEntry.deal_id == deal_id)
        return list(s.scalars(q))


def wait_row(deal_number: str, key: str) -> dict:
    from models.deal import deal_by_number
    with session_scope() as s:
        deal = deal_by_number(s, deal_number)
        w = s.scalars(select(Wait).where(Wait.deal_id == deal.id, Wait.key == key)).one()
        return {"status": w.status, "by": w.answered_by, "reason": w.refusal_reason,
                "description": w.description, "flow_run_id": w.flow_run_id}


# --- answering as the scenario's people do: each logged in, every answer signed ---------------------

STAFF_HANDLES = ("sofia", "mark", "qa", "delivery", "finance", "manager")


def login_of(answer: dict):
    """The session of the answer's person (opened once with their code), if they are staff."""
    from dealflow.scenario import TEAM

    by = answer.get("by") if isinstance(answer, dict) else None
    return TEAM.login(by) if by in STAFF_HANDLES else None


def proved(deal_number: str, key: str, answer: dict) -> dict:
    """``answer`` signed by its person for this wait, as `dealflow answer` in a session sends it."""
    login = login_of(answer)
    return {**answer, **login.prove(deal_number, key, answer)} if login else answer


class _SignedRecordAnswer:
    """``tasks.deal_steps.record_answer`` (its ``.fn``: the flow's check) with a signed answer."""

    @staticmethod
    def fn(deal_number: str, key: str, answer: dict) -> dict:
        from tasks.deal_steps import record_answer as task

        return task.fn(deal_number, key, proved(deal_number, key, answer))


record_answer = _SignedRecordAnswer()


def check_answer(deal_number: str, step: str, answer: dict, **kw):
    from dealflow.answers import check_answer as check

    return check(deal_number, step, answer, login=login_of(answer), **kw)


class answers:  # noqa: N801 - used like the module `dealflow.answers`
    """`dealflow.answers` as a logged-in person uses it: every answer signed in their session."""

    @staticmethod
    def answer(deal_number: str, step: str, payload: dict, **kw):
        from dealflow import answers as real

        return real.answer(deal_number, step, payload, login=login_of(payload), **kw)

    @staticmethod
    def wait_closed(deal_number: str, key: str, timeout: float = 60):
        from dealflow import answers as real

        return real.wait_closed(deal_number, key, timeout)


def code_of(handle: str, ahead: int = 0) -> str:
    """The code ``handle``'s authenticator app shows now (or ``ahead`` steps of 30 s later)."""
    from datetime import UTC, datetime

    from models import StaffUser, identity
    from services import keys

    with session_scope() as s:
        person = s.scalars(select(StaffUser).where(StaffUser.handle == handle)).one()
        generator = identity.totp(person, keys.cipher())
    return generator.generate_otp(generator.timecode(datetime.now(UTC)) + ahead)


# --- a deal's flow in this process, answered from a thread ----------------------------------------

def wait_for_run(deal: str, key: str, timeout: float = 60) -> str:
    """Until the deal (or one of its returns or claims) waits at ``key`` with its flow run attached;
    returns the run id."""
    import time

    from models.deal import deal_by_number

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as s:
            d = deal_by_number(s, deal)
            w = next((w for w in [d.open_wait, *d.case_waits] if w is not None and w.key == key), None)
            if w is not None and w.flow_run_id:
                return w.flow_run_id
        time.sleep(0.1)
    raise TimeoutError(f"{deal} never waited at {key}")


def in_background(actions):
    """Run ``actions`` one after the other in a thread; returns it and the errors it met."""
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            for act in actions:
                act()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, errors


def resume_as_the_ui(deal: str, key: str, run_input: dict, *, sealed: bool = False):
    """Answer ``key`` as the Prefect UI's Resume form does: straight to the API, none of the CLI's
    checks (``sealed``: through the gateway, as its signed-in ``by``); then wait until the flow
    has recorded it (answered or refused): the wait as closed."""
    import time
    from uuid import UUID

    from prefect.flow_runs import resume_flow_run

    from dealflow.answers import wait_closed

    run_id = wait_for_run(deal, key)
    for attempt in range(100):
        try:
            sent = (as_the_gateway_sends if sealed else as_the_form_sends)(deal, key, run_id, run_input)
            resume_flow_run(UUID(run_id), run_input=sent)
            break
        except Exception:  # the wait row is written a moment before the run is Paused
            if attempt == 99:
                raise
            time.sleep(0.1)
    return wait_closed(deal, key)


def as_the_form_sends(deal: str, key: str, run_id: str, run_input: dict) -> dict:
    """``run_input`` as the wait's stored form sends it: a product picked from its list (the
    label, not the bare SKU), an empty optional field left out."""
    import json
    from uuid import UUID

    from prefect import get_client

    from flows.inputs import INPUTS
    from models.deal import deal_by_number
    from services.db import session_scope

    with session_scope() as s:
        step = next(w.step for w in deal_by_number(s, deal).waits if w.key == key)
    with get_client(sync_client=True) as client:
        keyset = client.read_flow_run(UUID(run_id)).state.state_details.run_input_keyset or {}
        schema = json.loads(client.read_flow_run_input(UUID(run_id), keyset["schema"])) if keyset else {}
    from models.waits import KINDS

    # its choices as the form offers them ('ask for changes', 'bank transfer'); a signature made
    # over the recorded codes still holds: the flow reads the words back as those codes
    return INPUTS[step].fit_answer(KINDS[step].as_offered({k: v for k, v in run_input.items() if v is not None}),
                                   schema)


def answer_as_staff(deal: str, key: str, move) -> None:
    """A scripted person's answer (``move``) to ``key``, as the deal stands at that wait, signed
    over the answer as its form makes it (as the CLI signs), sent as the UI's Resume does."""
    from dealflow.scenario import TEAM, answer_for
    from flows.inputs import INPUTS

    wait_for_run(deal, key)
    answer = INPUTS[move.step].model_validate(answer_for(deal, move)).model_dump(mode="json")
    resume_as_the_ui(deal, key, TEAM.signed(deal, key, answer))


def run_deal_with(deal: str, people, wait_timeout: int = 60, join_timeout: float = 120) -> dict:
    """Run the deal's flow here while ``people`` (a function) answer its waits from a thread;
    what went wrong in that thread fails the test. Returns the flow's result."""
    from flows.deal import deal_flow

    thread, errors = in_background([people])
    try:
        return deal_flow(deal_number=deal, poll_interval=1, wait_timeout=wait_timeout)
    finally:
        thread.join(timeout=join_timeout)
        assert not errors, errors


def as_the_gateway_sends(deal: str, key: str, run_id: str, answer: dict) -> dict:
    """``answer`` as a signed-in person's Resume reaches Prefect through the gateway: as the form
    sends it, ``by`` the person's handle, sealed (see ``dealflow.gateway``)."""
    from models import identity
    from services import keys

    run_input = {k: v for k, v in as_the_form_sends(deal, key, run_id, answer).items()
                 if k not in identity.PROOF_FIELDS}
    return {**run_input, "seal": identity.make_seal(keys.seal_key(), deal, key, run_input)}


def a_backend_waits_for_a_lock(timeout: float = 20) -> bool:
    """Until another PostgreSQL backend of this database waits for a lock (a race test's second
    writer is queued behind the first); False if none did within ``timeout``."""
    import time

    from sqlalchemy import text

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as probe:
            if probe.scalar(text("select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                                 "and datname = current_database()")):
                return True
        time.sleep(0.05)
    return False
