"""What a person enters at each wait: typed RunInput forms with a description on every field.

The Prefect UI renders them as forms; ``dealflow answer`` validates the same models. Each
carries its proof (a one-time code, or a session's signature from the CLI); the flow checks it,
the person's role and the business rules (stock, amounts due) after the resume.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from models.billing import PAYMENT_METHODS
from models.estimates import DECISION_CHANNELS
from models.identity import PROOF_FIELDS


def _form_schema(schema: dict, model: type) -> None:  # noqa: ARG001
    """The one-time code is the form's last field: typed last, just before Submit, while it is
    still the code the app shows. The schema admits fields it does not show (the CLI's session
    and signature); ``dealflow answer`` still refuses a field no form has."""
    props = schema.get("properties", {})
    if "code" in props:
        props["code"] = props.pop("code")
    schema.pop("additionalProperties", None)


class Answer(RunInput):
    # extra="ignore": a field sent straight to the API that no form has cannot crash the run
    model_config = ConfigDict(extra="ignore", json_schema_extra=_form_schema)

    by: str = Field(title="Your handle",
                    description="Your staff handle (e.g. sofia, mark, qa, delivery, finance). "
                                "The flow checks that you have the role this step needs.")
    code: str = Field(title="One-time code", default="",
                      description="The 6 digits your authenticator app shows now. A code works once: "
                                  "for a second answer within the same 30 seconds, wait for the next code.")
    # A signed answer from `dealflow answer` in a session (not in the UI's form): the session's id
    # and the HMAC of the deal, the wait's key and the answer (see models/identity.py).
    # Not in the schema, so the server does not check their type: any value is taken (and read as
    # text by the check), so that a crafted one is refused by the flow instead of crashing the run.
    session: SkipJsonSchema[Any] = ""
    signature: SkipJsonSchema[Any] = ""
    # The customer's own answer from the portal (the estimate email's link), signed by the portal;
    # checked by the flow like any proof (see models/portal.py). Only the decision takes one.
    portal: SkipJsonSchema[Any] = ""

    @classmethod
    def check_fields(cls, payload: dict) -> None:
        """A field the form does not have (a typo in `--set`) is a mistake, said as one."""
        from models.errors import ValidationError

        for name in payload:
            if name not in cls.model_fields:
                raise ValidationError(str(name)[:40], f"not a field of the {cls.__name__.removesuffix('Input').lower()} "
                                                      f"form (its fields: {', '.join(cls.fields_shown())})")

    @classmethod
    def form(cls, description: str, prefill: dict | None = None) -> type[Answer]:
        """The form for one wait: its description, and the fields it starts with (``prefill``),
        kept only if they are of the form's types (else the form starts empty: never a form the
        UI cannot show)."""
        import logging

        import pydantic

        start = {k: v for k, v in (prefill or {}).items() if k in cls.model_fields and k not in PROOF_FIELDS}
        if start:
            try:
                cls.model_validate({"by": "", **start})
            except pydantic.ValidationError:
                logging.getLogger(__name__).warning("%s: the form starts empty (what it would start with "
                                                    "is not of its types)", cls.__name__)
                start = {}
        # as Prefect's with_initial_data, but each field keeps its title and description (Prefect's
        # drops them for the fields it pre-fills: the UI would show "by" instead of "Your handle")
        import copy

        import pydantic as pd

        fields = {}
        for name, value in start.items():
            info = copy.copy(cls.model_fields[name])
            info.default, info.default_factory = value, None
            fields[name] = (info.annotation, info)
        model = pd.create_model(cls.__name__, __base__=cls, **fields) if fields else \
            pd.create_model(cls.__name__, __base__=cls)
        model._description = description
        return model

    @classmethod
    def fields_shown(cls) -> list[str]:
        return [n for n in cls.model_fields if n == "code" or n not in PROOF_FIELDS]  # code: the form's field

    @classmethod
    def save(cls, keyset: dict[str, str], flow_run_id: UUID | None = None) -> None:
        """Store the form (its schema, then its description), keeping any part already stored.

        Prefect stores a wait's form just *after* it marks the run Suspended; a process killed in
        between leaves a run nobody can answer, until recovery (``flows.waits.restore_form``)
        stores the form again, which must not fail on the part Prefect did store. Prefect's own
        ``RunInput.save`` builds the schema the same way."""
        import httpx
        from prefect._internal.pydantic.v2_schema import create_v2_schema
        from prefect.input.actions import create_flow_run_input

        parts = {keyset["schema"]: create_v2_schema(cls.__name__, model_base=cls)}
        if isinstance(cls._description, str) and cls._description:
            parts[keyset["description"]] = cls._description
        for key, value in parts.items():
            try:
                create_flow_run_input(key=key, value=value, flow_run_id=flow_run_id)
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 409:  # 409: stored already
                    raise


class QualifyInput(Answer):
    """Qualify the lead."""
    qualified: bool = Field(title="Qualified?", description="Is this a real opportunity (need, budget, authority, timeline)?")
    notes: str = Field(title="Notes", default="", description="What you learned: needs, decision makers, competitors.")
    budget: Decimal | None = Field(title="Budget", default=None, description="The customer's budget, in the deal's currency.")
    timeline: str = Field(title="Timeline", default="", description="When the customer wants the machinery, e.g. 'Q1 2027'.")


class HandoffInput(Answer):
    """Hand the opportunity to a sales engineer."""
    engineer: str = Field(title="Sales engineer", description="Handle of the sales engineer who prepares the estimate (e.g. mark).")
    note: str = Field(title="Note", default="", description="What the engineer should know.")


class EstimateLineInput(BaseModel):
    sku: str = Field(title="SKU", description="Product SKU from the catalogue, e.g. CNC-LATHE-2000.")
    quantity: int = Field(title="Quantity", description="How many; a whole number greater than zero.")
    discount_pct: Decimal = Field(title="Discount %", default=Decimal("0"), description="Discount on this line, 0 to 100 %.")


class EstimateInput(Answer):
    """Prepare the estimate's lines."""
    lines: list[EstimateLineInput] = Field(title="Lines", description="The estimate's lines; totals are computed from them.")
    valid_days: int = Field(title="Valid for (days)", default=30, description="How many days the estimate stays valid (1-365).")
    notes: str = Field(title="Notes", default="", description="Notes printed on the estimate for the customer.")


