"""Markdown for the Prefect UI, with everything a person typed shown as typed, never as markup.

The Prefect UI renders the deal's page, the wait forms' descriptions and the cells of table
artifacts as Markdown (GitHub flavour: raw HTML, links, images and bare web and e-mail addresses
all become live). A company called ``<script>…`` or ``![](http://evil.example/x)`` must show as
those characters: no tag, no link, no image fetched.

``Markdown`` is text we wrote; like ``markupsafe.Markup`` for HTML, whatever goes into it through
``format``, ``+`` or ``join`` is escaped unless it is ``Markdown`` itself, so escaping cannot be
forgotten one value at a time::

    Markdown("# {} · {}").format(deal.number, deal.customer_name)

``escape`` makes one value inert: the characters that make markup are backslash-escaped (which
every CommonMark renderer shows as the plain character), web and e-mail addresses are broken up
(by escapes, and by an invisible word joiner for the UIs that link addresses in the text they
show) so that they do not become links, and the value is kept to one line so that it cannot start a
heading, a list or a table row of its own.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

# Characters that open or close markup wherever they stand: emphasis, code, strike-through, links
# and images, raw HTML and entities, table cells, and the ':' and '@' of addresses that GitHub's
# Markdown would turn into links.
_INLINE = frozenset("\\`*_~[]<>&|:@")
_LINE_START = re.compile(r"^(?:[-+=#>]|\d{1,9}[.)])")  # a heading, quote, list or underline if it starts a line
_DOT = re.compile(r"\.(?=\w)")
# The newer Prefect UI also turns web and e-mail addresses into links after the escapes are read
# (what a linkifier sees is the text shown): a WORD JOINER (U+2060, invisible, no width) between
# the parts it looks for keeps them apart, so "http://…", "www.…" and "a@b.c" show as typed and
# stay text
_JOIN = "\u2060"
_ADDRESS_PARTS = [(re.compile(r"(?i)(https?|ftp|mailto|file)(\\?:)"), rf"\1{_JOIN}\2"),
                  (re.compile(r"(?i)\b(www)(\\?\.)"), rf"\1{_JOIN}\2"),
                  (re.compile(r"(\\?@)"), rf"{_JOIN}\1")]


def escape(value: Any) -> str:
    """``value`` as inert Markdown text, on one line."""
    if isinstance(value, Markdown):
        return str(value)
    text = " ".join(str(value).split())
    text = "".join("\\" + c if c in _INLINE else c for c in text)
    text = _DOT.sub("\\\\.", text)  # a name like "a.al" would otherwise become a link to a domain
    for pattern, joined in _ADDRESS_PARTS:
        text = pattern.sub(joined, text)
    match = _LINE_START.match(text)
    if match:
        text = text[: match.end() - 1] + "\\" + text[match.end() - 1:]
    return text


def plain(markdown: str) -> str:
    """What a reader sees of escaped text (the backslashes and word joiners gone): for tests and
    plain-text views."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(markdown)).replace(_JOIN, "")


_OURS = (int, float, Decimal, date)  # numbers, amounts and dates hold no markup (date covers datetime)


class _Formatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Markdown) or (isinstance(value, _OURS) and not isinstance(value, bool)):
            return format(value if not isinstance(value, Markdown) else str(value), format_spec)
        return escape(format(value, format_spec))

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "s" and isinstance(value, Markdown):
            return value  # still ours
        converted = super().convert_field(value, conversion)
        return converted if conversion is None else str(converted)  # {x!r}: text to escape


_FORMATTER = _Formatter()


class Markdown(str):
    """Markdown text we wrote. Values put into it are escaped unless they are Markdown too."""

    __slots__ = ()

    def format(self, *args: Any, **kwargs: Any) -> Markdown:  # type: ignore[override]
        return Markdown(_FORMATTER.vformat(self, args, kwargs))

    def __add__(self, other: Any) -> Markdown:  # type: ignore[override]
        return Markdown(str.__add__(self, escape(other)))

    def __radd__(self, other: Any) -> Markdown:
        # plain text on the left is escaped too (as markupsafe does): write Markdown("...") + x
        return Markdown(str.__add__(escape(other), self))

    def join(self, items: Iterable[Any]) -> Markdown:  # type: ignore[override]
        return Markdown(str.join(self, (escape(x) for x in items)))


_SAFE_URL = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?")


def link(text: Any, url: str) -> Markdown:
    """``[text](url)`` with the text escaped and only a plain http(s) URL of letters, digits and
    ``.:/_~-`` (what dealflow makes: the portal's address and a signed token); any other URL is
    shown as escaped text, never as a link."""
    if not isinstance(url, str) or not _SAFE_URL.fullmatch(url):
        return Markdown("{}").format(text)
    return Markdown("[{}](" + url + ")").format(text)


def table(header: Iterable[str], rows: Iterable[Iterable[Any]], align: Iterable[str] | None = None) -> Markdown:
    """A Markdown table whose cells are escaped (a '|' typed in a name is a character, not a column)."""
    header = list(header)
    marks = list(align) if align is not None else ["---"] * len(header)
    lines = [Markdown("| ") + Markdown(" | ").join(Markdown(h) for h in header) + Markdown(" |"),
             Markdown("|" + "|".join(marks) + "|")]
    lines += [Markdown("| ") + Markdown(" | ").join(row) + Markdown(" |") for row in rows]
    return Markdown("\n").join(lines)


def cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A table artifact's rows with every cell but numbers, booleans and empty ones escaped as
    text (the UI renders text cells as Markdown)."""
    return [{k: v if v is None or isinstance(v, bool | int | float) else escape(v) for k, v in row.items()}
            for row in rows]
