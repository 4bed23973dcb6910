"""The answer fields of a wait, as plain pydantic models, and how they show as a form.

A wait's fields (``QualifyFields``…) say what a person enters, with a title and a description
on every field; ``flows.inputs`` makes the Prefect form of them. The helpers here shape the
form's JSON schema (what the Prefect UI renders): a plain input per field, never a type chooser,
the wait's choices as selects, in the team's words.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, PlainSerializer, WithJsonSchema


def _number(value: Decimal | float | int) -> int | float:
    """An amount in an answer's JSON: a JSON number, as the form's number input sends it (the
    server checks answers against the form's schema). Read back, pydantic makes it the same
    Decimal (from the float's shortest text: 12.34 stays 12.34)."""
    value = value if isinstance(value, Decimal) else Decimal(str(value))  # a default given as a number
    return int(value) if value == value.to_integral_value() else float(value)


# Money and percentages: a plain number input in the UI (a bare Decimal shows a "number | string"
# chooser), a Decimal inside, a JSON number on the wire.
Amount = Annotated[Decimal, WithJsonSchema({"type": "number"}), PlainSerializer(_number, when_used="json")]


class Fields(BaseModel):
    """The fields of one wait's answer. ``choices``: what this wait's form offers to pick from
    (set on the form made for one wait); ``fit_schema`` puts them into the form's schema.
    ``words``: the choices the form offers in the team's words, per field ({word: code
    recorded}); every door reads either as the code (``WaitKind.read``)."""

    choices: ClassVar[dict[str, Any]] = {}
    words: ClassVar[dict[str, dict[str, str]]] = {}

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        """Put the wait's choices into the form's schema (the answer's Python types stay those of
        the class: a stored answer is read back whatever the catalogue says by then): here, the
        choices in words only."""
        for field, table in cls.words.items():
            words_only(schema, field, table)

    @classmethod
    def fit_answer(cls, answer: dict[str, Any], schema: dict) -> dict[str, Any]:
        """An answer made to fit the stored form's choices (``dealflow answer`` gives a plain SKU
        where the form lists "SKU — name — price — stock"; a code where it offers words)."""
        for field, table in cls.words.items():
            answer = as_offered(answer, schema, field, table)
        return answer


def plain(prop: dict) -> dict:
    """An optional field as the input of its type: empty means "not given" (a "type | null"
    chooser, or a null default the server would refuse, helps no one)."""
    options = prop.get("anyOf")
    if options and len(options) == 2 and {"type": "null"} in options:
        kept = dict(next(o for o in options if o != {"type": "null"}))
        prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **kept}
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


def inline(model: type[BaseModel]) -> dict:
    """A nested model's schema written out in place (so a wait can add its choices to it)."""
    schema = model.model_json_schema()
    schema["properties"] = {k: plain(v) for k, v in schema["properties"].items()}
    return schema


def pick(schema: dict, field: str, nested: type[BaseModel], options: list[str]) -> None:
    """The lines' ``sku`` as a select of ``options`` (an empty list: left as text)."""
    if not options or field not in schema.get("properties", {}):
        return
    items = inline(nested)
    items["properties"]["sku"] = {**items["properties"]["sku"], "type": "string", "enum": list(options)}
    schema["properties"][field]["items"] = items


def as_offered(answer: dict[str, Any], schema: dict, field: str, words: dict[str, str]) -> dict[str, Any]:
    """A choice as the stored form offers it: its words ('ask for changes'), or its code
    ('request_changes') in a form stored before the forms spoke in words."""
    offered = (schema.get("properties", {}).get(field) or {}).get("enum") or []
    value = answer.get(field)
    if value is None or value in offered:
        return answer
    code = words.get(str(value).strip().lower(), value)
    word = next((w for w, c in words.items() if c == code), code)
    return {**answer, field: word if word in offered else code if code in offered else value}


def words_only(schema: dict, field: str, words: dict[str, str]) -> None:
    """The form offers a choice in the team's words only; the answer model also takes the code
    recorded for it (what `dealflow answer --set` is given), which the domain reads the same."""
    prop = schema.get("properties", {}).get(field)
    if isinstance(prop, dict) and "enum" in prop:
        prop["enum"] = list(words)
