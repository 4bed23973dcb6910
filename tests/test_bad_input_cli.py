"""Every command, driven with generated bad values (hypothesis): each is refused with exit code 2
and one line on stderr naming what was wrong, never a traceback, and no row of any table changes.
The one thing a refused answer does write is its own line in the audit log ("every refusal leaves
a trace"). Runs on SQLite and, with DEALFLOW_TEST_DATABASE_URL, on PostgreSQL (which refuses NUL
in text and integers past 32 bits, where SQLite would quietly take them)."""

from __future__ import annotations

import hashlib
import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from dealflow.cli import main
from dealflow.scenario import LEAD, play_direct
from models import AuditEntry, Base
from models.crm import FOLLOWUP_KINDS, LEAD_SOURCES, STAGES
from services.db import session_scope

SETTINGS = settings(max_examples=int(os.environ.get("DEALFLOW_HYPOTHESIS_EXAMPLES", "25")), deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])

CONTROL = st.sampled_from([chr(c) for c in [*range(0, 9), 11, 12, *range(14, 32), 127]])
TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), max_size=8)
WORDS = TEXT.filter(str.strip)  # text that trimming does not empty: the bad character stays inside
WITH_CONTROL = st.tuples(WORDS, CONTROL, WORDS).map("".join)
WITH_LINE_BREAK = st.tuples(WORDS, st.sampled_from(["\n", "\r\n", "\r"]), WORDS).map("".join)
HUGE = st.sampled_from([5_000, 100_000, 1_000_000]).map(lambda n: "x" * n)


def longer_than(n: int) -> st.SearchStrategy[str]:
    return st.one_of(st.integers(n + 1, n + 50).map(lambda k: "y" * k), HUGE)


BAD_ID = st.one_of(st.integers(2**31, 10**30), st.integers(-(10**30), 0), st.just("1180591620717411303424"),
                   TEXT.filter(lambda t: not t.strip().lstrip("+-").isdigit()).filter(bool)).map(str)
UNKNOWN_ID = st.integers(10_000, 2**31 - 1).map(str)  # well-formed, but no such record
BAD_WHEN = st.one_of(
    st.just("9999-12-31T23:59:59-23:59"), st.just("0001-01-01T00:00:00+23:59"), st.just("1999-12-31"),
    st.just("2100-01-01"), st.just("+99999999999d"), st.just("+3651d"), st.just("+87601h"), st.just("+1y"),
    st.just("-2d"), TEXT.filter(lambda t: t.strip() and not t.strip()[:1].isdigit()), WITH_CONTROL)
UNKNOWN_HANDLE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12).filter(
    lambda h: h not in ("sofia", "mark", "qa", "delivery", "finance", "manager"))
BAD_HANDLE = st.one_of(UNKNOWN_HANDLE, WITH_CONTROL, longer_than(40), st.just(""))


def _fingerprint() -> dict[str, str]:
    """Every table's rows, hashed (the audit log counted apart: refusals are written to it)."""
    out = {}
    with session_scope() as s:
        for table in Base.metadata.sorted_tables:
            if table.name == "audit_log":
                continue
            rows = s.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


