"""Rules for text a person types: names and references are one line of bounded length."""

from __future__ import annotations

import unicodedata

from .errors import ValidationError


def one_line(value: object, field: str, max_len: int, required: bool = False) -> str:
    """Trimmed text with no line breaks or other control characters, at most ``max_len`` long."""
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise ValidationError(field, "must not be empty")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise ValidationError(field, "must be one line, without line breaks or control characters")
    if len(text) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters, got {len(text)}")
    return text


def bounded(value: object, field: str, max_len: int) -> str:
    """Free text (notes may span lines), at most ``max_len`` long."""
    text = "" if value is None else str(value).strip()
    if len(text) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters, got {len(text)}")
    return text
