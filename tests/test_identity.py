"""Answers you can prove: staff accounts, one-time codes, signed sessions, the lock after wrong
codes, a manager standing in, codes switched off for a trial; and no code or key written where
others can read it. The flow's own check is ``record_answer`` (what runs after a resume from the
UI, which skips every check of the CLI); the CLI's is ``dealflow answer`` / ``check_answer``."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update

from dealflow.cli import main
from dealflow.login import session_file
from dealflow.scenario import TEAM, play_direct, start_scenario_deal
from models import AuditEntry, Base, StaffUser, Wait, identity
from models.deal import deal_by_number
from models.markdown import plain
from models.staff import ROLES
from services import keys
from services.db import session_scope
from tasks.deal_steps import open_wait, plan_next_step
from tasks.deal_steps import record_answer as flow_check  # the flow's check, on the answer as sent

from .helpers import (
    check_answer,
    code_of,
    in_background,
    proved,
    resume_as_the_ui,
    wait_for_run,
)


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def refusals(deal_number: str | None = None) -> list[tuple[str, str, str]]:
    with session_scope() as s:
        q = select(AuditEntry).where(AuditEntry.action.like("%.refused")).order_by(AuditEntry.id)
        return [(e.action, e.subject, e.details["reason"]) for e in s.scalars(q)]


def waits_at(deal_number: str) -> str:
    """The key the deal waits at now (its wait opened, as the flow opens it)."""
    step = plan_next_step(deal_number)
    assert step["kind"] == "wait"
    open_wait(deal_number, step["name"], step["key"], None)
    return step["key"]


# --- the flow's check after a resume ---------------------------------------------------------------

def test_an_answer_with_no_proof_or_a_code_in_it_is_refused_as_tampered_and_the_deal_waits_again(new_deal):
    play_direct(new_deal, until="qualify")
    answer = {"by": "sofia", "qualified": True}
    result = flow_check.fn(new_deal, "qualify", answer)
    assert not result["accepted"]
    assert result["reason"] == ("proof: none; answer in the Prefect UI through dealflow's gateway (signed in), "
                                "or with `dealflow answer` after `dealflow login`")
    assert waits_at(new_deal) == "qualify-retry-1"
    # a code is typed once, to sign in: never sent in an answer (Prefect keeps answers readable)
    result = flow_check.fn(new_deal, "qualify-retry-1", {**answer, "code": code_of("sofia")})
    assert result["reason"] == ("code: a one-time code is never part of an answer (Prefect keeps answers where "
                                "others read them); sign in at the gateway, or `dealflow login`")
    assert waits_at(new_deal) == "qualify-retry-2"
    assert [r[:2] for r in refusals()] == [("qualify.refused", "qualify"), ("qualify.refused", "qualify-retry-1")]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(identity.AnswerFailure)) == 0  # no code was checked
        assert s.scalars(select(StaffUser.totp_last_step).where(StaffUser.handle == "sofia")).one() is None
        tried = [e.details["proof"] for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "qualify.refused")
                                                                  .order_by(AuditEntry.id))]
        assert tried == ["none", "one-time code"]
        tampered = [e.subject for e in s.scalars(select(AuditEntry).where(AuditEntry.action == identity.TAMPERED)
                                                 .order_by(AuditEntry.id))]
        assert tampered == ["qualify", "qualify-retry-1"]

def test_a_code_opens_one_session_and_the_next_code_opens_the_next(db):
    code = code_of("sofia")
    with session_scope() as s:
        assert identity.open_session(s, "sofia", code, keys.cipher(), door="test").handle == "sofia"
        s.commit()
    with session_scope() as s:
        with pytest.raises(identity.ProofRefused, match=r"^code: already used \(a code works once\); wait for the next"):
            identity.open_session(s, "sofia", code, keys.cipher(), door="test")
        s.commit()
        assert identity.open_session(s, "sofia", code_of("sofia", ahead=1), keys.cipher(), door="test")
        s.commit()
        assert s.scalar(select(func.count()).select_from(identity.StaffSession)) == 2

def test_a_signed_answer_is_good_for_its_own_wait_and_answer_only(new_deal):
    other = start_scenario_deal(company="Second Plant Ltd")
    play_direct(new_deal, until="qualify")
    play_direct(other, until="qualify")
    signed = proved(new_deal, "qualify", {"by": "sofia", "qualified": True, "notes": "real"})
    # the same signature on another deal's wait, then on another answer to this wait
    assert flow_check.fn(other, "qualify", signed)["reason"].startswith("signature: does not match this deal")
    changed = {**signed, "qualified": False}
    assert flow_check.fn(new_deal, "qualify", changed)["reason"].startswith("signature: does not match")
    assert waits_at(new_deal) == "qualify-retry-1"
    assert flow_check.fn(new_deal, "qualify-retry-1", proved(new_deal, "qualify-retry-1",
                                                             {"by": "sofia", "qualified": True}))["accepted"]


def test_an_expired_or_closed_session_is_refused(new_deal):
    play_direct(new_deal, until="qualify")
    login = TEAM.login("sofia")
    with session_scope() as s:
        s.execute(update(identity.StaffSession).where(identity.StaffSession.id == login.session)
                  .values(expires_at=datetime(2020, 1, 1)))
        s.commit()
    answer = {"by": "sofia", "qualified": True}
    result = flow_check.fn(new_deal, "qualify", {**answer, **login.prove(new_deal, "qualify", answer)})
    assert result["reason"].startswith("session: expired at 2020-01-01 00:00 UTC; log in again")
    TEAM._logins.clear()
    fresh = TEAM.login("sofia")
    with session_scope() as s:
        assert identity.close_session(s, fresh.session)
        s.commit()
    key = waits_at(new_deal)
    result = flow_check.fn(new_deal, key, {**answer, **fresh.prove(new_deal, key, answer)})
    assert result["reason"].startswith("session: sofia logged out of it")
    TEAM._logins.clear()


def test_a_disabled_person_a_wrong_role_and_one_not_enrolled_are_refused(new_deal):
    play_direct(new_deal, until="qualify")
    answer = {"by": "qa", "qualified": True, "code": code_of("qa")}
    assert flow_check.fn(new_deal, "qualify", answer)["reason"] == (
        "by: qa (qa) may not answer 'qualify'; it needs the role sales_rep")
    assert run("staff", "add", "ana", "--name", "Ana Silva", "--email", "ana@glocial.example",
               "--role", "sales_rep")[0] == 0
    assert flow_check.fn(new_deal, waits_at(new_deal), {"by": "ana", "qualified": True, "code": "123456"})["reason"] == (
        "by: ana is not enrolled for one-time codes; a manager runs `dealflow staff enroll ana`")
    login = TEAM.login("sofia")
    assert run("staff", "disable", "sofia")[0] == 0
    answer = {"by": "sofia", "qualified": True}
    key = waits_at(new_deal)
    result = flow_check.fn(new_deal, key, {**answer, **login.prove(new_deal, key, answer)})
    assert result["reason"] == "by: sofia is disabled and may not answer"
    assert waits_at(new_deal) == "qualify-retry-3"
    TEAM._logins.clear()


def _sign_in(handle: str, code: str):
    with session_scope() as s:
        try:
            return identity.open_session(s, handle, code, keys.cipher(), door="test")
        except identity.ProofRefused as exc:
            s.commit()
            return str(exc)
        finally:
            s.commit()


def test_five_wrong_codes_lock_a_person_and_each_next_lock_lasts_twice_as_long(new_deal):
    play_direct(new_deal, until="qualify")
    TEAM._logins.clear()
    login = TEAM.login("sofia")  # a session opened before the lock
    with session_scope() as s:
        used = s.scalars(select(StaffUser.totp_last_step).where(StaffUser.handle == "sofia")).one()
    for _ in range(5):
        result = _sign_in("sofia", TEAM.wrong_code("sofia"))
    assert result.startswith("code: wrong or expired code")
    assert "sofia is now locked until" in result and "after 5 wrong codes within 10 minutes" in result
    assert result.endswith("; a manager may stand in, or unlock with `dealflow staff unlock sofia`")
    # the right code, and a valid session, are refused while locked; others are not
    assert _sign_in("sofia", code_of("sofia")).startswith("by: sofia is locked until")
    answer = {"by": "sofia", "qualified": True}
    result = flow_check.fn(new_deal, "qualify", {**answer, **login.prove(new_deal, "qualify", answer)})
    assert result["reason"].startswith("by: sofia is locked until ")
    assert result["reason"].endswith("a manager may stand in, or unlock with `dealflow staff unlock sofia`")
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "staff.locked")) == 1
        person = s.scalars(select(StaffUser).where(StaffUser.handle == "sofia")).one()
        first = person.locked_until - datetime.now(UTC).replace(tzinfo=None)
        assert timedelta(minutes=9) < first <= timedelta(minutes=10)
        assert person.totp_last_step == used  # a refused code is not used up by a locked person
        person.locked_until = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)  # the lock ran out
        s.commit()
    code, out, _ = run("staff", "list", "--json")
    assert next(r for r in json.loads(out) if r["handle"] == "sofia")["locked_until"] is None
    # the second lock in a row: 20 minutes; then 40, … at most a day
    for _ in range(5):
        result = _sign_in("sofia", TEAM.wrong_code("sofia"))
    with session_scope() as s:
        person = s.scalars(select(StaffUser).where(StaffUser.handle == "sofia")).one()
        assert timedelta(minutes=19) < person.locked_until - datetime.now(UTC).replace(tzinfo=None) <= timedelta(minutes=20)
    assert [identity.lock_length(n) for n in (0, 1, 2, 3, 7, 8, 30)] == [
        timedelta(minutes=m) for m in (10, 20, 40, 80, 1280, 1440, 1440)]
    key = waits_at(new_deal)
    assert flow_check.fn(new_deal, key, proved(new_deal, key, {"by": "manager", "qualified": True}))["accepted"]
    # a manager lifts it (audited); someone else logged in may not
    assert run("login", "mark", "--code", code_of("mark", ahead=1))[0] == 0
    assert run("staff", "unlock", "sofia") == (2, "", "error: staff unlock: a manager's step, and you are logged in "
                                                       "as mark; `dealflow logout`, or log in as a manager\n")
    assert run("logout")[0] == 0
    assert run("login", "manager", "--code", code_of("manager", ahead=1))[0] == 0
    assert run("staff", "unlock", "sofia") == (0, "sofia unlocked\n", "")
    assert run("logout")[0] == 0
    assert not isinstance(_sign_in("sofia", code_of("sofia", ahead=1)), str)
    with session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "staff.unlocked")).one()
        assert (entry.actor, entry.subject, entry.details["was_locked"]) == ("manager", "sofia", True)
        assert s.scalars(select(StaffUser.locks_in_row).where(StaffUser.handle == "sofia")).one() == 0
    TEAM._logins.clear()

def test_when_every_manager_is_locked_the_administrator_unlocks(db):
    for _ in range(5):
        _sign_in("manager", TEAM.wrong_code("manager"))
    assert _sign_in("manager", code_of("manager")).startswith("by: manager is locked until")
    code, out, err = run("staff", "unlock", "manager")  # no session: the server's administrator
    assert (code, out, err) == (0, "manager unlocked\n", "")
    with session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "staff.unlocked")).one()
        assert entry.actor.startswith("cli:") and entry.subject == "manager"
    assert not isinstance(_sign_in("manager", code_of("manager")), str)


def test_a_manager_may_stand_in_and_the_deal_page_says_so(new_deal):
    from services.views import deal_page

    play_direct(new_deal, until="qualify")
    result = flow_check.fn(new_deal, "qualify", proved(new_deal, "qualify", {"by": "manager", "qualified": True}))
    assert result["accepted"] and result["stands_in_for"] == "sales_rep"
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        wait = next(w for w in deal.waits if w.key == "qualify")
        assert (wait.answered_by, wait.proof, wait.stand_in_for) == ("manager", "signed session", "sales_rep")
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "qualify.answered")).one()
        assert entry.details["stands_in_for"] == "sales_rep" and entry.details["proof"] == "signed session"
        page = deal_page(s, deal)
    assert "manager Morgan Lee (sales manager) for sales\\_rep" in page

def test_with_codes_off_a_handle_is_enough_and_every_answer_says_unverified(new_deal, monkeypatch):
    from services.config import UNVERIFIED_NOTE
    from services.views import deal_page

    monkeypatch.setenv("DEALFLOW_ANSWER_CODES", "off")
    play_direct(new_deal, until="qualify")
    result = flow_check.fn(new_deal, "qualify", {"by": "sofia", "qualified": True})
    assert result["accepted"] and result["proof"] == "unverified"
    code, out, err = run("inbox")
    assert code == 0 and err == f"note: {UNVERIFIED_NOTE}\n"
    with session_scope() as s:
        page = deal_page(s, deal_by_number(s, new_deal), note=UNVERIFIED_NOTE)
    assert "answers are NOT verified" in page and "unverified" in page
    monkeypatch.setenv("DEALFLOW_ANSWER_CODES", "maybe")
    assert run("inbox")[2] == "error: DEALFLOW_ANSWER_CODES: must be on or off, got 'maybe'\n"


# --- the CLI's check first: it uses no code up when it refuses, nor when it accepts --------------------

def test_the_command_line_checks_the_proof_first_and_uses_no_code_up(new_deal):
    play_direct(new_deal, until="qualify")
    from dealflow.answers import check_answer as cli_check
    from dealflow.answers import one_off_login
    from models import DomainError

    with pytest.raises(DomainError, match=r"^code: this answer needs proof: --code NNNNNN"):
        cli_check(new_deal, "qualify", {"by": "sofia", "qualified": True})
    with pytest.raises(DomainError, match=r"^code: wrong or expired code"):
        cli_check(new_deal, "qualify", {"by": "sofia", "qualified": True}, code=TEAM.wrong_code("sofia"))
    code = code_of("sofia")
    _, data = cli_check(new_deal, "qualify", {"by": "sofia", "qualified": True}, code=code)
    with session_scope() as s:
        assert s.scalars(select(StaffUser.totp_last_step).where(StaffUser.handle == "sofia")).one() is None
    # what `dealflow answer --code` sends: signed in a session the code opens (the code used up
    # then), never the code itself
    assert data.pop("code") == code
    signed = {**data, **one_off_login("sofia", code, "command line").prove(new_deal, "qualify", data)}
    assert "code" not in signed and flow_check.fn(new_deal, "qualify", signed)["accepted"]
    with pytest.raises(DomainError, match=r"^code: already used"):
        one_off_login("sofia", code, "command line")
    with pytest.raises(DomainError):
        check_answer(new_deal, "qualify", {"by": "sofia"})  # no longer open
    assert refusals() == []  # a dry run records nothing itself

def test_a_wrong_code_on_the_command_line_is_one_line_and_on_the_record_without_the_code(new_deal):
    play_direct(new_deal, until="qualify")
    wrong = TEAM.wrong_code("sofia")
    code, out, err = run("answer", new_deal, "qualify", "--by", "sofia", "--set", "qualified=true", "--code", wrong)
    assert (code, out) == (2, "")
    assert err == "error: code: wrong or expired code; type the code your authenticator app shows now\n"
    code, _, err = run("answer", new_deal, "qualify", "--by", "sofia", "--set", "qualified=true",
                       "--set", f"code={wrong}")
    assert code == 2 and err.startswith("error: code: wrong or expired code")
    with session_scope() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "qualify.refused")).all()
        assert [e.details["door"] for e in entries] == ["command line", "command line"]
        assert wrong not in json.dumps([e.details for e in entries])
    assert waits_at(new_deal) == "qualify"  # nothing moved


# --- logging in -------------------------------------------------------------------------------------

def test_login_opens_a_session_kept_mode_0600_and_logout_closes_it(new_deal):
    play_direct(new_deal, until="qualify")
    code, out, err = run("login", "sofia", "--code", TEAM.wrong_code("sofia"))
    assert (code, err) == (2, "error: code: wrong or expired code; type the code your authenticator app shows now\n")
    code, out, _ = run("login", "sofia", input=code_of("sofia") + "\n")  # asked for, hidden
    assert code == 0 and out.startswith("logged in as sofia until ")
    path = session_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    with session_scope() as s:
        row = s.get(identity.StaffSession, saved["session"])
        assert row.key != saved["key"] and saved["key"] not in row.key
        assert keys.cipher().decrypt(row.key.encode()) == __import__("base64").b64decode(saved["key"])
    from dealflow.answers import check_answer as cli_check
    from dealflow.login import current

    _, data = cli_check(new_deal, "qualify", {"qualified": True}, login=current())
    assert data["by"] == "sofia" and data["session"] == saved["session"] and len(data["signature"]) == 64
    assert flow_check.fn(new_deal, "qualify", data)["accepted"]
    assert run("logout") == (0, "logged out (sofia)\n", "")
    assert not path.exists()
    with session_scope() as s:
        assert s.get(identity.StaffSession, saved["session"]).closed_at is not None
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("staff.%"))
                                 .order_by(AuditEntry.id)))
    assert actions[-3:] == ["staff.login_refused", "staff.login", "staff.logout"]


# --- accounts ---------------------------------------------------------------------------------------

def _staff_fingerprint() -> list:
    with session_scope() as s:
        return [s.execute(select(StaffUser.handle, StaffUser.roles, StaffUser.active, StaffUser.email,
                                 StaffUser.totp_secret).order_by(StaffUser.id)).all(),
                s.scalar(select(func.count()).select_from(AuditEntry))]


@pytest.mark.parametrize("args, message", [
    (["add", "ana", "--name", "Ana", "--email", "ana@x.example", "--role", "sales_rep,boss"],
     "role: 'boss' is not a role; roles are sales_rep, sales_engineer, qa, delivery, finance, credit, manager"),
    (["add", "mark", "--name", "Mark Two", "--email", "m2@x.example", "--role", "qa"],
     "handle: 'mark' is taken; choose another handle"),
    (["add", "ana", "--name", "Ana", "--email", "ana-at-example", "--role", "qa"],
     "email: 'ana-at-example' is not an e-mail address (name@example.com)"),
    (["add", "Ana Silva", "--name", "Ana", "--email", "ana@x.example", "--role", "qa"],
     "handle: 'Ana Silva' is not a handle: 1-40 lower-case letters, digits, '.', '_' or '-', starting with a "
     "letter or digit"),
    (["add", "ana", "--name", "", "--email", "ana@x.example", "--role", "qa"], "name: must not be empty"),
    (["disable", "manager"], "handle: manager is the last enabled manager; enable or add another manager first"),
    (["role", "manager", "qa"], "role: manager is the last manager; make someone else a manager first"),
    (["role", "qa", "tester"], "role: 'tester' is not a role; roles are sales_rep, sales_engineer, qa, delivery, "
                               "finance, credit, manager"),
    (["enroll", "nobody"], "handle: no staff member with handle 'nobody'"),
])
def test_a_bad_account_command_is_one_line_and_writes_nothing(db, args, message):
    before = _staff_fingerprint()
    code, out, err = run("staff", *args)
    assert (code, out, err) == (2, "", f"error: {message}\n")
    assert _staff_fingerprint() == before


def test_accounts_are_added_given_roles_disabled_enabled_and_listed(db):
    assert run("staff", "add", "ana", "--name", "Ana Silva", "--email", "ana@glocial.example",
               "--role", "sales_rep,sales_engineer")[0] == 0
    assert run("staff", "role", "ana", "sales_engineer", "manager")[1] == "ana: sales_engineer, manager\n"
    assert run("staff", "disable", "manager")[0] == 0  # ana is a manager too now
    assert run("staff", "disable", "ana")[2] == ("error: handle: ana is the last enabled manager; enable or add "
                                                 "another manager first\n")
    assert run("staff", "enable", "manager")[0] == 0
    rows = {r["handle"]: r for r in json.loads(run("staff", "list", "--json")[1])}
    assert rows["ana"] == {"handle": "ana", "name": "Ana Silva", "email": "ana@glocial.example",
                           "roles": ["sales_engineer", "manager"], "enabled": True, "enrolled": False,
                           "locked_until": None}
    assert rows["mark"]["enrolled"] and rows["manager"]["enabled"]
    table = run("staff", "list")[1]
    assert table.splitlines()[0].split() == ["HANDLE", "NAME", "EMAIL", "ROLES", "ENABLED", "ENROLLED", "LOCKED_UNTIL"]
    with session_scope() as s:
        actions = s.execute(select(AuditEntry.action, AuditEntry.subject).where(
            AuditEntry.action.like("staff.%"), AuditEntry.action != "staff.enrolled").order_by(AuditEntry.id)).all()
    assert [tuple(a) for a in actions] == [("staff.added", "ana"), ("staff.roles_changed", "ana"),
                                           ("staff.disabled", "manager"), ("staff.enabled", "manager")]


def test_enroll_shows_a_uri_an_app_can_scan_and_the_old_secret_stops_working(new_deal, data_dir):
    old_code = code_of("mark")
    code, out, _ = run("staff", "enroll", "mark", "--json")
    assert code == 0
    shown = json.loads(out)
    totp = pyotp.parse_uri(shown["uri"])  # as an authenticator app reads it
    assert shown["uri"].startswith("otpauth://totp/dealflow:mark?secret=") and totp.digits == 6 and totp.interval == 30
    png = data_dir / "enroll" / "mark.png"
    assert shown["png"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(png.stat().st_mode) == 0o600
    with session_scope() as s:  # kept encrypted only
        row = s.scalars(select(StaffUser).where(StaffUser.handle == "mark")).one()
        assert totp.secret not in row.totp_secret
    assert code_of("mark") == totp.now()
    code, out, _ = run("staff", "enroll", "qa")  # for a person: the URI and a QR code in the terminal
    assert code == 0 and "otpauth://totp/dealflow:qa?secret=" in out and any(c in out for c in "█▀▄")
    if old_code != totp.now():
        assert run("login", "mark", "--code", old_code)[0] == 2
    assert run("login", "mark", "--code", totp.now())[0] == 0


def test_init_creates_a_key_file_mode_0600_and_enrolls_the_staff(tmp_path, monkeypatch):
    monkeypatch.delenv("DEALFLOW_SECRET_KEY")
    monkeypatch.setenv("DEALFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'dealflow.db'}")
    code, out, _ = run("init", "--demo-data")
    key = tmp_path / "data" / "secret.key"
    assert code == 0 and f"secret key created: {key} (mode 0600" in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    code, out, _ = run("init")
    assert code == 0 and "secret key created" not in out  # made once, kept
    rows = json.loads(run("staff", "list", "--json")[1])
    assert len(rows) == 6 and all(r["enrolled"] for r in rows)
    monkeypatch.setenv("DEALFLOW_SECRET_KEY", "not-a-key")
    code, _, err = run("staff", "enroll", "mark")
    assert (code, err) == (2, "error: DEALFLOW_SECRET_KEY: the key from DEALFLOW_SECRET_KEY is not a Fernet key "
                              "(44 characters of url-safe base64; `dealflow init` makes one)\n")


HOSTILE = st.text(st.characters(codec="utf-8"), max_size=60)


@settings(max_examples=int(os.environ.get("DEALFLOW_HYPOTHESIS_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(handle=HOSTILE, name=HOSTILE, email=HOSTILE, role=st.one_of(HOSTILE, st.sampled_from(["qa", "finance,qa"])))
def test_any_account_typed_is_added_whole_or_refused_in_one_line_with_nothing_written(db, handle, name, email, role):
    before = _staff_fingerprint()
    code, out, err = run("staff", "add", "--name", name, "--email", email, "--role", role, "--", handle)
    if code == 0:
        assert out.startswith(f"added {handle} (")
        with session_scope() as s:
            person = s.scalars(select(StaffUser).where(StaffUser.handle == handle)).one()
            assert person.role_list and set(person.role_list) <= set(ROLES)
            s.delete(person)
            s.execute(text("DELETE FROM audit_log WHERE action = 'staff.added'"))
            s.commit()
    else:
        assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1
        assert _staff_fingerprint() == before


# --- nothing secret where others can read it ---------------------------------------------------------

def test_no_code_secret_or_session_key_is_in_any_table(new_deal):
    play_direct(new_deal, until="qualify")
    flow_check.fn(new_deal, "qualify", {"by": "sofia", "qualified": True, "code": code_of("sofia")})
    play_direct(new_deal)  # the rest of the sale, every answer signed in a session
    with session_scope() as s:
        secrets = [keys.cipher().decrypt(p.totp_secret.encode()).decode()
                   for p in s.scalars(select(StaffUser).where(StaffUser.totp_secret.is_not(None)))]
        session_keys = [keys.cipher().decrypt(r.key.encode()) for r in s.scalars(select(identity.StaffSession))]
        dump = json.dumps([[list(map(str, row)) for row in s.execute(select(t)).all()]
                           for t in Base.metadata.sorted_tables])
    import base64

    assert secrets and session_keys
    for secret in secrets:
        assert secret not in dump
    for key in session_keys:
        assert base64.b64encode(key).decode() not in dump and key.hex() not in dump
    assert '"code": "' not in dump.replace('"code": ""', "")  # no answer keeps a code


def test_a_one_time_code_typed_in_a_refused_answer_is_not_recorded(new_deal):
    play_direct(new_deal, until="qualify")
    wrong = TEAM.wrong_code("sofia")
    flow_check.fn(new_deal, "qualify", {"by": "sofia", "qualified": "maybe", "code": wrong})
    with session_scope() as s:
        wait = s.scalars(select(Wait).where(Wait.key == "qualify")).one()
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "qualify.refused")).one()
        assert "code" not in wait.answer and wrong not in json.dumps(entry.details)


# --- on a real Prefect API: the resume (the UI's door), the CLI, and what Prefect keeps -------------

@pytest.mark.flow
def test_on_a_real_prefect_api_only_proven_answers_move_the_deal_and_no_code_or_key_is_readable(
        prefect_api, new_deal, caplog):
    import base64
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from flows.deal import deal_flow

    used: list[str] = []

    def resume(key: str, run_input: dict) -> None:
        resume_as_the_ui(new_deal, key, run_input)

    def sealed(key: str, answer: dict) -> None:  # a signed-in person's answer through the gateway
        resume_as_the_ui(new_deal, key, answer, sealed=True)

    def ui_answers() -> None:
        resume("qualify", {"by": "sofia", "qualified": True})  # no proof
        used.append(code_of("sofia"))
        resume("qualify-retry-1", {"by": "sofia", "qualified": True, "code": used[-1]})  # a code in the answer
        sealed("qualify-retry-2", {"by": "sofia", "qualified": True})  # moves on

    def cli_answers() -> None:
        used.append(code_of("sofia", ahead=1))
        assert run("login", "sofia", "--code", used[-1])[0] == 0
        wait_for_run(new_deal, "handoff")
        code, out, err = run("answer", new_deal, "handoff", "--set", "engineer=mark", "--set", "note=quote soon")
        assert (code, err) == (0, "") and out == "handoff: answered by sofia\n"
        # what Prefect keeps of that answer, anyone with API access can read; sent again to a
        # later wait that sofia may answer too, it is refused: the signature is for the hand-off only
        with get_client(sync_client=True) as client:
            stored = json.loads(client.read_flow_run_input(UUID(current_run_id()), "paused-handoff-response"))
        assert stored["signature"] and stored["session"] and not stored.get("code")
        estimate = '{"lines": [{"sku": "VMC-850", "quantity": 1}], "notes": "one machine"}'
        wait_for_run(new_deal, "estimate-rev-1")  # the flow moves on from the hand-off first
        assert run("answer", new_deal, "estimate", "--by", "mark", "--input", estimate)[2] \
            == "error: by: you are logged in as sofia; `dealflow logout` to answer as someone else (with --code)\n"
        sealed("estimate-rev-1", {"by": "mark", "lines": [{"sku": "VMC-850", "quantity": 1}]})
        with get_client(sync_client=True) as client:
            mark_sealed = json.loads(client.read_flow_run_input(UUID(current_run_id()), "paused-estimate-rev-1-response"))
        resume("decision-rev-1", {**stored, "decision": "approve"})  # sofia's session is still open
        assert run("logout")[0] == 0
        # mark's seal taken from the estimate's stored answer, on another answer: refused
        resume("decision-rev-1-retry-1", {**mark_sealed, "decision": "decline", "reason": "budget"})
        used.append(code_of("mark"))
        wait_for_run(new_deal, "decision-rev-1-retry-2")
        # a code given on the command line, a choice given as its code: sent in the form's words,
        # signed over what the flow reads back
        code, out, err = run("answer", new_deal, "decision", "--by", "mark", "--code", used[-1],
                             "--set", "decision=decline", "--set", "reason=budget", "--set", "channel=signed_document")
        assert (code, out, err) == (0, "decision-rev-1-retry-2: answered by mark\n", "")
        with get_client(sync_client=True) as client:
            sent = json.loads(client.read_flow_run_input(UUID(current_run_id()),
                                                         "paused-decision-rev-1-retry-2-response"))
        assert sent["channel"] == "signed document" and sent["signature"]

    def current_run_id() -> str:
        with session_scope() as s:
            return deal_by_number(s, new_deal).flow_run_id

    thread, errors = in_background([ui_answers, cli_answers])
    try:
        result = deal_flow(deal_number=new_deal, poll_interval=1, wait_timeout=120)
    finally:
        thread.join(timeout=30)
        assert not errors, (errors, refusals())
    assert result["status"] == "lost"
    assert [r[1:] for r in refusals()] == [
        ("qualify", "proof: none; answer in the Prefect UI through dealflow's gateway (signed in), or with "
                    "`dealflow answer` after `dealflow login`"),
        ("qualify-retry-1", "code: a one-time code is never part of an answer (Prefect keeps answers where others "
                            "read them); sign in at the gateway, or `dealflow login`"),
        ("estimate-rev-1", "by: you are logged in as sofia; `dealflow logout` to answer as someone else (with --code)"),
        ("decision-rev-1", "signature: does not match this deal, wait and answer (a signed answer is good for "
                           "the one wait it was made for)"),
        ("decision-rev-1-retry-1", "seal: does not match this deal, wait, person and answer (the answer was "
                                   "changed after it was sent)")]
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        proofs = {w.key: (w.status, w.proof) for w in deal.waits}
        run_id = UUID(deal.flow_run_id)
        secrets_ = [keys.cipher().decrypt(p.totp_secret.encode()).decode()
                    for p in s.scalars(select(StaffUser).where(StaffUser.totp_secret.is_not(None)))]
        session_keys = [base64.b64encode(keys.cipher().decrypt(r.key.encode())).decode()
                        for r in s.scalars(select(identity.StaffSession))]
        tables = json.dumps([[list(map(str, row)) for row in s.execute(select(t)).all()]
                             for t in Base.metadata.sorted_tables])
    assert proofs["qualify-retry-2"] == ("answered", identity.BY_GATEWAY)
    assert proofs["handoff"] == ("answered", "signed session")
    assert proofs["estimate-rev-1"] == ("answered", identity.BY_GATEWAY)
    assert proofs["decision-rev-1-retry-2"] == ("answered", "signed session")  # --code: a session for one answer
    # the refused wait's form said why: the reason heads the next form
    assert "the reason: proof: none" in plain(wait_description(new_deal, "qualify-retry-1"))
    # nowhere others can read: the audit log and every table, the run's parameters, its logs and
    # its artifacts (the code sent straight to the API in an answer stays in Prefect's record of
    # it: no door of dealflow's sends one, and the gateway strips one a person types)
    with get_client(sync_client=True) as client:
        params = json.dumps(client.read_flow_run(run_id).parameters)
        logs = json.dumps([log.message for log in client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))])
        artifacts = json.dumps([str(a.data) for a in client.read_artifacts()])
    readable = {"tables": tables, "parameters": params, "logs": logs, "artifacts": artifacts,
                "test log": caplog.text}
    for where, text_ in readable.items():
        for secret in [*secrets_, *session_keys]:
            assert secret not in text_, f"a TOTP secret or session key in the {where}"
        for code in used:  # as a number of its own (not the microseconds of a time, nor part of an id)
            assert not re.search(rf"(?<![\w.]){code}(?!\w)", text_), f"a one-time code in the {where}"


def wait_description(deal_number: str, key: str) -> str:
    with session_scope() as s:
        return s.scalars(select(Wait.description).join(Wait.deal).where(Wait.key == key)).one()


# --- what the cold review and the attacker found ------------------------------------------------------

def test_a_code_in_other_digits_or_a_crafted_proof_is_refused_not_a_crash(new_deal):
    from flows.inputs import QAInput

    play_direct(new_deal, until="qualify")
    for key, proof in [("qualify", {"code": "１２３４５６"}), ("qualify-retry-1", {"code": "٠١٢٣٤٥"}),
                       ("qualify-retry-2", {"session": TEAM.login("sofia").session, "signature": "é" * 64}),
                       ("qualify-retry-3", {"session": 123, "signature": ["x"]})]:
        waits_at(new_deal)
        result = flow_check.fn(new_deal, key, {"by": "sofia", "qualified": True, **proof})
        assert not result["accepted"] and result["reason"].split(":")[0] in ("code", "signature", "session")
    # a value of any type where the form has no field is read by the flow (and refused), never a crash
    assert QAInput.model_validate({"by": "qa", "passed": True, "session": 123, "signature": None}).session == 123


def test_two_sign_ins_racing_with_one_code_open_one_session(db):
    import threading

    code = code_of("sofia")
    results: list[object] = []
    start = threading.Barrier(2)

    def sign_in() -> None:
        start.wait()
        try:
            results.append(_sign_in("sofia", code))
        except Exception as exc:  # noqa: BLE001 - SQLite: the second writer may be told to go away
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=sign_in) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    opened = [r for r in results if isinstance(r, identity.OpenedSession)]
    assert len(opened) == 1, results
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(identity.StaffSession)) == 1

def test_a_new_secret_disabling_or_new_roles_close_a_persons_sessions(new_deal):
    play_direct(new_deal, until="qualify")
    TEAM._logins.clear()
    login = TEAM.login("sofia")
    assert run("staff", "enroll", "sofia", "--json")[0] == 0
    answer = {"by": "sofia", "qualified": True}
    result = flow_check.fn(new_deal, "qualify", {**answer, **login.prove(new_deal, "qualify", answer)})
    assert result["reason"].startswith("session: sofia logged out of it")
    login = TEAM.login("mark")
    assert run("staff", "role", "mark", "sales_engineer", "qa")[0] == 0
    with session_scope() as s:
        assert s.get(identity.StaffSession, login.session).closed_at is not None
        closed = [e.details["why"] for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action == "staff.sessions_closed").order_by(AuditEntry.id))]
    assert closed == ["enrolled again", "roles changed"]
    TEAM._logins.clear()


def test_another_installations_key_and_an_unwritable_config_folder_are_one_line(new_deal, monkeypatch, tmp_path):
    from cryptography.fernet import Fernet

    play_direct(new_deal, until="qualify")
    code = code_of("sofia")
    monkeypatch.setenv("DEALFLOW_CONFIG_DIR", "/proc/not-here")
    before = _staff_fingerprint()
    assert run("login", "sofia", "--code", code)[2].startswith("error: config: cannot keep the session in ")
    with session_scope() as s:  # no session was left open, and the code was not used up
        assert s.scalar(select(func.count()).select_from(identity.StaffSession)) == 0
    assert _staff_fingerprint()[0] == before[0]
    monkeypatch.setenv("DEALFLOW_SECRET_KEY", Fernet.generate_key().decode())
    code_, _, err = run("answer", new_deal, "qualify", "--by", "sofia", "--set", "qualified=true", "--code", code)
    assert (code_, err) == (2, "error: DEALFLOW_SECRET_KEY: does not decrypt the staff's secrets; is it the key "
                               "this installation's `dealflow init` made (DATA_DIR/secret.key)?\n")


@pytest.mark.flow
def test_on_a_real_prefect_api_every_kind_of_bad_proof_is_refused_audited_and_the_deal_waits(prefect_api, new_deal):
    """Through real resumes (the UI's door, each answer sealed as the gateway seals it): a wrong
    role, a disabled person, an expired session, a person not enrolled, and a person locked out
    after five forged signatures; then sofia's sealed answer moves the deal on."""
    from flows.deal import deal_flow

    for handle in ("ana", "bo", "cy"):
        assert run("staff", "add", handle, "--name", handle.title(), "--email", f"{handle}@glocial.example",
                   "--role", "sales_rep")[0] == 0
    assert run("staff", "enroll", "ana", "--json")[0] == 0 and run("staff", "enroll", "bo", "--json")[0] == 0
    assert run("staff", "disable", "ana")[0] == 0
    expired = TEAM.login("sofia")
    with session_scope() as s:
        s.execute(update(identity.StaffSession).where(identity.StaffSession.id == expired.session)
                  .values(expires_at=datetime(2020, 1, 1)))
        s.commit()
    keys_tried: list[str] = []

    def resume(run_input: dict, sealed: bool = True) -> None:
        keys_tried.append(waiting_key())
        resume_as_the_ui(new_deal, keys_tried[-1], run_input, sealed=sealed)

    def waiting_key() -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with session_scope() as s:
                w = deal_by_number(s, new_deal).open_wait
                if w is not None and w.flow_run_id:
                    return w.key
            time.sleep(0.1)
        raise TimeoutError("no wait opened")

    def bad_then_good() -> None:
        qualify = {"qualified": False, "notes": "no budget"}
        resume({"by": "qa", **qualify})
        resume({"by": "ana", **qualify})
        resume({"by": "sofia", **qualify, **expired.prove(new_deal, waiting_key(), {"by": "sofia", **qualify})},
               sealed=False)
        resume({"by": "cy", **qualify})
        for _ in range(5):
            resume({"by": "bo", **qualify, "session": "forged", "signature": "00"}, sealed=False)
        resume({"by": "bo", **qualify})
        resume({"by": "sofia", **qualify})

    thread, errors = in_background([bad_then_good])
    try:
        result = deal_flow(deal_number=new_deal, poll_interval=1, wait_timeout=120)
    finally:
        thread.join(timeout=30)
        assert not errors and not thread.is_alive(), (errors, keys_tried, refusals())
    assert result["status"] == "lost"  # disqualified, by sofia's code, after every bad proof
    reasons = [r[2] for r in refusals()]
    assert [r[1] for r in refusals()] == keys_tried[:-1]
    assert reasons[:4] == [
        "by: qa (qa) may not answer 'qualify'; it needs the role sales_rep",
        "by: ana is disabled and may not answer",
        "session: expired at 2020-01-01 00:00 UTC; log in again (`dealflow login sofia`) or give a code",
        "by: cy is not enrolled for one-time codes; a manager runs `dealflow staff enroll cy`"]
    assert all(r.startswith("session: not a session of bo") for r in reasons[4:9])
    assert "bo is now locked until" in reasons[8]
    assert reasons[9].startswith("by: bo is locked until")
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        last = deal.waits[-1]
        assert (last.status, last.answered_by, last.proof) == ("answered", "sofia", identity.BY_GATEWAY)
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "staff.locked")) == 1
        tampered = s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == identity.TAMPERED))
        assert tampered == 5  # the forged signatures
    TEAM._logins.clear()
