"""What a person typed stays text in the Prefect UI's Markdown: no tag, link, image or new block.
Checked here with a CommonMark renderer set up like GitHub's (raw HTML on, bare addresses made
into links, tables) over generated text; the real UI is checked in a browser (test_real_use)."""

from __future__ import annotations

import html
import re

from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from models.markdown import Markdown, cells, escape, plain, table

RENDER = MarkdownIt("gfm-like")  # html, linkify, tables, strike-through
TYPED = st.text(alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), max_size=60)
NASTY = st.sampled_from([
    "<script>alert(1)</script> [x](javascript:alert(1))", "![](http://evil.example/x)", "<img src=x onerror=alert(1)>",
    "www.evil.example", "http://evil.example", "mail me: a@evil.example", "# Heading", "- item", "1. item",
    "| a | b |", "**bold** _em_ ~~del~~ `code`", "&lt;b&gt; &amp;", "\\*not bold\\*", "[ref]: http://evil.example",
    "<http://evil.example>", "===", "> quote", "    indented code", "\\", "x\\", "1) item", "+ item"])


def _text(rendered: str) -> str:
    """What a reader sees: the word joiners that keep an address from becoming a link are invisible."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).replace("\u2060", "").strip()


def _tags(rendered: str) -> set[str]:
    return set(re.findall(r"<\s*([a-zA-Z0-9]+)", rendered))


@given(st.one_of(TYPED, NASTY, st.tuples(NASTY, TYPED, NASTY).map(" ".join)))
def test_an_escaped_value_renders_as_exactly_the_text_that_was_typed(value):
    rendered = RENDER.render(escape(value))
    assert _tags(rendered) <= {"p"}, rendered
    assert _text(rendered) == " ".join(value.split())
    assert plain(escape(value)) == " ".join(value.split())


@given(st.lists(st.one_of(TYPED, NASTY), min_size=1, max_size=4))
def test_escaped_values_stay_in_their_own_table_cells(values):
    rendered = RENDER.render(table([f"c{i}" for i in range(len(values))], [values]))
    assert _tags(rendered) <= {"table", "thead", "tbody", "tr", "th", "td"}, rendered
    row = re.findall(r"<td>(.*?)</td>", rendered, flags=re.S)
    assert [html.unescape(c).replace("\u2060", "").strip() for c in row] == [" ".join(v.split()) for v in values]


def test_values_put_into_markdown_are_escaped_and_markdown_is_not():
    page = Markdown("# {} · {}").format("DEAL-0001", "![](http://evil.example/x)")
    assert page == "# DEAL-0001 · !\\[\\](http\u2060\\://evil\\.example/x)"  # joined: never a link
    assert Markdown("**{}**").format(Markdown("_ours_")) == "**_ours_**"
    assert Markdown("a ") + "<b>" == "a \\<b\\>"
    assert Markdown(", ").join(["<i>", Markdown("*x*")]) == "\\<i\\>, *x*"
    assert isinstance(Markdown("{}").format("x") + "y", Markdown)
    from decimal import Decimal
    assert Markdown("total {} on {:%Y-%m-%d}").format(Decimal("1234.50"), __import__("datetime").date(2026, 1, 2)) \
        == "total 1234.50 on 2026-01-02"


def test_table_artifact_cells_are_escaped_and_numbers_kept():
    assert cells([{"sku": "<b>X</b>", "qty": 3, "ok": True, "none": None}]) == [
        {"sku": "\\<b\\>X\\</b\\>", "qty": 3, "ok": True, "none": None}]
