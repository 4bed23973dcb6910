"""What a person enters at each wait: typed RunInput forms with a description on every field.

The Prefect UI renders them as forms; ``dealflow answer`` validates the same models. Each
carries its proof (a one-time code, or a session's signature from the CLI); the flow checks it,
the person's role and the business rules (stock, amounts due) after the resume.
"""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from models.billing import METHOD_WORDS, PAYMENT_METHODS
from models.estimates import CHANNEL_WORDS, DECISION_CHANNELS, DECISION_WORDS
from models.identity import PROOF_FIELDS


def _number(value: Decimal | float | int) -> int | float:
    """An amount in an answer's JSON: a JSON number, as the form's number input sends it (the
    server checks answers against the form's schema). Read back, pydantic makes it the same
    Decimal (from the float's shortest text: 12.34 stays 12.34)."""
    value = value if isinstance(value, Decimal) else Decimal(str(value))  # a default given as a number
    return int(value) if value == value.to_integral_value() else float(value)


# Money and percentages: a plain number input in the UI (a bare Decimal shows a "number | string"
# chooser), a Decimal inside, a JSON number on the wire.
Amount = Annotated[Decimal, WithJsonSchema({"type": "number"}), PlainSerializer(_number, when_used="json")]


def _plain(prop: dict) -> dict:
    """An optional field as the input of its type: empty means "not given" (a "type | null"
    chooser, or a null default the server would refuse, helps no one)."""
    options = prop.get("anyOf")
    if options and len(options) == 2 and {"type": "null"} in options:
        kept = dict(next(o for o in options if o != {"type": "null"}))
        prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **kept}
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


def _form_schema(schema: dict, model: type) -> None:
    """The form as the UI shows it: the fields of the right kind, the wait's choices (see
    ``Answer.form``), and the one-time code last: typed last, just before Submit, while it is
    still the code the app shows. The schema admits fields it does not show (the CLI's session
    and signature); ``dealflow answer`` still refuses a field no form has."""
    props = schema.get("properties", {})
    for name in list(props):
        props[name] = _plain(props[name])
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


def _inline(model: type[BaseModel]) -> dict:
    """A nested model's schema written out in place (so a wait can add its choices to it)."""
    schema = model.model_json_schema()
    schema["properties"] = {k: _plain(v) for k, v in schema["properties"].items()}
    return schema


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
    # what this wait's form offers to pick from (``models.prompts.form_choices``): set by ``form``
    choices: ClassVar[dict[str, Any]] = {}
    required_fields: ClassVar[list[str]] = []  # the class's own, before a form pre-fills some

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        """Put the wait's choices into the form's schema (the answer's Python types stay those of
        the class: a stored answer is read back whatever the catalogue says by then)."""

    @classmethod
    def fit_answer(cls, answer: dict[str, Any], schema: dict) -> dict[str, Any]:
        """An answer made to fit the stored form's choices (``dealflow answer`` gives a plain SKU
        where the form lists "SKU — name — price — stock")."""
        return answer

    @classmethod
    def check_fields(cls, payload: dict) -> None:
        """A field the form does not have (a typo in `--set`) is a mistake, said as one."""
        from models.errors import ValidationError

        for name in payload:
            if name not in cls.model_fields:
                raise ValidationError(str(name)[:40], f"not a field of the {cls.__name__.removesuffix('Input').lower()} "
                                                      f"form (its fields: {', '.join(cls.fields_shown())})")

    @classmethod
    def form(cls, description: str, prefill: dict | None = None,
             choices: dict[str, Any] | None = None) -> type[Answer]:
        """The form for one wait: its description, the fields it starts with (``prefill``), kept
        only if they are of the form's types (else the form starts empty: never a form the UI
        cannot show), and what it offers to pick from (``choices``, see ``fit_schema``)."""
        import logging

        import pydantic

        start = {k: v for k, v in (prefill or {}).items() if k in cls.model_fields and k not in PROOF_FIELDS}
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
        model._description = description
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
        stores the form again, which must not fail on the part Prefect did store. Prefect's own
        ``RunInput.save`` builds the schema the same way."""
        import httpx
        from prefect._internal.pydantic.v2_schema import create_v2_schema
        from prefect.input.actions import create_flow_run_input

        schema = create_v2_schema(cls.__name__, model_base=cls)
        parts = {keyset["schema"]: schema}
        if isinstance(cls._description, str) and cls._description:
            parts[keyset["description"]] = cls._description
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


class QualifyInput(Answer):
    """Qualify the lead."""
    qualified: bool = Field(title="Qualified?", description="Is this a real opportunity (need, budget, authority, timeline)?")
    notes: str = Field(title="Notes", default="", description="What you learned: needs, decision makers, competitors.")
    budget: Amount | None = Field(title="Budget", default=None,
                                  description="The customer's budget, in the deal's currency (empty: not given).")
    timeline: str = Field(title="Timeline", default="", description="When the customer wants the machinery, e.g. 'Q1 2027'.")


class HandoffInput(Answer):
    """Hand the opportunity to a sales engineer."""
    engineer: str = Field(title="Sales engineer", description="The sales engineer who prepares the estimate (e.g. mark).")
    note: str = Field(title="Note", default="", description="What the engineer should know.")

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        if cls.choices.get("engineers"):
            schema["properties"]["engineer"] = {**schema["properties"]["engineer"], "enum": cls.choices["engineers"]}


class EstimateLineInput(BaseModel):
    sku: str = Field(title="Product", description="Pick it from the catalogue (price and stock shown); "
                                                   "`dealflow answer` takes the SKU, e.g. CNC-LATHE-2000.")
    # the bounds go into the form's schema only, so that the form refuses them before it is sent;
    # every other door (the CLI, an import) gets the rule's own words from the domain
    quantity: int = Field(title="Quantity", description="How many; a whole number greater than zero.",
                          json_schema_extra={"minimum": 1})
    discount_pct: Amount = Field(title="Discount %", default=0, validate_default=True,
                                 description="Discount on this line, 0 to 100 %.",
                                 json_schema_extra={"minimum": 0, "maximum": 100})


def _pick(schema: dict, field: str, nested: type[BaseModel], options: list[str]) -> None:
    """The lines' ``sku`` as a select of ``options`` (an empty list: left as text)."""
    if not options or field not in schema.get("properties", {}):
        return
    items = _inline(nested)
    items["properties"]["sku"] = {**items["properties"]["sku"], "type": "string", "enum": list(options)}
    schema["properties"][field]["items"] = items


