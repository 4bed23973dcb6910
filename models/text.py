"""Rules for what a person types: names and references are one line of bounded length; free text
(notes) may span lines, is bounded too, and never holds control characters other than line
breaks and tabs (PostgreSQL refuses NUL outright; the others break mail headers and terminals);
a record id is a number the database can hold."""

from __future__ import annotations

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
