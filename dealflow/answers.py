"""Answering a wait from outside the flow (the CLI, the demo's scripted people).

The answer is validated twice before the flow is resumed, so a mistake is one clear line and
nothing moves: against the step's form (types), then against the business rules in a
transaction that is rolled back (``application.answers``, which does all that this door does in
the database). The flow checks again after the resume (the UI skips us).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import UUID

import pydantic

from application import answers as use_case
from application.answers import ClosedWait, OpenWait
from dealflow.prefect_api import ensure_api
from flows.inputs import INPUTS
from flows.waits import note_resumed, paused_here, restore_form, runs_here, watch
from models import DomainError, ValidationError, identity
from services import keys
from services.orchestration.forms import stored_schema

from .login import Login


def _pydantic_message(exc: pydantic.ValidationError) -> ValidationError:
    """The first error, in the team's words: 'Line 2, quantity: must be a whole number'."""
    from models.text import field_words, rule_words

    err = exc.errors()[0]
    where = field_words(*(p + 1 if isinstance(p, int) else p for p in err["loc"]))
    return ValidationError(where, rule_words(err["type"], err["msg"], err.get("ctx")))


def read_form(step: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The answer as the step's form reads it (its Prefect form, ``flows.inputs``): a field the
    form does not have, or a value not of its type, is one line naming the field."""
    INPUTS[step].check_fields(payload)
    try:
        return INPUTS[step].model_validate(payload).model_dump(mode="json")
    except pydantic.ValidationError as exc:
        raise _pydantic_message(exc) from None


def check_answer(deal_number: str, step: str, payload: dict[str, Any], *, code: str | None = None,
                 login: Login | None = None, door: str = "command line",
                 signed_in: str | None = None) -> tuple[OpenWait, dict[str, Any]]:
    """The open wait and the normalised answer with its proof (``code``, or signed in ``login``'s
    session); raises a DomainError naming the field and rule. The proof is checked as the flow
    will check it, but a code is not used up here (a wrong one is counted); ``answer`` then signs
    in with it for this one answer, so that no code is ever sent in an answer."""
    return use_case.check_answer(deal_number, step, payload, read_form=read_form, code=code, login=login, door=door,
                                 signed_in=signed_in)


def answer(deal_number: str, step: str, payload: dict[str, Any], *, code: str | None = None,
           login: Login | None = None, settle_timeout: float = 30, door: str = "command line") -> OpenWait:
    """Validate and check the proof, then resume the deal's flow run with the answer. Returns the
    wait answered. A refusal (a rule, a type, a proof, a wait that is not open, a resume the
    server refuses) is written to the audit log, once, before it is raised: the flow never saw
    this answer, and a code it carried is not used up."""
    if login is not None and not payload.get("by"):
        payload = {**payload, "by": login.handle}
    try:
        return _answer(deal_number, step, payload, code=code, login=login, door=door,
                       settle_timeout=settle_timeout)
    except DomainError as exc:
        tried = {"code": code} if code else {"session": login.session} if login else {}
        record_refusal(deal_number, step, {**payload, **tried}, str(exc), door)
        raise


def record_refusal(deal_number: str, step: str, payload: dict[str, Any], reason: str,
                   door: str = "command line") -> None:
    use_case.record_refusal(deal_number, step, payload, reason, door)


def _answer(deal_number: str, step: str, payload: dict[str, Any], *, code: str | None, login: Login | None,
            door: str, settle_timeout: float) -> OpenWait:
    wait, data = check_answer(deal_number, step, payload, code=code, login=login, door=door)
    if "code" in data:  # a one-off code: it opens a session for this answer, which signs it
        code = data.pop("code")
        if keys.answer_check(door).codes_required:
            data = {**data, **one_off_login(data["by"], code, door).prove(wait.deal, wait.key, data)}
    return resume_wait(wait, data, settle_timeout)


def one_off_login(handle: str, code: str, door: str, minutes: float = 10) -> Login:
    """A session opened with ``code`` (used up) for one answer: the answer carries its signature,
    never the code (Prefect keeps answers where every holder of its credential reads them)."""
    return Login.opened(use_case.open_answer_session(handle, code, door, hours=minutes / 60))


def answer_signed_in(deal_number: str, step: str, payload: dict[str, Any], handle: str,
                     door: str = "gateway", settle_timeout: float = 30) -> OpenWait:
    """An answer by ``handle``, signed in at the gateway (their session is the proof): checked as
    `dealflow answer` checks it, then sealed (see ``models.identity.make_seal``) and sent."""
    try:
        wait, data = check_answer(deal_number, step, payload, door=door, signed_in=handle)
        return resume_wait(wait, data, settle_timeout, seal=True)
    except DomainError as exc:
        record_refusal(deal_number, step, {**payload, "by": handle}, str(exc), door)
        raise


def resume_wait(wait: OpenWait, data: dict[str, Any], settle_timeout: float = 30, *,
                seal: bool = False) -> OpenWait:
    """Resume the deal's run with ``data`` once it is paused at exactly this wait (its form
    stored); a DomainError if it is not there within ``settle_timeout`` seconds (it moved on, or
    another answer got there first). The CLI and the customer portal both come through here."""
    from services.orchestration import runs
    from services.orchestration.runs import RunNotFound

    deal_number = wait.deal
    if not wait.flow_run_id:
        raise DomainError(f"step: {deal_number} has no flow run attached; start it with `dealflow deal start`")
    ensure_api()
    run_id = UUID(wait.flow_run_id)
    deadline = time.monotonic() + settle_timeout
    with runs.client() as client, watch(deal_number) as moved:
        while True:  # the wait row is written a moment before the run reports Paused
            moved.clear()
            form = paused_here(wait.flow_run_id, wait.key)  # paused in this process: no need to ask
            if form is not None:
                break
            try:
                state = runs.state_of(client, run_id)
            except RunNotFound:
                raise DomainError(f"step: flow run {run_id} of {deal_number} is not known to this "
                                  f"Prefect API; is PREFECT_API_URL the one the deal runs on?") from None
            if state and state.is_paused() and state.state_details.pause_key == wait.key:
                form = stored_schema(client, run_id, state)
                if form is not None:
                    break
                if _seconds_since(state) > 5:  # its run died between suspending and storing the form
                    restore_form(client, wait.deal, wait.key, wait.step, wait.description, wait.flow_run_id)
            if time.monotonic() > deadline:
                at = state.state_details.pause_key if state and state.is_paused() else None
                raise DomainError(f"step: {deal_number}'s flow run is {state.name if state else 'unknown'}"
                                  + (f" at {at}" if at and at != wait.key else "")
                                  + (", but the form of its wait is not stored" if at == wait.key else "")
                                  + f", not waiting at {wait.key}")
            moved.wait(0.1)  # set at once when the run pauses in this process
        # as the stored form has it (the server checks the answer against it): a SKU as the
        # catalogue select lists it, a choice in the words the form offers (or the code, in a form
        # stored before forms spoke in words); an empty optional field left out rather than null.
        # A signature covers the answer as the flow reads it back (codes), a seal what is sent
        data = INPUTS[wait.step].fit_answer({k: v for k, v in data.items() if v is not None}, form)
        if seal:  # over the answer exactly as it is sent, and so stored
            data = {**data, "seal": identity.make_seal(keys.seal_key(), deal_number, wait.key, data)}
        # the server resumes only a paused run, and checks the answer against the stored form
        resumed, reason = runs.resume(client, run_id, data)
        if resumed == "accepted":
            note_resumed(wait.flow_run_id, wait.key, data)  # a run paused in this process goes on at once
            return wait
        if resumed == "aborted":  # not paused (any more): why?
            state = runs.state_of(client, run_id)
            if state is not None and (state.is_running() or state.is_scheduled() or state.is_paused()):
                raise DomainError(f"step: {wait.key} of {deal_number} was answered by someone else a moment ago")
            raise DomainError(f"step: {deal_number}'s flow run is {state.name if state else 'unknown'}, "
                              f"not waiting at {wait.key}")
    raise DomainError(f"step: the Prefect server refused the answer to {wait.key}: {reason}")


def wait_for_turn(deal_number: str, step: str, stop: threading.Event | None = None,
                  timeout: float | None = None) -> str | None:
    """Block until the deal waits at ``step`` with a flow run attached; the wait's key (None if
    ``stop`` was set first). What a script that plays the people does before each answer."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with watch(deal_number) as moved:
        while stop is None or not stop.is_set():
            moved.clear()
            key = use_case.turn_at(deal_number, step)
            if key is not None:
                return key
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{deal_number} did not come to {step} in {timeout:.0f} s")
            _until_it_moves(moved, deal_number, deadline)
    return None


def _until_it_moves(moved: threading.Event, deal_number: str, deadline: float | None) -> None:
    """Wait before looking at the database again, never past ``deadline``: until the deal moves,
    if its flow runs in this process (which says so, ``flows.waits.watch``: the look is then
    only a safety net, once a second), else a tenth of a second."""
    pause = 1.0 if runs_here(deal_number) else 0.1
    moved.wait(pause if deadline is None else min(pause, max(deadline - time.monotonic(), 0)))


def _seconds_since(state) -> float:
    from datetime import UTC, datetime

    return (datetime.now(UTC) - state.timestamp).total_seconds()


wait_state = use_case.wait_state  # the gateway's API reads it from here


def wait_closed(deal_number: str, key: str, timeout: float = 60) -> ClosedWait:
    """Block until the flow has recorded the answer to ``key`` (answered or refused)."""
    deadline = time.monotonic() + timeout
    with watch(deal_number) as moved:
        while True:
            moved.clear()
            wait = wait_state(deal_number, key)
            if wait is not None and wait.status != "open":
                return wait
            if time.monotonic() > deadline:
                raise TimeoutError(f"{deal_number}: no answer recorded for {key} after {timeout:.0f} s")
            _until_it_moves(moved, deal_number, deadline)
