"""A form's choices in the team's words ('ask for changes', 'bank transfer', 'signed document')
and the codes that are recorded ('request_changes', 'bank_transfer', 'signed_document'): the
forms offer the words; every door reads either as the code. Which field offers which words is
the wait kind's to say (``WaitKind.words``)."""

from __future__ import annotations

from typing import Any

Words = dict[str, dict[str, str]]  # field -> {what a form offers, in the team's words: what is recorded}


def coded(words: Words, answer: dict[str, Any]) -> dict[str, Any]:
    """Choices picked in the team's words ('ask for changes') read as what is recorded
    ('request_changes'); a code as such (`--set decision=request_changes`) stays."""
    out = dict(answer)
    for name, table in words.items():
        value = out.get(name)
        by_word = {word.lower(): code for word, code in table.items()}  # 'before QA and release' too
        if isinstance(value, str) and value.strip().lower() in by_word:
            out[name] = by_word[value.strip().lower()]
    return out


def in_words(words: Words, answer: dict[str, Any]) -> dict[str, Any]:
    """An answer's choices as its form offers them (what the form's schema takes): the command
    line's `decision=request_changes` is sent as 'ask for changes'; read back, it is the same."""
    out = dict(answer)
    for name, table in words.items():
        by_code = {code: word for word, code in table.items()}
        if out.get(name) in by_code:
            out[name] = by_code[out[name]]
    return out