class EstimateInput(Answer):
    """Prepare the estimate's lines."""
    lines: list[EstimateLineInput] = Field(title="Lines", description="The estimate's lines; totals are computed from them.")
    valid_days: int = Field(title="Valid for (days)", default=30, description="How many days the estimate stays valid (1-365).")
    notes: str = Field(title="Notes", default="", description="Notes printed on the estimate for the customer.")

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        _pick(schema, "lines", EstimateLineInput, cls.choices.get("products", []))

    @classmethod
    def fit_answer(cls, answer: dict[str, Any], schema: dict) -> dict[str, Any]:
        from models.catalog import sku_of

        try:
            listed = schema["properties"]["lines"]["items"]["properties"]["sku"]["enum"]
        except (KeyError, TypeError):
            return answer
        by_sku = {sku_of(label): label for label in listed}
        lines = [{**ln, "sku": by_sku.get(ln.get("sku"), ln.get("sku"))} if isinstance(ln, dict) else ln
                 for ln in answer.get("lines") or []]
        return {**answer, "lines": lines}


def _as_offered(answer: dict[str, Any], schema: dict, field: str, words: dict[str, str]) -> dict[str, Any]:
    """A choice as the stored form offers it: its words ('ask for changes'), or its code
    ('request_changes') in a form stored before the forms spoke in words."""
    offered = (schema.get("properties", {}).get(field) or {}).get("enum") or []
    value = answer.get(field)
    if value is None or value in offered:
        return answer
    code = words.get(str(value).strip().lower(), value)
    word = next((w for w, c in words.items() if c == code), code)
    return {**answer, field: word if word in offered else code if code in offered else value}


def _words_only(schema: dict, field: str, words: dict[str, str]) -> None:
    """The form offers a choice in the team's words only; the answer model also takes the code
    recorded for it (what `dealflow answer --set` is given), which the domain reads the same."""
    prop = schema.get("properties", {}).get(field)
    if isinstance(prop, dict) and "enum" in prop:
        prop["enum"] = list(words)