def _audit_rows() -> list[tuple[str, str]]:
    with session_scope() as s:
        return [(a.action, a.actor) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def _refused(args: list[str], refusal_recorded: bool = False) -> None:
    before, audit_before = _fingerprint(), _audit_rows()
    result = CliRunner().invoke(main, args)
    shown = [a[:60] + "…" if len(a) > 60 else a for a in args]
    assert result.exit_code == 2, (shown, result.exit_code, result.output[-500:], result.exception)
    assert result.stdout == "", (shown, result.stdout[:300])
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (shown, result.stderr[:500])
    assert "Traceback" not in result.stderr and len(lines[0]) <= 600, shown
    assert _fingerprint() == before, shown
    added = _audit_rows()[len(audit_before):]
    if refusal_recorded:
        assert len(added) == 1 and added[0][0].endswith(".refused"), (shown, added)
    else:
        assert added == [], (shown, added)


# --- leads -------------------------------------------------------------------------------------

LEAD_ARGS = {"--company": LEAD["company"], "--contact": LEAD["contact_name"], "--email": LEAD["email"],
             "--owner": "sofia", "--phone": LEAD["phone"], "--address": "4 Canal Street", "--source": "web",
             "--notes": "met at the fair"}
BAD_LEAD_FIELDS = {
    "--company": st.one_of(st.just(""), st.just("   "), longer_than(150), WITH_CONTROL, WITH_LINE_BREAK),
    "--contact": st.one_of(st.just(""), longer_than(120), WITH_CONTROL, WITH_LINE_BREAK),
    "--email": st.one_of(TEXT.filter(lambda t: "@" not in t), st.just("a@b.example, c@d.example"),
                         st.just("a@b.example\nBcc: x@evil.example"), WITH_CONTROL,
                         longer_than(200).map(lambda t: t + "@x.example")),
    "--owner": st.one_of(BAD_HANDLE, st.just("mark"), st.just("qa")),  # mark and qa are no sales reps
    "--phone": st.one_of(longer_than(60), WITH_CONTROL, WITH_LINE_BREAK),
    "--address": st.one_of(longer_than(1000), WITH_CONTROL),
    "--source": TEXT.filter(lambda t: t not in LEAD_SOURCES),
    "--notes": st.one_of(longer_than(4000), WITH_CONTROL),
}


@SETTINGS
@given(field=st.sampled_from(sorted(BAD_LEAD_FIELDS)), data=st.data())
def test_lead_add_refuses_every_bad_field(db, field, data):
    value = data.draw(BAD_LEAD_FIELDS[field], label=field)
    args = {**LEAD_ARGS, field: value}
    _refused(["lead", "add", *[x for kv in args.items() for x in kv]])


# --- deals, follow-ups, stages ------------------------------------------------------------------

@pytest.fixture
def deal_at_handoff(new_deal) -> str:
    """A deal whose lead is qualified and converted: the opportunity is worked, the hand-off open."""
    play_direct(new_deal, until="handoff")
    with session_scope() as s:
        from models import FollowUp
        assert s.scalar(select(func.count()).select_from(FollowUp)) == 0
    result = CliRunner().invoke(main, ["followup", "add", new_deal, "--by", "sofia", "--kind", "call",
                                       "--due", "+2d", "--notes", "first call"])
    assert result.exit_code == 0, result.output
    return new_deal


@SETTINGS
@given(args=st.one_of(
    BAD_ID.map(lambda i: ["deal", "start", i]), UNKNOWN_ID.map(lambda i: ["deal", "start", i]),
    st.one_of(TEXT, WITH_CONTROL, HUGE, st.just("DEAL-9999"), st.just("DEAL-99999999999")).map(
        lambda d: ["deal", "show", d]),
    BAD_ID.map(lambda i: ["outbox", "retry", i]), UNKNOWN_ID.map(lambda i: ["outbox", "retry", i]),
    TEXT.filter(lambda t: t not in ("pending", "sending", "sent", "failed")).map(lambda t: ["outbox", "--status", t]),
    st.one_of(WITH_CONTROL, HUGE, st.just("DEAL-4242")).map(lambda d: ["outbox", "--deal", d]),
    TEXT.filter(lambda t: t not in ("sales_rep", "sales_engineer", "qa", "delivery", "finance", "credit",
                                    "manager")).map(
        lambda r: ["inbox", "--role", r]),
    BAD_WHEN.map(lambda w: ["report", "aging", "--as-of", w]),
    BAD_WHEN.map(lambda w: ["report", "stage-times", "--as-of", w]),
    TEXT.map(lambda n: ["report", n + "-no-such-report"]),
    BAD_WHEN.map(lambda w: ["remind", "--as-of", w]),
    WITH_CONTROL.map(lambda p: ["report", "stock", "--csv", p]),
    WITH_CONTROL.map(lambda p: ["demo", "--data-dir", p]),
    TEXT.filter(lambda t: t not in ("open", "won", "lost", "cancelled")).map(lambda t: ["deal", "list", "--status", t]),
    BAD_ID.map(lambda i: ["outbox", "confirm", i, "--by", "manager"]),
    UNKNOWN_ID.map(lambda i: ["outbox", "confirm", i, "--by", "manager"]),
    BAD_HANDLE.map(lambda b: ["outbox", "confirm", "1", "--by", b]),
    # no server is started for a port or a count that cannot be
    st.one_of(st.integers(65536, 10**9), st.integers(-(10**9), 0)).map(lambda p: ["up", "--port", str(p)]),
    st.one_of(st.integers(17, 10**9), st.integers(-(10**9), 0)).map(lambda n: ["up", "--executors", str(n)]),
    st.one_of(st.integers(65, 10**9), st.integers(-(10**9), 0)).map(lambda n: ["executor", "--slots", str(n)]),
))
def test_ids_dates_and_names_that_cannot_be_are_refused(deal_at_handoff, args):
    _refused(args)


@SETTINGS
@given(args=st.one_of(
    BAD_WHEN.map(lambda w: ["--due", w]),
    TEXT.filter(lambda t: t not in FOLLOWUP_KINDS).map(lambda k: ["--kind", k]),
    st.one_of(longer_than(4000), WITH_CONTROL).map(lambda n: ["--notes", n]),
    BAD_HANDLE.map(lambda b: ["--by", b]),
))
def test_followup_add_refuses_every_bad_value(deal_at_handoff, args):
    base = {"--by": "sofia", "--kind": "call", "--due": "+1d", "--notes": "call back"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    _refused(["followup", "add", deal_at_handoff, *[x for kv in base.items() for x in kv]])


@SETTINGS
@given(args=st.one_of(
    BAD_ID.map(lambda i: [i, "--by", "sofia", "--outcome", "done"]),
    UNKNOWN_ID.map(lambda i: [i, "--by", "sofia", "--outcome", "done"]),
    st.one_of(longer_than(4000), WITH_CONTROL, st.just(""), st.just("  \n ")).map(
        lambda o: ["1", "--by", "sofia", "--outcome", o]),
    BAD_HANDLE.map(lambda b: ["1", "--by", b, "--outcome", "done"]),
))
def test_followup_done_refuses_every_bad_value(deal_at_handoff, args):
    _refused(["followup", "done", *args])


@SETTINGS
@given(args=st.one_of(
    st.one_of(TEXT.filter(lambda t: t not in STAGES), WITH_CONTROL, longer_than(30), st.just("closed_won"),
              st.just("closed_lost")).map(lambda st_: [st_, "--by", "sofia"]),
    st.one_of(st.integers(101, 10**30), st.integers(-(10**30), -1)).map(
        lambda p: ["proposal", "--by", "sofia", "--probability", str(p)]),
    st.one_of(BAD_HANDLE, st.just("qa")).map(lambda b: ["proposal", "--by", b]),
))
def test_a_stage_move_refuses_every_bad_value(deal_at_handoff, args):
    _refused(["opportunity", "stage", deal_at_handoff, *args])


# --- answers: refused before the flow sees them, and on the record ---------------------------------

@SETTINGS
@given(args=st.one_of(
    BAD_HANDLE.map(lambda b: ["--by", b, "--set", "engineer=mark"]),
    st.just(["--by", "qa", "--set", "engineer=mark"]),  # not a sales rep
    st.one_of(BAD_HANDLE, st.just("sofia")).map(lambda e: ["--by", "sofia", "--set", f"engineer={e}"]),
    st.one_of(longer_than(2000), WITH_CONTROL).map(lambda n: ["--by", "sofia", "--set", "engineer=mark",
                                                               "--set", f"note={n}"]),
    st.one_of(TEXT, WITH_CONTROL).map(lambda j: ["--by", "sofia", "--input", "{" + j]),
    st.just(["--set", "engineer=mark"]),
    WITH_CONTROL.map(lambda k: ["--by", "sofia", "--set", f"engineer=mark{k}"]),
))
def test_an_answer_refused_by_its_checks_changes_nothing_but_leaves_a_trace(deal_at_handoff, args):
    _refused(["answer", deal_at_handoff, "handoff", *args], refusal_recorded=True)


@SETTINGS
@given(args=st.one_of(
    st.one_of(BAD_HANDLE, st.just("sofia")).map(lambda e: [e, "--by", "sofia"]),
    BAD_HANDLE.map(lambda b: ["mark", "--by", b]),
    st.one_of(longer_than(2000), WITH_CONTROL).map(lambda n: ["mark", "--by", "sofia", "--note", n]),
))
def test_a_hand_off_refused_by_its_checks_changes_nothing_but_leaves_a_trace(deal_at_handoff, args):
    engineer, *options = args  # after "--", an engineer typed as "-x" is a value, not an unknown option
    _refused(["opportunity", "assign", *options, "--", deal_at_handoff, engineer], refusal_recorded=True)


# --- the fault suite's own findings, as examples ---------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["deal", "start", "1180591620717411303424"], "error: Invalid value for 'LEAD_ID': 1180591620717411303424 is not "
                                                  "in the range 1<=x<=2147483647. (see `dealflow deal start --help`)"),
    (["followup", "done", "1180591620717411303424", "--by", "sofia", "--outcome", "x"],
     "error: Invalid value for 'FOLLOWUP_ID': 1180591620717411303424 is not in the range 1<=x<=2147483647. "
     "(see `dealflow followup done --help`)"),
    (["outbox", "retry", "1180591620717411303424"], "error: Invalid value for 'EMAIL_ID': 1180591620717411303424 is "
                                                    "not in the range 1<=x<=2147483647. (see `dealflow outbox retry --help`)"),
    (["followup", "add", "{deal}", "--by", "sofia", "--kind", "call", "--due", "+99999999999d"],
     "error: due: +99999999999d is more than ten years ahead (at most +3650d)"),
    (["followup", "add", "{deal}", "--by", "sofia", "--kind", "call", "--due", "+4000d"],
     "error: due: +4000d is more than ten years ahead (at most +3650d)"),
    (["report", "aging", "--as-of", "9999-12-31T23:59:59-23:59"],
     "error: as-of: must be between 2000-01-01 and 2100-01-01, got '9999-12-31T23:59:59-23:59'"),
    (["followup", "add", "{deal}", "--by", "sofia", "--kind", "call", "--due", "+1d", "--notes", "n" * 1_000_000],
     "error: notes: must be at most 4000 characters, got 1000000"),
    (["followup", "done", "1", "--by", "sofia", "--outcome", "o" * 1_000_000],
     "error: outcome: must be at most 4000 characters, got 1000000"),
])
def test_what_the_fault_suite_found_is_one_clear_line(deal_at_handoff, args, message):
    before = _fingerprint()
    result = CliRunner().invoke(main, [a.replace("{deal}", deal_at_handoff) for a in args])
    assert (result.exit_code, result.stderr) == (2, message + "\n")
    assert _fingerprint() == before


