"""Rules for what a person types: names and references are one line of bounded length; free text
(notes) may span lines, is bounded too, and never holds control characters other than line
breaks and tabs (PostgreSQL refuses NUL outright; the others break mail headers and terminals);
a record id is a number the database can hold."""

from __future__ import annotations

import re
import unicodedata

from .errors import ValidationError

ALLOWED_IN_NOTES = frozenset("\n\t")


MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database


def is_control(char: str, allowed: frozenset[str] = frozenset()) -> bool:
    # Cs: a lone surrogate (no character at all) that some decoders let through
    return unicodedata.category(char) in ("Cc", "Cs") and char not in allowed


def has_control(text: str, allowed: frozenset[str] = frozenset()) -> bool:
    return any(is_control(c, allowed) for c in text)


def one_line(value: object, field: str, max_len: int, required: bool = False) -> str:
    """Trimmed text with no line breaks or other control characters, at most ``max_len`` long."""
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise ValidationError(field, "must not be empty")
    if has_control(text):
        raise ValidationError(field, "must be one line, without line breaks or control characters")
    if len(text) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters, got {len(text)}")
    return text


def bounded(value: object, field: str, max_len: int) -> str:
    """Free text (notes may span lines), at most ``max_len`` long; Windows line ends become
    plain ones, and no control character but line breaks and tabs is let in."""
    text = "" if value is None else str(value).replace("\r\n", "\n").strip()
    if has_control(text, ALLOWED_IN_NOTES):
        raise ValidationError(field, "must not contain control characters (only line breaks and tabs)")
    if len(text) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters, got {len(text)}")
    return text


def printable(value: object, max_len: int) -> str:
    """What someone typed, made safe to *record* (an audit row, a refusal): control characters
    shown as U+FFFD, cut to ``max_len``. Never a way to accept input."""
    text = "" if value is None else str(value)
    text = "".join("\ufffd" if is_control(c, ALLOWED_IN_NOTES) else c for c in text[: max_len * 2])
    return text[:max_len]


def shown(value: object, max_len: int = 60) -> str:
    """A typed value quoted inside an error message: its repr, cut to stay one short line."""
    text = repr(value)
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def check_id(value: object, field: str) -> int:
    """A record id someone typed: a whole number the database can hold, checked before it is asked."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise ValidationError(field, f"must be a whole number from 1 to {MAX_ID:,}, got {shown(value, 40)}")
    return value


def ago(seconds: float) -> str:
    """How long ago, as a person says it: 'just now', '12 min ago', '2 h ago', '3 d ago'."""
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


# a form's field as people name it (the forms' titles), for messages: never a path like lines[2].sku
FIELD_WORDS = {"sku": "product", "discount_pct": "discount %", "quantity": "quantity"}


def field_words(*path: object) -> str:
    """Where in an answer, as people say it: ('lines', 2, 'sku') -> 'Line 2, product'; a top-level
    field keeps its name (what `--set NAME=…` takes)."""
    parts, words = list(path), []
    while parts:
        part = parts.pop(0)
        if part == "lines" and parts and isinstance(parts[0], int):
            words.append(f"Line {parts.pop(0)}")
        elif isinstance(part, int):
            words.append(f"item {part}")
        else:
            words.append(FIELD_WORDS.get(str(part), str(part)) if words else str(part))
    return ", ".join(words) or "answer"


def rule_words(kind: str, message: str, ctx: dict | None = None) -> str:
    """A pydantic error as a rule a person reads ('must be a whole number'), not its wording
    ('input should be a valid integer, unable to parse string as an integer')."""
    ctx = ctx or {}
    said = {"int_parsing": "must be a whole number", "int_type": "must be a whole number",
            "int_from_float": "must be a whole number", "decimal_parsing": "must be a number",
            "decimal_type": "must be a number", "float_parsing": "must be a number", "float_type": "must be a number",
            "bool_parsing": "must be yes or no (true or false)", "bool_type": "must be yes or no (true or false)",
            "missing": "is needed", "date_parsing": "must be a date as YYYY-MM-DD",
            "date_from_datetime_parsing": "must be a date as YYYY-MM-DD", "date_type": "must be a date as YYYY-MM-DD",
            "string_type": "must be text", "list_type": "must be a list", "dict_type": "must be a set of fields"}
    if kind in said:
        return said[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}".rstrip()
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "")
        return {"greater_than_equal": f"must be at least {bound}", "greater_than": f"must be more than {bound}",
                "less_than_equal": f"must be at most {bound}", "less_than": f"must be less than {bound}"}[kind]
    if kind in ("string_too_long", "too_long"):
        return f"is too long (at most {ctx.get('max_length', '?')})"
    return message[:1].lower() + message[1:]


_SCHEMA_REFUSAL = re.compile(r"(?:Reason: )?Validation failed(?: for field '([^']*)')?\. Failure reason: (.*)", re.S)
_SCHEMA_RULES = [
    (re.compile(r".+ is greater than the maximum of (.+)"), "must be at most {0}"),
    (re.compile(r".+ is less than the minimum of (.+)"), "must be at least {0}"),
    (re.compile(r".+ is not one of \[(.+)\]"), "must be one of {0}"),
    (re.compile(r".+ is not of type 'integer'"), "must be a whole number"),
    (re.compile(r".+ is not of type 'number'"), "must be a number"),
    (re.compile(r".+ is not of type 'string'"), "must be text"),
    (re.compile(r".+ is not of type 'boolean'"), "must be yes or no"),
]


def schema_refusal_words(reason: str) -> str | None:
    """A form's answer refused by its JSON schema, as Prefect words it ("Validation failed for
    field 'lines[2].discount_pct'. Failure reason: 150 is greater than the maximum of 100"), in the
    team's words ("Line 3, discount %: must be at most 100"); None if it is not such a refusal."""
    match = _SCHEMA_REFUSAL.match(reason.strip())
    if not match:
        return None
    path: list[object] = [int(p[1:-1]) + 1 if p.startswith("[") else p
                          for p in re.findall(r"\[\d+\]|[^.\[\]]+", match.group(1) or "")]
    rule = match.group(2).strip()
    required = re.fullmatch(r"'([^']+)' is a required property", rule)
    if required:
        path.append(required.group(1))
        rule = "is needed"
    else:
        for pattern, words in _SCHEMA_RULES:
            found = pattern.fullmatch(rule)
            if found:
                rule = words.format(*found.groups())
                break
    return f"{field_words(*path)}: {rule}"