class DecisionInput(Answer):
    """Record the customer's decision on the estimate (on the customer's behalf)."""
    decision: Literal["approve", "request_changes", "decline"] = Field(
        title="Customer's decision",
        description="approve: make it an order; request_changes: a new revision follows; decline: deal lost.")
    channel: Literal[DECISION_CHANNELS] = Field(  # type: ignore[valid-type]
        title="How the customer told us", default="email", description="How the customer told us: email, phone, signed_document, meeting, portal.")
    changes: str = Field(title="Changes wanted", default="", description="For request_changes: what the customer wants changed.")
    reason: str = Field(title="Reason for declining", default="", description="For decline: why the customer declined.")
    note: str = Field(title="Note", default="", description="Anything else worth keeping (e.g. PO number).")


class QAInput(Answer):
    """QA sign-off. A pass releases the order for picking; a fail sends it to rework."""
    passed: bool = Field(title="Passed?", description="Did the machine pass every test?")
    checklist: dict[str, bool] = Field(title="Checklist", default_factory=dict,
                                       description="Each check and whether it passed, e.g. {\"hydraulics\": true}.")
    notes: str = Field(title="Notes", default="", description="What was tested; for a fail, what must be reworked.")


class ShipmentLineInput(BaseModel):
    sku: str = Field(title="SKU", description="SKU on the order.")
    quantity: int = Field(title="Quantity", description="How many in this shipment; at most what is left to ship and in stock.")


class ShipmentInput(Answer):
    """Confirm a shipment: carrier, tracking and what left the warehouse."""
    carrier: str = Field(title="Carrier", description="Carrier name, e.g. DHL Freight.")
    tracking_number: str = Field(title="Tracking number", description="The carrier's tracking number.")
    lines: list[ShipmentLineInput] = Field(title="Lines", default_factory=list,
                                           description="What is in this shipment; leave empty to ship all that is left.")


class PaymentInput(Answer):
    """Record a payment received against the invoice."""
    amount: Decimal = Field(title="Amount received", description="Amount received, at most what is still due.")
    method: Literal[PAYMENT_METHODS] = Field(  # type: ignore[valid-type]
        title="Payment method", default="bank_transfer", description="bank_transfer, card, cheque or cash.")
    reference: str = Field(title="Reference", default="", description="Bank reference or cheque number.")


INPUTS: dict[str, type[Answer]] = {
    "qualify": QualifyInput,
    "handoff": HandoffInput,
    "estimate": EstimateInput,
    "decision": DecisionInput,
    "qa": QAInput,
    "shipment": ShipmentInput,
    "payment": PaymentInput,
}
