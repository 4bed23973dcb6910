"""Answering a deal's wait from a door (the command line, the gateway, the demo's scripted
people), in the database: the answer checked before it is sent, a refused attempt recorded, a
one-off session opened with a code, and where a wait stands.

Sending the answer (resuming the deal's paused run) is Prefect's, and stays in the door
(``dealflow.answers``); so does the step's form, whose types the door checks with
``read_form`` (the Prefect form of the step, ``flows.inputs``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from models import DomainError, identity, process
from models.deal import deal_by_number
from services import keys

from .uow import unit_of_work


@dataclass(frozen=True)
class OpenWait:
    deal: str
    key: str
    step: str
    flow_run_id: str | None
    description: str = ""


@dataclass(frozen=True)
class ClosedWait:
    key: str
    status: str
    answered_by: str | None
    refusal_reason: str


class Signer(Protocol):
    """A login session of the door's (``dealflow.login.Login``): whose it is, and the proof it
    gives an answer."""
    handle: str

    def prove(self, deal_number: str, wait_key: str, answer: dict[str, Any]) -> dict[str, str]: ...


# (the wait's step, the answer as sent) -> the answer as its form reads it; raises a DomainError
FormReader = Callable[[str, dict[str, Any]], dict[str, Any]]


def check_answer(deal_number: str, step: str, payload: dict[str, Any], *, read_form: FormReader,
                 code: str | None = None, login: Signer | None = None, door: str = "command line",
                 signed_in: str | None = None) -> tuple[OpenWait, dict[str, Any]]:
    """The open wait and the normalised answer with its proof (``code``, or signed in ``login``'s
    session); raises a DomainError naming the field and rule. The proof is checked as the flow
    will check it, but a code is not used up here (a wrong one is counted, and only that is
    written); the business rules are applied and rolled back. ``signed_in``: the gateway's
    person, whose session proved them (the answer is then sealed when sent)."""
    if code is None and "code" in payload and signed_in is None:  # `--set code=…`: as --code
        payload = dict(payload)
        code = str(payload.pop("code") or "")
    if signed_in is not None:  # the gateway's person (their session proved them): sealed when sent
        payload = {k: v for k, v in payload.items() if k not in identity.PROOF_FIELDS}
        if payload.get("by") not in (None, "", signed_in):
            raise DomainError(f"by: you are signed in as {signed_in}; sign out to answer as someone else")
        payload["by"] = signed_in
    with unit_of_work() as s:
        deal = deal_by_number(s, deal_number)
        wait = process.find_open_wait(s, deal, step)
        if login is not None:
            if payload.get("by") not in (None, "", login.handle):
                raise DomainError(f"by: you are logged in as {login.handle}; `dealflow logout` to answer "
                                  f"as someone else (with --code)")
            payload = {**payload, "by": login.handle}
        data = read_form(wait.step, payload)
        data = process.normalized(wait.step, data)  # as the flow reads it (and checks its signature)
        proof, data = identity.split_proof(data)
        if code is not None:
            proof = {"code": code}
        elif login is not None:
            proof = login.prove(deal.number, wait.key, data)
        proof = {k: v for k, v in proof.items() if v}
        found = OpenWait(deal.number, wait.key, wait.step, wait.flow_run_id, wait.description)
        check = keys.answer_check(door)
        # the person and the business rules first (a dry run), so that what can be corrected is
        # said first; the proof last, as the flow will check it but without using a code up
        person = process.prove_answer(s, deal, wait, data, {}, replace(check, codes_required=False), consume=False)
        process.apply_answer(s, deal, wait, data, person)
        s.rollback()
        if signed_in is not None:
            return found, data
        if check.codes_required and not proof:
            raise DomainError("code: this answer needs proof: --code NNNNNN (the 6 digits your authenticator "
                              "app shows), or `dealflow login HANDLE` once")
        try:
            if "code" in proof and check.codes_required:
                if check.cipher is None:
                    raise DomainError("code: answers need a code but no secret key is set up (DEALFLOW_SECRET_KEY)")
                identity.check_code(s, person.person, proof["code"], check.cipher, door=door)
            elif check.codes_required:
                process.prove_answer(s, deal, wait, data, proof, check, consume=False)
        except DomainError:
            s.commit()  # a wrong code counts towards the lock; nothing else was written
            raise
        s.rollback()
        return found, {**data, **proof}


def record_refusal(deal_number: str, step: str, payload: dict[str, Any], reason: str,
                   door: str = "command line") -> None:
    """An answer refused before it reached the flow, on the record as the flow's refusals are,
    with the door it came through (``payload`` as typed; no code in it is kept)."""
    with unit_of_work() as s:
        process.record_refused_attempt(s, deal_number, step, payload, reason, door)


def open_answer_session(handle: str, code: str, door: str, hours: float) -> identity.OpenedSession:
    """A session opened with ``code`` (used up), for answers signed with its key; a wrong code is
    on the record (it counts towards a lock)."""
    with unit_of_work() as s:
        try:
            return identity.open_session(s, handle, code, keys.cipher(), hours=hours, door=door)
        except DomainError:
            s.commit()  # a wrong code is on the record
            raise


def turn_at(deal_number: str, step: str) -> str | None:
    """The key of the deal's open wait if it is at ``step`` with a flow run attached (what a
    script that plays the people waits for), else None."""
    with unit_of_work() as s:
        wait = deal_by_number(s, deal_number).open_wait
        return wait.key if wait is not None and wait.step == step and wait.flow_run_id else None


def wait_state(deal_number: str, key: str) -> ClosedWait | None:
    """The wait ``key`` of the deal as it stands (status open, answered or refused), or None."""
    with unit_of_work() as s:
        wait = next((w for w in deal_by_number(s, deal_number).waits if w.key == key), None)
        return ClosedWait(wait.key, wait.status, wait.answered_by, wait.refusal_reason) if wait else None