@pytest.mark.parametrize("answer, message", [
    (["--by", "sofia", "--set", "engineer=mark", "--set", "note=" + "n" * 1_000_000],
     "error: note: must be at most 2000 characters, got 1000000"),
    (["--by", "sofia", "--set", "engineer=mark", "--set", "note=a\x00b"],
     "error: set: must not contain control characters (only line breaks and tabs)"),
])
def test_a_bad_hand_off_is_refused_and_recorded_once(deal_at_handoff, answer, message):
    audit_before = _audit_rows()
    result = CliRunner().invoke(main, ["answer", deal_at_handoff, "handoff", *answer])
    assert (result.exit_code, result.stderr) == (2, message + "\n")
    assert _audit_rows()[len(audit_before):] == [("handoff.refused", "sofia")]


def test_numbers_too_long_to_read_and_answers_nested_without_end_are_one_line_and_recorded(deal_at_handoff,
                                                                                        tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"by": "sofia", "engineer": ' + "[" * 100_000 + "]" * 100_000 + "}")
    nested = tmp_path / "nested.json"
    nested.write_text('{"by": "sofia", "engineer": "mark", "note": ' + "[" * 500 + "]" * 500 + "}")
    for args, message, who in [
        (["--by", "sofia", "--set", "engineer=mark", "--set", "budget=" + "9" * 5000],
         "error: set: '9999999999999999999999999999999999999999999999999999999999… is not a value dealflow can read",
         "sofia"),
        (["--input", f"@{deep}"], "error: input: is not JSON dealflow can read (RecursionError)", "?"),  # never read
        (["--input", f"@{nested}"], "error: note: must be text", "sofia"),  # kept 8 deep
    ]:
        audit_before = _audit_rows()
        result = CliRunner().invoke(main, ["answer", deal_at_handoff, "handoff", *args])
        assert (result.exit_code, result.stderr) == (2, message + "\n")
        assert _audit_rows()[len(audit_before):] == [("handoff.refused", who)]


def test_an_estimate_sku_with_a_nul_is_refused_before_the_database_sees_it(new_deal):
    play_direct(new_deal, until="estimate-rev-1")
    before = _fingerprint()
    result = CliRunner().invoke(main, ["answer", new_deal, "estimate", "--by", "mark", "--input",
                                       '{"lines": [{"sku": "VMC\\u0000850", "quantity": 1}]}'])
    assert (result.exit_code, result.stderr) == (
        2, "error: Line 1, product: must be one line, without line breaks or control characters\n")
    assert _fingerprint() == before
    with session_scope() as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert (entry.action, entry.actor, entry.subject, entry.details["door"]) == (
            "estimate.refused", "mark", "estimate-rev-1", "command line")
        assert entry.details["answer"]["lines"][0]["sku"] == "VMC\ufffd850"  # recorded, made safe to keep


def test_a_qualify_note_with_a_nul_is_refused_with_its_field_by_the_flow_too(new_deal):
    from .helpers import record_answer

    play_direct(new_deal, until="qualify")
    result = record_answer.fn(new_deal, "qualify", {"by": "sofia", "qualified": True, "notes": "a\x00b"})
    assert result == {"accepted": False,
                      "reason": "notes: must not contain control characters (only line breaks and tabs)"}
