"""What a person enters at each wait, as Prefect forms: each wait kind's fields (a plain pydantic
model in ``models.waits``) combined with ``RunInput`` and the proof an answer carries.

The Prefect UI renders them as forms; ``dealflow answer`` validates the same models. Each
carries its proof (a one-time code, or a session's signature from the CLI); the flow checks it,
the person's role and the business rules (stock, amounts due) after the resume.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, ClassVar
from uuid import UUID

from prefect.input import RunInput
from pydantic import ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from models.choices import in_words
from models.identity import PROOF_FIELDS
from models.waits import KINDS, WaitKind
from models.waits.forms import plain
from services.orchestration import forms


def _form_schema(schema: dict, model: type) -> None:
    """The form as the UI shows it: the fields of the right kind, the wait's choices (see
    ``Answer.form``), and the one-time code last: typed last, just before Submit, while it is
    still the code the app shows. The schema admits fields it does not show (the CLI's session
    and signature); ``dealflow answer`` still refuses a field no form has."""
    props = schema.get("properties", {})
    for name in list(props):
        props[name] = plain(props[name])
    getattr(model, "fit_schema", lambda _s: None)(schema)
    # a field the form starts with is still one to fill (the UI labels a field not required
    # "Optional")
    required = list(schema.get("required", []))
    required += [n for n in getattr(model, "required_fields", []) if n in props and n not in required]
    if "by" in props and _asks_for_handle():
        required = ["by", *(n for n in required if n != "by")]
    else:  # the gateway names the person: the form does not ask
        props.pop("by", None)
        required = [n for n in required if n != "by"]
    if required:
        schema["required"] = list(dict.fromkeys(required))
    else:
        schema.pop("required", None)
    schema.pop("additionalProperties", None)


def _asks_for_handle() -> bool:
    """Whether the forms ask who answers: only with codes off (DEALFLOW_ANSWER_CODES=off), where
    a handle is all the proof there is."""
    from services.config import load_settings

    return not load_settings().answer_codes


class Answer(RunInput):
    # extra="ignore": a field sent straight to the API that no form has cannot crash the run
    model_config = ConfigDict(extra="ignore", json_schema_extra=_form_schema)

    # Who answers. In the Prefect UI the gateway fills it in from the person's signed-in session
    # and seals the answer (so the form has no such field); `dealflow answer` from the session of
    # `dealflow login`. Only with codes off (a one-person trial) does the form ask for it.
    by: str = Field(title="Your handle", default="",
                    description="Your staff handle (e.g. sofia, mark, qa, delivery, finance). "
                                "The flow checks that you have the role this step needs.")
    # Never part of an answer: a code is typed once, to sign in. Kept as a field so that an answer
    # that carries one (sent straight to the API) is refused as tampered, not silently stripped.
    code: SkipJsonSchema[Any] = ""
    # The gateway's seal over the deal, the wait, the answer, the person, the time and a nonce
    # (see models/identity.py): what a signed-in person's answer from the Prefect UI carries.
    seal: SkipJsonSchema[Any] = ""
    # A signed answer from `dealflow answer` in a session (not in the UI's form): the session's id
    # and the HMAC of the deal, the wait's key and the answer (see models/identity.py).
    # Not in the schema, so the server does not check their type: any value is taken (and read as
    # text by the check), so that a crafted one is refused by the flow instead of crashing the run.
    session: SkipJsonSchema[Any] = ""
    signature: SkipJsonSchema[Any] = ""
    # The customer's own answer from the portal (the estimate email's link), signed by the portal;
    # checked by the flow like any proof (see models/portal.py). Only the decision takes one.
    portal: SkipJsonSchema[Any] = ""
    required_fields: ClassVar[list[str]] = []  # the class's own, before a form pre-fills some
    step: ClassVar[str] = ""  # the wait kind's name, as people know the step ("return_inspect")

    @classmethod
    def check_fields(cls, payload: dict) -> None:
        """A field the form does not have (a typo in `--set`) is a mistake, said as one."""
        from models.errors import ValidationError

        for name in payload:
            if name not in cls.model_fields:
                raise ValidationError(str(name)[:40], f"not a field of the {cls.step} form "
                                                      f"(its fields: {', '.join(cls.fields_shown())})")

    @classmethod
    def form(cls, description: str, prefill: dict | None = None,
             choices: dict[str, Any] | None = None) -> type[Answer]:
        """The form for one wait: its description, the fields it starts with (``prefill``), kept
        only if they are of the form's types (else the form starts empty: never a form the UI
        cannot show), and what it offers to pick from (``choices``, see ``fit_schema``)."""
        import logging

        import pydantic

        start = {k: v for k, v in (prefill or {}).items() if k in cls.model_fields and k not in PROOF_FIELDS}
        start = in_words(getattr(cls, "words", {}), start)  # a choice the kind starts with as its code: as the form offers it
        for name, value in list(start.items()):  # each field on its own (the others may be required)
            try:  # and as the form sends it back (an amount as a number, not "5.00")
                info = cls.model_fields[name]
                adapter = pydantic.TypeAdapter(Annotated[info.annotation, *info.metadata] if info.metadata
                                               else info.annotation)
                start[name] = adapter.dump_python(adapter.validate_python(value), mode="json")
            except pydantic.ValidationError:
                logging.getLogger(__name__).warning("%s: %s starts empty (what it would start with is not "
                                                    "of its type)", cls.__name__, name)
                del start[name]
        # as Prefect's with_initial_data, but each field keeps its title and description (Prefect's
        # drops them for the fields it pre-fills: the UI would show "by" instead of "Your handle")
        import pydantic as pd

        fields = {}
        for name, value in start.items():
            info = copy.copy(cls.model_fields[name])
            info.default, info.default_factory = value, None
            fields[name] = (info.annotation, info)
        model = pd.create_model(cls.__name__, __base__=cls, **fields) if fields else \
            pd.create_model(cls.__name__, __base__=cls)
        forms.describe(model, description)
        model.choices = dict(choices or {})
        model.required_fields = [n for n, f in cls.model_fields.items() if f.is_required()]
        return model

    @classmethod
    def fields_shown(cls) -> list[str]:
        return [n for n in cls.model_fields if n not in PROOF_FIELDS]

    @classmethod
    def save(cls, keyset: dict[str, str], flow_run_id: UUID | None = None) -> dict | None:
        """Store the form (its schema, then its description), keeping any part already stored;
        the schema it stored, or None if one was stored already (the server's is then the one).

        Prefect stores a wait's form just *after* it marks the run Suspended; a process killed in
        between leaves a run nobody can answer, until recovery (``flows.waits.restore_form``)
        stores the form again, which must not fail on the part Prefect did store (``forms.save``)."""
        return forms.save(cls, keyset, flow_run_id)


def _form_of(kind: WaitKind) -> type[Answer]:
    """The Prefect form of a wait kind: its fields (``models.waits``) with the proof an answer carries."""
    name = kind.fields.__name__.removesuffix("Fields") + "Input"
    return type(name, (kind.fields, Answer), {"__module__": __name__, "__doc__": kind.fields.__doc__,
                                              "step": kind.name})


INPUTS: dict[str, type[Answer]] = {name: _form_of(kind) for name, kind in KINDS.items()}
QualifyInput, HandoffInput, EstimateInput, DecisionInput, QAInput, ShipmentInput, PaymentInput = (
    INPUTS[n] for n in ("qualify", "handoff", "estimate", "decision", "qa", "shipment", "payment"))
