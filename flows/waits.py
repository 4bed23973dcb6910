"""Every human step of a deal goes through ``wait_for_answer``.

The wait is recorded in the database (who may answer, since when), the flow waits for a typed
form under a deterministic key (``estimate-rev-2``, ``qa-attempt-1``, ``payment-2-retry-1``), and
the answer is checked again after the resume: a person without the step's role, or an answer
that breaks a rule, is refused and the deal waits again under the next key, with the reason in
the form's description.

How it waits depends on where the run lives:
- from a deployment (a worker started it), the run **suspends**: its process ends, it holds
  nothing while the deal waits for days, and after the resume a worker runs it again from its
  top; the flow then goes straight to this wait (the database says so) and Prefect hands back
  the stored answer for the key at once;
- in-process (the demo, the tests, ``deal start`` without a server deployment) it **pauses**,
  because suspending needs a deployment: the run is Paused on the server with its form, as
  Prefect's ``pause_flow_run`` leaves it, and the flow's process blocks until the resume. Prefect's
  own loop sleeps a whole ``poll_interval`` before it first looks, so every answer cost at least a
  second; ``_pause_here`` wakes at once when the resume came from this same process
  (``note_resumed``: the demo's scripted people, a portal or CLI answer in the same process), and
  otherwise looks every ``poll_interval`` seconds.

People answering in the same process as the flow (the demo, a benchmark) need not poll either:
the flow says when the deal moves (``watch``), and which wait it is paused at with which form
(``paused_here``), so an answer costs the resume and nothing else on the server.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from prefect.input import RunInput

from application.deals import cancelled_reason
from services.orchestration import forms, pausing, runs
from services.orchestration.pausing import runs_from_deployment
from tasks.deal_steps import (
    form_start,
    form_stored,
    open_wait,
    publish_deal_page,
    record_answer,
    unconfirmed_waits,
)

from .inputs import INPUTS


def wait_for_answer(deal_number: str, step: dict[str, Any], flow_run_id: str, *,
                    poll_interval: int, timeout: int) -> dict[str, Any]:
    opened = step.get("opened")
    if opened is None or opened["flow_run_id"] != flow_run_id:  # else a re-entry: the wait is written
        opened = open_wait(deal_number, step["name"], step["key"], flow_run_id)
        if opened["new"]:  # the page shows the new wait
            publish_deal_page(deal_number)
    form = INPUTS[step["name"]].form(opened["description"], opened.get("prefill"), opened.get("choices"))
    if runs_from_deployment():
        def suspended() -> None:
            # Prefect marks the run Suspended, then stores the form: only now are both done. A
            # failure to note it must not fail a run the server already holds as suspended:
            # recovery finds the wait and notes it then.
            try:
                form_stored(deal_number, step["key"], flow_run_id)
            except Exception:  # noqa: BLE001
                logging.getLogger(__name__).warning("%s %s: could not note its form as stored", deal_number,
                                                    step["key"], exc_info=True)

        answer = pausing.suspend(form, step["key"], suspended)
    else:
        answer = _pause_here(deal_number, form, step["key"], timeout=timeout, poll_interval=poll_interval,
                             stored=lambda: form_stored(deal_number, step["key"], flow_run_id))
    try:
        data = answer.model_dump(mode="json")
        sent = None
        if data.get("seal"):
            # a sealed answer is read once more, exactly as stored, and that one reading is both
            # checked against its seal and applied (never one reading checked, another applied)
            sent = as_stored(step["key"], flow_run_id)
            try:
                data = form.model_validate(sent).model_dump(mode="json") if sent is not None else data
            except ValueError:  # pydantic's ValidationError: not an answer of this form
                sent = None
        return record_answer(deal_number, step["key"], data, sent)
    finally:
        moved(deal_number)


def as_stored(key: str, flow_run_id: str) -> dict[str, Any] | None:
    """The answer to ``key`` exactly as Prefect stored it (not as the form reads it): what the
    gateway's seal covers. None if it cannot be read (the seal is then refused, and the deal waits
    again)."""
    suspended = runs_from_deployment()
    try:
        stored = forms.stored_answer(key, flow_run_id, suspended=suspended)
    except Exception:  # noqa: BLE001 - said by the refusal
        logging.getLogger(__name__).warning("%s: the stored answer could not be read", key, exc_info=True)
        return None
    return stored if isinstance(stored, dict) else None


# What this process knows of its own runs, so that people answering in the same process (the
# demo's, a benchmark's, the portal beside an in-process deal) wait on an event, not a poll:
CANCEL_LOOK_SECONDS = 5  # how often a run paused here asks the database whether its deal was cancelled
_lock = threading.Lock()
_paused: dict[str, _PausedHere] = {}  # run id -> the wait it is paused at here, form stored
_watchers: dict[str, set[threading.Event]] = {}  # deal number -> events set when the deal moves here
_running: dict[str, int] = {}  # deal number -> deal flows running in this process


def _deal(number: str) -> str:
    return str(number).strip().upper()


class _PausedHere:
    def __init__(self, key: str):
        self.key = key
        self.schema: dict | None = None  # the form as this process stored it
        self.answer: dict[str, Any] | None = None  # what this process resumed it with
        self.resumed = threading.Event()


def note_resumed(flow_run_id: str, key: str, run_input: dict[str, Any]) -> None:
    """Wake this process's run ``flow_run_id`` paused at ``key`` now, with the answer it was
    resumed with (called once the server accepted the resume, and stored ``run_input`` as the
    answer). Only at that key: by the time this is called the run may have noticed the resume
    itself, gone on and paused at its next wait, which this answer is not for."""
    with _lock:
        here = _paused.get(str(flow_run_id))
        if here is None or here.key != key:
            return
        here.answer = run_input
    here.resumed.set()


def paused_here(flow_run_id: str, key: str) -> dict | None:
    """The form's schema if this process's run ``flow_run_id`` is paused at ``key`` with the form
    this process stored (the server holds the same; no need to ask it), else None."""
    with _lock:
        here = _paused.get(str(flow_run_id))
        return here.schema if here is not None and here.key == key else None


def runs_here(deal_number: str) -> bool:
    """Whether the deal's flow runs in this process (then its moves are signalled, see ``watch``)."""
    with _lock:
        return _running.get(_deal(deal_number), 0) > 0


