"""Answering a deal's wait from the command line, for every command that does (``answer``,
``opportunity assign``): its arguments checked with a refusal on the record, its proof (a code or
the session of ``dealflow login``), sent here or through the gateway, and waited for."""

from __future__ import annotations

import sys
from typing import Any

import click

from models import DomainError
from models.states import WaitStatus

from .common import emit, logged_in, refuse_control_characters


def answer_arguments(deal_number: str, step: str, read: Any, as_typed: dict[str, Any]) -> dict[str, Any]:
    """An answer's arguments, checked and read (``read()``); refused before it was even read
    whole, it is still on the record, as every refused answer is. Commands that answer a wait
    check their arguments here, not in ``DealflowCommand``, so that the refusal is recorded."""
    from .. import remote

    try:
        refuse_control_characters(click.get_current_context())
        return read()
    except DomainError as exc:
        if remote.current() is None:  # through the gateway, the gateway keeps the record
            from .. import answers

            answers.record_refusal(deal_number, step, as_typed, str(exc))
        raise


def _proof(code: str | None) -> dict[str, Any]:
    """How this answer is proven: --code, else the session of `dealflow login`, else (at a
    terminal) a code asked for, hidden. With DEALFLOW_ANSWER_CODES=off nothing is needed."""
    from services.config import load_settings

    if code is not None:
        return {"code": code}
    if login := logged_in():
        return {"login": login}
    if load_settings().answer_codes and sys.stdin.isatty():
        return {"code": click.prompt("One-time code (the 6 digits your authenticator app shows)",
                                     hide_input=True, err=True)}
    return {}  # the check then says what proof is missing


def send_answer(deal_number: str, step: str, payload: dict[str, Any], *, code: str | None, wait: bool,
                as_json: bool) -> None:
    from .. import answers, remote

    if signed := remote.current():
        _answer_through(signed, deal_number, step, payload, code=code, wait=wait, as_json=as_json)
        return
    try:
        proof = _proof(code)
    except DomainError as exc:
        answers.record_refusal(deal_number, step, payload, str(exc))
        raise
    w = answers.answer(deal_number, step, payload, **proof)
    if not wait:
        emit({"deal": deal_number.upper(), "key": w.key, "status": "sent"}, as_json,
             f"{w.key}: answer sent to {deal_number.upper()}")
        return
    try:
        closed = answers.wait_closed(deal_number, w.key)
    except TimeoutError:
        click.echo(f"{w.key}: answer sent, but the flow has not recorded it yet; see "
                   f"`dealflow deal show {deal_number.upper()}`", err=True)
        sys.exit(1)
    if closed.status == WaitStatus.REFUSED:
        raise DomainError(f"{closed.key} refused by the flow: {closed.refusal_reason}")
    emit({"deal": deal_number.upper(), "key": w.key, "status": closed.status, "by": closed.answered_by},
         as_json, f"{w.key}: answered by {closed.answered_by}")


def _answer_through(signed, deal_number: str, step: str, payload: dict[str, Any], *, code: str | None,
                    wait: bool, as_json: bool) -> None:
    """`dealflow answer` for a person signed in at the gateway: it checks, names and seals."""
    import time
    from urllib.parse import quote

    if code is not None or "code" in payload:
        raise DomainError(f"code: you are signed in at {signed.url} as {signed.handle}: no code is needed "
                          f"(`dealflow logout` to answer as someone else)")
    if payload.get("by") not in (None, "", signed.handle):
        raise DomainError(f"by: you are signed in at {signed.url} as {signed.handle}; `dealflow logout` to "
                          f"answer as someone else")
    sent = signed.call("POST", "/dealflow/api/answer", {"deal": deal_number, "step": step, "answer": payload})
    if not wait:
        emit({"deal": sent["deal"], "key": sent["key"], "status": "sent"}, as_json,
             f"{sent['key']}: answer sent to {sent['deal']}")
        return
    deadline = time.monotonic() + 60
    while True:
        closed = signed.call("GET", f"/dealflow/api/deals/{quote(sent['deal'])}/waits/{quote(sent['key'])}")
        if closed["status"] != "open":
            break
        if time.monotonic() > deadline:
            click.echo(f"{sent['key']}: answer sent, but the flow has not recorded it yet; see "
                       f"`dealflow deal show {sent['deal']}`", err=True)
            sys.exit(1)
        time.sleep(0.5)
    if closed["status"] == "refused":
        raise DomainError(f"{closed['key']} refused by the flow: {closed['reason']}")
    emit({"deal": sent["deal"], "key": sent["key"], "status": closed["status"], "by": closed["by"]},
         as_json, f"{sent['key']}: answered by {closed['by']}")