class DecisionInput(Answer):
    """Record the customer's decision on the estimate (on the customer's behalf)."""
    decision: Literal[(*DECISION_WORDS, "request_changes")] = Field(  # type: ignore[valid-type]
        title="Customer's decision",
        description="approve: it becomes an order; ask for changes: a new revision follows; decline: the deal is "
                    "lost.")
    channel: Literal[(*CHANNEL_WORDS, *DECISION_CHANNELS)] = Field(  # type: ignore[valid-type]
        title="How the customer told us", default="email",
        description="By email, phone, a signed document or in a meeting (an answer online from the estimate's "
                    "link is the customer's own).")
    changes: str = Field(title="Changes wanted", default="",
                         description="When they ask for changes: what the customer wants changed.")
    reason: str = Field(title="Reason for declining", default="", description="When they decline: why.")
    po_number: str = Field(title="Customer's PO number", default="",
                           description="When they approve: the customer's purchase-order number, if they gave one "
                                       "(it goes on the order, invoice and delivery note).")
    note: str = Field(title="Note", default="", description="Anything else worth keeping.")

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        _words_only(schema, "decision", DECISION_WORDS)
        _words_only(schema, "channel", {**CHANNEL_WORDS, "portal": "portal"})  # portal: the customer's own answer

    @classmethod
    def fit_answer(cls, answer: dict[str, Any], schema: dict) -> dict[str, Any]:
        answer = _as_offered(answer, schema, "decision", DECISION_WORDS)
        return _as_offered(answer, schema, "channel", CHANNEL_WORDS)


class QAInput(Answer):
    """QA sign-off: one switch per check of the order's checklist; all on releases the order for
    picking, any off sends it to rework. An order whose products have no checklist: passed yes/no."""
    checklist: dict[str, bool] = Field(title="Checklist", default_factory=dict,
                                       description="Switch on each check that passed.")
    passed: bool | None = Field(title="Passed?", default=None,
                                description="Did it pass? (With a checklist: passed when every check is on.)")
    notes: str = Field(title="Notes", default="", description="What was tested; for a fail, what must be reworked.")

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        props = schema.get("properties", {})
        items = cls.choices.get("checklist")
        if items is None:
            return
        if items:  # a switch per check; passed follows from them
            props["checklist"] = {**props["checklist"], "type": "object", "additionalProperties": False,
                                  "properties": {name: {"type": "boolean", "title": title, "default": False}
                                                 for name, title in items}}
            props.pop("passed", None)
            # required: the server then refuses an answer meant for another wait (it has no checks)
            schema.setdefault("required", []).append("checklist")
        else:  # nothing to check one by one: the order passes or fails as a whole
            props.pop("checklist", None)
            props["passed"] = {**props["passed"], "type": "boolean"}
            schema.setdefault("required", []).append("passed")

    @classmethod
    def fit_answer(cls, answer: dict[str, Any], schema: dict) -> dict[str, Any]:
        if "checklist" in schema.get("required", []) and "checklist" not in answer:
            return {**answer, "checklist": {}}  # `--set passed=true`: every check passed
        return answer


class ShipmentLineInput(BaseModel):
    sku: str = Field(title="SKU", description="A SKU of the order that is still to ship.")
    quantity: int = Field(title="Quantity", description="How many in this shipment (0: not in this shipment); at most "
                                                        "what is left to ship and in stock.",
                          json_schema_extra={"minimum": 0})


class ShipmentInput(Answer):
    """Confirm a shipment: carrier, tracking and what left the warehouse."""
    carrier: str = Field(title="Carrier", description="Carrier name, e.g. DHL Freight.")
    tracking_number: str = Field(title="Tracking number", description="The carrier's tracking number.")
    lines: list[ShipmentLineInput] = Field(title="Lines", default_factory=list,
                                           description="What is in this shipment (it starts with all that is left); "
                                                       "for a partial shipment lower the quantities: a line at 0 is "
                                                       "not in this shipment.")

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        _pick(schema, "lines", ShipmentLineInput, cls.choices.get("ship", []))


class PaymentInput(Answer):
    """Record a payment received against the invoice."""
    amount: Amount = Field(title="Amount received", description="Amount received, at most what is still due.")
    received_on: date | None = Field(title="Date received", default=None,
                                     description="The day the money arrived (empty: today).")
    method: Literal[(*METHOD_WORDS, *PAYMENT_METHODS)] = Field(  # type: ignore[valid-type]
        title="Payment method", default="bank transfer", description="Bank transfer, card, cheque or cash.")
    reference: str = Field(title="Reference", default="", description="Bank reference or cheque number.")

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        _words_only(schema, "method", METHOD_WORDS)

    @classmethod
    def fit_answer(cls, answer: dict[str, Any], schema: dict) -> dict[str, Any]:
        return _as_offered(answer, schema, "method", METHOD_WORDS)


INPUTS: dict[str, type[Answer]] = {
    "qualify": QualifyInput,
    "handoff": HandoffInput,
    "estimate": EstimateInput,
    "decision": DecisionInput,
    "qa": QAInput,
    "shipment": ShipmentInput,
    "payment": PaymentInput,
}