@contextmanager
def running_here(deal_number: str):
    """The deal's flow runs in this process while in this block."""
    deal_number = _deal(deal_number)
    with _lock:
        _running[deal_number] = _running.get(deal_number, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _running[deal_number] -= 1
            if not _running[deal_number]:
                del _running[deal_number]


@contextmanager
def watch(deal_number: str):
    """An event set whenever the deal moves in this process (a wait paused with its form stored,
    an answer recorded, the run ended): a loop that polls the database for the deal can wait on
    it instead of sleeping, and look again at once. Clear it before looking."""
    deal_number = _deal(deal_number)
    event = threading.Event()
    with _lock:
        _watchers.setdefault(deal_number, set()).add(event)
    try:
        yield event
    finally:
        with _lock:
            _watchers[deal_number].discard(event)
            if not _watchers[deal_number]:
                del _watchers[deal_number]


def moved(deal_number: str) -> None:
    with _lock:
        events = list(_watchers.get(_deal(deal_number), ()))
    for event in events:
        event.set()


def _pause_here(deal_number: str, form: type[RunInput], key: str, *, timeout: float, poll_interval: float,
                stored) -> RunInput:
    """Pause the current run at ``key`` for ``form`` and block until it is resumed; the answer
    (``pausing.pause``), noticing at once a resume from this process. ``stored`` is called once
    the form is stored."""
    run_id = pausing.current_run_id()
    here = _PausedHere(key)
    with _lock:
        _paused[run_id] = here

    def form_stored_here(schema: dict | None) -> None:
        stored()
        with _lock:
            here.schema = schema
        moved(deal_number)

    looked = [time.monotonic()]

    def resumed_here(seconds: float) -> dict[str, Any] | None:
        if here.resumed.wait(seconds):
            return here.answer
        # cancelled by `deal cancel` from a process that cannot reach this run's server (a deal
        # started without `dealflow up` runs on its own temporary server): the database says so
        if time.monotonic() - looked[0] >= CANCEL_LOOK_SECONDS:
            looked[0] = time.monotonic()
            if (reason := cancelled_reason(deal_number)) is not None:
                raise pausing.RunEnded("Cancelled", reason)
        return None

    try:
        return pausing.pause(form, key, timeout=timeout, poll_interval=poll_interval, stored=form_stored_here,
                             resumed_here=resumed_here)
    finally:
        with _lock:
            if _paused.get(run_id) is here:
                del _paused[run_id]


def restore_form(client, deal_number: str, key: str, step: str, description: str, flow_run_id: str) -> bool:
    """Store the form of a run that waits at ``key`` but died before Prefect stored it (Prefect
    marks a run Suspended first, and deletes what was stored under the wait's keys, then stores
    the form), so that the UI's Resume and ``dealflow answer`` can answer it. Parts already
    stored are kept. True if the run waits there. ``client``: ``services.orchestration.runs.client()``."""
    keyset = pausing.paused_keyset(client, flow_run_id, key)
    if keyset is None:
        return False
    if keyset:
        start = form_start(deal_number, key)
        INPUTS[step].form(description, start.get("prefill"), start.get("choices")).save(
            keyset, flow_run_id=UUID(flow_run_id))
    form_stored(deal_number, key, flow_run_id)
    return True


def restore_missing_forms(older_than_seconds: float = 20) -> list[str]:
    """Every run that suspended at a wait without confirming its form stored (its process died
    in between): its form is stored now. Called by the executor's recovery."""
    restored = []
    waits = unconfirmed_waits(older_than_seconds)
    if not waits:
        return restored
    with runs.client() as client:
        for w in waits:
            if restore_form(client, w["deal"], w["key"], w["step"], w["description"], w["flow_run_id"]):
                restored.append(f"{w['deal']} {w['key']}")
    return restored


def refresh_description(deal_number: str) -> bool:
    """Rewrite the form's description of the deal's open wait when what it says changed (a
    follow-up done, the opportunity's stage moved while it waits for the hand-off): on the wait,
    and in the run's stored form where its run is paused there. True if a stored form changed."""
    from tasks.deal_steps import redescribe_open_wait

    changed = redescribe_open_wait(deal_number)
    if changed is None or not changed["flow_run_id"]:
        return False
    with runs.client() as client:
        return forms.replace_description(client, changed["flow_run_id"], changed["key"], changed["description"])
