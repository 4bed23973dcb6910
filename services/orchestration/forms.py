"""A wait's form as Prefect stores it beside the paused run: its schema, its description and the
answer, each a flow-run input under a key of the wait's keyset (``paused-KEY-schema``,
``suspended-KEY-description``, ``…-response``).

Two of Prefect's private names are relied on here (see tests/test_prefect_contract.py): the form's
schema is built with ``prefect._internal.pydantic.v2_schema.create_v2_schema``, as Prefect's own
``RunInput.save`` builds it, and its description is ``RunInput._description``, which Prefect
stores under the keyset's ``description`` key."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID


def describe(form: type, description: str) -> None:
    """Give the form its description (shown above its fields when resuming)."""
    form._description = description


def save(form: type, keyset: dict[str, str], flow_run_id: UUID | None = None) -> dict | None:
    """Store the form (its schema, then its description), keeping any part already stored;
    the schema it stored, or None if one was stored already (the server's is then the one).

    Prefect stores a wait's form just *after* it marks the run Suspended; a process killed in
    between leaves a run nobody can answer, until recovery (``flows.waits.restore_form``)
    stores the form again, which must not fail on the part Prefect did store. Prefect's own
    ``RunInput.save`` builds the schema the same way."""
    import httpx
    from prefect._internal.pydantic.v2_schema import create_v2_schema
    from prefect.input.actions import create_flow_run_input

    schema = create_v2_schema(form.__name__, model_base=form)
    parts = {keyset["schema"]: schema}
    if isinstance(form._description, str) and form._description:
        parts[keyset["description"]] = form._description
    stored = schema
    for key, value in parts.items():
        try:
            create_flow_run_input(key=key, value=value, flow_run_id=flow_run_id)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 409:  # 409: stored already
                raise
            if key == keyset["schema"]:
                stored = None
    return stored


def stored_schema(client, run_id: UUID, state) -> dict | None:
    """The wait's form (its JSON schema) as stored, or None while it is not stored yet: Prefect
    marks a run Suspended a moment *before* it stores the form, and refuses a resume in between
    ("Run input schema not found"); a person is never that quick, a script is."""
    import httpx

    keyset = state.state_details.run_input_keyset
    if not keyset:
        return {}
    try:
        stored = client.read_flow_run_input(run_id, keyset["schema"])
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return None
        raise
    return json.loads(stored) if isinstance(stored, str) else stored


def stored_answer(key: str, flow_run_id: str, *, suspended: bool) -> Any:
    """The answer to the wait ``key`` of the run exactly as Prefect stored it (not as the form
    reads it); raises if it cannot be read."""
    from prefect.input.actions import read_flow_run_input
    from prefect.input.run_input import keyset_from_base_key

    base = f"{'suspended' if suspended else 'paused'}-{key}"
    return read_flow_run_input(keyset_from_base_key(base)["response"], flow_run_id=UUID(flow_run_id))


def replace_description(client, flow_run_id: str, key: str, description: str) -> bool:
    """Store ``description`` as the form's description where the run is paused at ``key`` with
    its form; True if it was (else nothing is written)."""
    try:
        state = client.read_flow_run(UUID(flow_run_id)).state
    except Exception:  # noqa: BLE001 - a run the server does not have: the wait row says it
        return False
    keyset = state.state_details.run_input_keyset if state is not None and state.is_paused() else None
    if not keyset or state.state_details.pause_key != key or "description" not in keyset:
        return False
    client.delete_flow_run_input(UUID(flow_run_id), keyset["description"])
    # stored as Prefect stores a form's parts: JSON (the UI reads it as such)
    client.create_flow_run_input(UUID(flow_run_id), keyset["description"], json.dumps(description))
    return True
