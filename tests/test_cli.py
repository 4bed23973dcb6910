"""The command line: data as JSON, and a user's mistake as one line on stderr with exit code 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from dealflow.cli import main
from dealflow.scenario import SCRIPT, play_direct
from models import FollowUp, Lead
from models.deal import deal_by_number
from models.text import ago
from services.db import session_scope


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _count(model) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_every_command_has_help():
    code, out, _ = run("--help")
    assert code == 0
    for command in ("init", "demo", "lead", "deal", "followup", "opportunity", "inbox", "answer", "stock"):
        assert command in out
    for group, sub in [("lead", "add"), ("deal", "start"), ("deal", "show"), ("deal", "cancel"), ("followup", "add"),
                       ("followup", "done"), ("opportunity", "stage"), ("opportunity", "assign")]:
        code, out, _ = run(group, sub, "--help")
        assert code == 0 and "Usage:" in out


HEAVY = ("prefect", "sqlalchemy", "pandas", "matplotlib", "weasyprint", "jinja2", "pydantic", "uvicorn")


def _imported_by(*argv: str, env: dict[str, str] | None = None) -> set[str]:
    """The heavy packages a fresh `dealflow ARGV` process has imported when it ends."""
    import os
    import subprocess
    import sys

    probe = ("import sys, atexit\n"
             f"heavy = {HEAVY!r}\n"
             "atexit.register(lambda: sys.__stderr__.write('IMPORTED ' + ' '.join("
             "m for m in heavy if m in sys.modules) + '\\n'))\n"
             "from dealflow.cli import main\n"
             f"sys.argv = ['dealflow', *{list(argv)!r}]\n"
             "main()\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})
    line = next(x for x in done.stderr.splitlines() if x.startswith("IMPORTED"))
    return set(line.split()[1:])


def test_help_imports_no_heavy_package():
    """`dealflow --help` (and a group's help) answer at once: no Prefect, SQLAlchemy or pandas."""
    assert _imported_by("--help") == set()
    assert _imported_by("stock", "--help") == set()
    assert _imported_by("deal", "show", "--help") == set()
    assert _imported_by("deal", "cancel", "--help") == set()


def test_reading_commands_without_a_server_import_no_prefect(new_deal):
    """Reading the business database needs SQLAlchemy, not Prefect, pandas or the document tools."""
    for argv in (["stock"], ["inbox"], ["deal", "show", new_deal]):
        imported = _imported_by(*argv, env={"PREFECT_API_URL": ""})
        assert "sqlalchemy" in imported  # it did read the database
        assert not imported & {"prefect", "pandas", "matplotlib", "weasyprint"}, (argv, imported)


def test_only_a_plain_http_prefect_api_gets_the_one_certificate_bundle(tmp_path):
    """The bundle that skips parsing every CA certificate is given only where no TLS is made: an
    https:// API, named in the environment or by a Prefect profile, keeps Prefect's default."""
    from dealflow import _plain_http_api

    assert _plain_http_api({"PREFECT_API_URL": "http://127.0.0.1:4200/api"})
    assert not _plain_http_api({"PREFECT_API_URL": "https://prefect.example/api"})
    assert not _plain_http_api({"PREFECT_API_URL": ""})
    home = tmp_path / "prefect-home"
    assert _plain_http_api({"PREFECT_HOME": str(home)})  # no profile: the temporary local server
    home.mkdir()
    (home / "profiles.toml").write_text('[profiles.team]\nPREFECT_API_URL = "https://prefect.example/api"\n')
    assert not _plain_http_api({"PREFECT_HOME": str(home)})
    elsewhere = tmp_path / "profiles.toml"
    elsewhere.write_text('[profiles.team]\nPREFECT_API_URL = "https://prefect.example/api"\n')
    assert not _plain_http_api({"PREFECT_HOME": str(tmp_path / "none"), "PREFECT_PROFILES_PATH": str(elsewhere)})


def test_init_is_idempotent(db):
    code, out, _ = run("init", "--json")
    assert code == 0 and json.loads(out)["staff"] == 0  # the fixture already loaded it


def test_init_makes_what_others_could_read_in_the_data_folder_its_owners_alone(data_dir):
    import os
    import stat

    (data_dir / "mail").mkdir(parents=True)
    os.chmod(data_dir / "mail", 0o755)
    (data_dir / "mail" / "old.eml").write_text("a customer's live link")
    os.chmod(data_dir / "mail" / "old.eml", 0o644)
    code, out, _ = run("init")
    assert code == 0
    assert f"{data_dir}: 2 files and folders that others could read or write are now yours alone" in out
    assert stat.S_IMODE((data_dir / "mail").stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "mail" / "old.eml").stat().st_mode) == 0o600
    assert json.loads(run("init", "--json")[1])["tightened"] == 0  # nothing left to tighten
    (data_dir / "new.txt").write_text("x")  # this process writes with umask 077, as every dealflow process
    assert stat.S_IMODE((data_dir / "new.txt").stat().st_mode) == 0o600


def test_a_lead_is_added_and_a_bad_one_is_one_clear_line(db):
    code, out, _ = run("lead", "add", "--company", "Acme", "--contact", "Ann", "--email", "ann@acme.example",
                       "--owner", "sofia", "--json")
    assert code == 0 and json.loads(out) == {"lead": 1, "company": "Acme", "owner": "sofia", "customer": None}
    code, out, err = run("lead", "add", "--company", "Acme", "--contact", "Ann", "--email", "not-an-address",
                         "--owner", "sofia")
    assert code == 2 and out == ""
    assert err == "error: email: must be one e-mail address, got 'not-an-address'\n"
    code, _, err = run("lead", "add", "--company", "Acme", "--contact", "Ann", "--email", "a@b.example",
                       "--owner", "qa")
    assert code == 2 and err == "error: owner: qa is qa; a lead's owner must be a sales_rep\n"
    assert _count(Lead) == 1


def test_follow_ups_and_stages_from_the_command_line(new_deal):
    play_direct(new_deal, until="handoff")
    code, out, _ = run("followup", "add", new_deal, "--by", "sofia", "--kind", "call", "--due", "+2d", "--json")
    assert code == 0
    fid = json.loads(out)["followup"]
    code, _, err = run("followup", "add", new_deal, "--by", "sofia", "--kind", "telepathy", "--due", "+2d")
    assert code == 2 and err.startswith("error: kind: must be one of call, email")
    code, _, err = run("followup", "add", new_deal, "--by", "sofia", "--kind", "call", "--due", "soon")
    assert code == 2 and err.startswith("error: due: must be an ISO date/time")
    assert _count(FollowUp) == 1
    assert run("followup", "done", str(fid), "--by", "sofia", "--outcome", "sent drawings")[0] == 0
    code, out, _ = run("opportunity", "stage", new_deal, "proposal", "--by", "sofia", "--json")
    assert code == 0 and json.loads(out) == {"deal": new_deal, "stage": "proposal", "probability": 60}
    code, _, err = run("opportunity", "stage", new_deal, "won-ish", "--by", "sofia")
    assert code == 2 and err.startswith("error: stage: must be one of prospecting")


def test_inbox_deal_show_and_stock_speak_json(new_deal):
    play_direct(new_deal, until="payment-1")
    code, out, _ = run("inbox", "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["deal"], r["key"], r["roles"], r["amount"]) for r in rows] == [
        (new_deal, "payment-1", ["finance"], "121928.58")]  # the order less its 30 % deposit, paid
    assert json.loads(run("inbox", "--role", "qa", "--json")[1]) == []
    code, out, _ = run("deal", "show", new_deal, "--json")
    shown = json.loads(out)
    assert shown["waiting_for"]["key"] == "payment-1" and shown["invoice"]["number"] == "INV-0001"
    code, out, _ = run("deal", "show", new_deal)
    assert "invoice INV-0001: total 121928.58 USD, paid 0.00 USD, due 121928.58 USD" in out
    assert "deposit: 30 % deposit before shipping; invoice DEP-0001: total 52255.10 USD, paid 52255.10 USD (paid)" in out
    stock = {r["sku"]: r["on_hand"] for r in json.loads(run("stock", "--json")[1])}
    assert stock["CNC-LATHE-2000"] == 1 and stock["COOLANT-20L"] == 190


def test_the_inbox_reads_as_people_speak_and_links_each_wait_to_its_run_page(new_deal, monkeypatch):
    from datetime import timedelta

    from models import Wait

    play_direct(new_deal, until="estimate-rev-1")
    run_id = "0b5e1a6e-4c57-4d0e-9a53-5a1d7f0c0001"
    with session_scope() as s:
        wait = s.scalars(select(Wait).where(Wait.status == "open")).one()
        wait.flow_run_id = wait.deal.flow_run_id = run_id
        wait.opened_at = wait.opened_at - timedelta(hours=2, minutes=5)
        s.commit()
    monkeypatch.setenv("DEALFLOW_GATEWAY_URL", "https://prefect.example.com/")
    code, out, _ = run("inbox")
    head, row, *rest = out.splitlines()
    assert head.split() == ["DEAL", "CUSTOMER", "STEP", "WAITING", "FOR", "WAITING", "AMOUNT", "LINK"]
    link = f"https://prefect.example.com/v2/runs/flow-run/{run_id}"
    assert row.split()[0] == new_deal and "estimate-rev-1" in row and "2 h ago" in row and row.endswith(link)
    assert "the estimate, by a sales engineer" in row
    assert row.split().count("estimate-rev-1") == 1 and " estimate " not in row  # the step once, with its round
    assert rest == ["(answer on the link's page: menu ⋮ → Resume; or `dealflow answer DEAL STEP`)"]
    assert json.loads(run("inbox", "--json")[1])[0]["link"] == link
    code, out, _ = run("deal", "show", new_deal)
    assert f"answer it on the run's page (menu ⋮ → Resume): {link}" in out.splitlines()
    from services.views import deal_page

    with session_scope() as s:
        page = deal_page(s, deal_by_number(s, new_deal), run_link=link)
    assert f"[Answer it on the run's page]({link}) (menu ⋮ → Resume)." in page
    assert [ago(x) for x in (5, 60, 2 * 3600 + 300, 3 * 86400)] == ["just now", "1 min ago", "2 h ago", "3 d ago"]


@pytest.mark.parametrize("args, message", [
    (["answer", "DEAL-0001", "payment", "--by", "finance", "--set", "amount=10"],
     "error: step: DEAL-0001 is not waiting for 'payment' (it waits for: qualify)\n"),
    (["answer", "DEAL-0001", "qualify", "--by", "qa", "--set", "qualified=true"],
     "error: by: qa (qa) may not answer 'qualify'; it needs the role sales_rep\n"),
    (["answer", "DEAL-0001", "qualify", "--set", "qualified=true"], "error: by: say who answers (--by HANDLE), or log in first (`dealflow login HANDLE`)\n"),
    (["answer", "DEAL-0001", "qualify", "--by", "sofia", "--input", "{nope"],
     "error: input: is not valid JSON (Expecting property name enclosed in double quotes at character 1)\n"),
    (["answer", "DEAL-0001", "qualify", "--by", "sofia", "--set", "budget=lots", "--set", "qualified=true"],
     "error: budget: must be a number\n"),
    (["answer", "DEAL-9999", "qualify", "--by", "sofia"], "error: deal DEAL-9999 not found\n"),
])
def test_a_wrong_answer_is_one_line_and_moves_nothing(new_deal, args, message):
    play_direct(new_deal, until="qualify")
    code, out, err = run(*args)
    assert (code, out, err) == (2, "", message)


def test_a_database_that_is_not_set_up_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, out, err = run("stock")
    assert code == 2 and out == ""
    assert err == ("error: database: no such table: products; is DATABASE_URL right, "
                   "and has `dealflow init` run?\n")


def test_an_answer_file_that_is_missing_is_one_line(new_deal):
    play_direct(new_deal, until="qualify")
    code, _, err = run("answer", new_deal, "qualify", "--by", "sofia", "--input", "@/nonexistent/a.json")
    assert (code, err) == (2, "error: input: cannot read '/nonexistent/a.json' (No such file or directory)\n")


def test_the_outbox_lists_mail_and_sends_a_failed_one_again(new_deal, data_dir):
    from models import Email
    play_direct(new_deal, until="decision-rev-1")
    rows = json.loads(run("outbox", "--json")[1])
    assert [(r["id"], r["kind"], r["status"]) for r in rows] == [(1, "estimate", "sent")]
    with session_scope() as s:
        row = s.get(Email, 1)  # as a 5xx would leave it
        row.status, row.last_error = "failed", "SMTPDataError: 554 rejected"
        s.commit()
    (data_dir / "mail" / "00001-estimate.eml").unlink()
    assert json.loads(run("outbox", "--status", "failed", "--json")[1])[0]["error"] == "SMTPDataError: 554 rejected"
    code, out, _ = run("outbox", "retry", "1", "--json")
    assert code == 0 and json.loads(out) == {"id": 1, "status": "sent", "error": None}
    assert (data_dir / "mail" / "00001-estimate.eml").exists()
    code, _, err = run("outbox", "retry", "1")
    assert code == 2 and err == "error: email 1 is sent: cannot retry it\n"


def test_smtp_settings_that_would_send_the_password_in_clear_are_refused(db, monkeypatch):
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_SECURITY", "tls")
    code, _, err = run("outbox")
    assert (code, err) == (2, "error: SMTP_SECURITY: must be starttls, ssl or none, got 'tls'\n")
    monkeypatch.setenv("SMTP_SECURITY", "STARTTLS")
    monkeypatch.setenv("SMTP_PORT", "smtp")
    code, _, err = run("outbox")
    assert (code, err) == (2, "error: SMTP_PORT: must be a port number, got 'smtp'\n")


def test_report_times_with_an_offset_and_unwritable_files_are_handled(db, tmp_path):
    assert run("report", "stage-times", "--as-of", "2026-01-01T00:00+02:00")[0] == 0
    code, _, err = run("report", "stock", "--csv", "/nonexistent/x.csv")
    assert code == 2 and err.startswith("error: csv: cannot write /nonexistent/x.csv (") and err.count("\n") == 1
    code, _, err = run("remind", "--as-of", "yesterday")
    assert (code, err) == (2, "error: as-of: must be an ISO date/time (2027-01-15 or 2027-01-15T10:00), got 'yesterday'\n")


def test_what_sales_learned_reaches_the_engineer_on_the_form_the_page_and_deal_show(new_deal):
    from models.process import describe_wait
    from services.views import deal_page

    play_direct(new_deal, until="estimate-rev-1")
    learned = ["the lead's notes: Met at the machine tool fair; opening a second plant and needs turning capacity.",
               "qualified by Sofia Marin: Needs two CNC lathes with tooling for the new plant; the plant manager "
               "decides, purchasing signs.",
               "hand-off note to Mark Henry: Wants a quote this week."]
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        form = str(describe_wait(s, deal, "estimate", "estimate-rev-1"))
        page = str(deal_page(s, deal))
    assert "**What sales learned**" in form and "Budget 150,000.00 USD, timeline Q1 2027." in form, form
    for line in learned:
        who, text = line.split(": ", 1)
        assert f"- {who}: {text}" in form, form
        assert f"- **{who}**: {text}" in page, page
    shown = run("deal", "show", new_deal)[1].splitlines()
    assert all(line in shown for line in learned), shown
    assert json.loads(run("deal", "show", new_deal, "--json")[1])["sales_notes"][2] == {
        "who": "hand-off note to Mark Henry", "text": "Wants a quote this week."}


def test_leads_are_listed_and_shown_and_deals_filtered_by_whose_turn_it_is(new_deal):
    play_direct(new_deal, until="qa-attempt-1")
    code, out, _ = run("lead", "list")
    head, row = out.splitlines()
    assert head.split() == ["LEAD", "COMPANY", "CONTACT", "STATUS", "OWNER", "DEAL"]
    assert row.split()[0] == "1" and row.endswith(new_deal) and "converted" in row
    assert json.loads(run("lead", "list", "--status", "new", "--json")[1]) == []
    code, out, _ = run("lead", "show", "1")
    assert code == 0 and out.splitlines()[0] == "lead 1 · Riverside Metalworks Ltd · converted · owner sofia"
    assert f"deal: {new_deal} (`dealflow deal show {new_deal}`)" in out
    assert "notes: Met at the machine tool fair; opening a second plant and needs turning capacity." in out
    assert run("lead", "show", "99")[2] == "error: lead 99 not found\n"
    assert [r["deal"] for r in json.loads(run("deal", "list", "--waiting-for", "qa", "--json")[1])] == [new_deal]
    assert json.loads(run("deal", "list", "--waiting-for", "finance", "--json")[1]) == []
    assert json.loads(run("deal", "list", "--json")[1])[0]["where"] == "order SO-0001 in QA"


def test_deal_show_prints_where_each_document_is(new_deal, data_dir):
    play_direct(new_deal, until="qa-attempt-1")
    out = run("deal", "show", new_deal)[1].splitlines()
    start = out.index("documents:")
    assert out[start + 1] == f"  EST-0001-R1: {data_dir / 'documents' / 'EST-0001-R1.pdf'}"
    assert (data_dir / "documents" / "EST-0001-R1.pdf").exists()


def test_a_hand_off_to_an_engineer_who_is_not_enrolled_is_refused_at_the_hand_off(new_deal):
    from models import StaffUser, process

    assert run("staff", "add", "nora", "--name", "Nora Ito", "--email", "nora@glocial.example",
               "--role", "sales_engineer")[0] == 0
    play_direct(new_deal, until="handoff")
    with session_scope() as s:
        deal = deal_by_number(s, new_deal)
        nora = s.scalars(select(StaffUser).where(StaffUser.handle == "nora")).one()
        sofia = process.staff_by_handle(s, "sofia")
        with pytest.raises(Exception) as refused:
            deal.opportunity.hand_to(nora, "", by=sofia)
        assert str(refused.value) == ("engineer: nora is not enrolled for one-time codes and could not answer the "
                                      "estimate: `dealflow staff enroll nora` first")
        assert deal.opportunity.engineer is None


def test_the_waiting_form_is_described_again_when_its_follow_ups_or_stage_change(new_deal):
    from models import Wait

    play_direct(new_deal, SCRIPT[:1], until="handoff")

    def described() -> str:
        with session_scope() as s:
            return s.scalars(select(Wait).where(Wait.status == "open")).one().description

    assert "the opportunity is at qualification (20% likely); 0 of 0 follow-ups done." in described()
    code, out, _ = run("followup", "add", new_deal, "--by", "sofia", "--kind", "call", "--due", "+1d", "--json")
    assert code == 0 and "0 of 1 follow-ups done" in described()
    assert run("followup", "done", str(json.loads(out)["followup"]), "--by", "sofia", "--outcome", "ok")[0] == 0
    assert "1 of 1 follow-ups done" in described()
    assert run("opportunity", "stage", new_deal, "proposal", "--by", "sofia")[0] == 0
    assert "the opportunity is at proposal (60% likely); 1 of 1 follow-ups done." in described()


def test_a_command_in_a_new_terminal_uses_the_server_up_runs_for_the_data_folder(tmp_path):
    import subprocess
    import sys

    from dealflow.api_credential import use_running_server

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "api-url").write_text("http://127.0.0.1:4999/api\n")
    (tmp_path / "prefect-api-auth").write_text("dealflow:the-machines-only\n")
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "dealflow-test-server"])
    try:
        # until the child has exec'd, /proc shows the parent's command line (pytest's), which is no
        # server's: wait for its own, as a server started by `dealflow up` long before would have
        import time
        from pathlib import Path

        deadline = time.monotonic() + 10
        while b"dealflow-test-server" not in Path(f"/proc/{server.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the stand-in server did not start"
            time.sleep(0.01)
        (run_dir / "server.pid").write_text(str(server.pid))
        env = {"DEALFLOW_DATA_DIR": str(tmp_path)}
        assert use_running_server(env) == "http://127.0.0.1:4999/api"
        assert (env["PREFECT_API_URL"], env["PREFECT_API_AUTH_STRING"]) == ("http://127.0.0.1:4999/api",
                                                                          "dealflow:the-machines-only")
        chosen = {"DEALFLOW_DATA_DIR": str(tmp_path), "PREFECT_API_URL": "https://elsewhere.example/api"}
        assert use_running_server(chosen) is None and chosen["PREFECT_API_URL"] == "https://elsewhere.example/api"
    finally:
        server.kill()
        server.wait()
    gone = {"DEALFLOW_DATA_DIR": str(tmp_path)}
    assert use_running_server(gone) is None and "PREFECT_API_URL" not in gone  # its server stopped: none taken


def test_a_command_in_a_new_terminal_finds_a_scaled_stack_through_its_gateway_when_the_first_replica_is_down(
        tmp_path):
    """With several API replicas the recorded address is the gateway's machines' door: whether the
    stack runs is the gateway's liveness, not the first replica's (killed here: its pid is gone)."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    from dealflow.api_credential import use_running_server

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "api-url").write_text("http://127.0.0.1:4998/api\n")
    (tmp_path / "prefect-api-auth").write_text("dealflow:the-machines-only\n")
    gateway = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "dealflow-test-gateway"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        deadline = time.monotonic() + 10
        while b"dealflow-test-gateway" not in Path(f"/proc/{gateway.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the stand-in gateway did not start"
            time.sleep(0.01)
        (run_dir / "server.pid").write_text(str(dead.pid))
        (run_dir / "services.pid").write_text(str(dead.pid))
        (run_dir / "gateway.pid").write_text(str(gateway.pid))
        env = {"DEALFLOW_DATA_DIR": str(tmp_path)}
        assert use_running_server(env) == "http://127.0.0.1:4998/api"
    finally:
        gateway.kill()
        gateway.wait()
    assert use_running_server({"DEALFLOW_DATA_DIR": str(tmp_path)}) is None  # the door is gone: none taken


def test_deal_show_history_tells_a_finished_deal_from_its_audit_log_oldest_first(new_deal):
    """An old deal's whole story stays readable: every step, who answered it and what came of it,
    in the order it happened; what people typed stays on its own line (no forged entries)."""
    from models import AuditEntry
    from models.audit import record
    from models.deal import deal_by_number as by_number

    play_direct(new_deal, SCRIPT)
    with session_scope() as s:
        record(s, "sofia", "followup.done", deal_id=by_number(s, new_deal).id, subject="follow-up 99",
               outcome="Called.\n  2020-01-01 00:00:00  finance    payment.answered       forged")
        s.commit()
        entries = s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.deal_id == by_number(s, new_deal).id))
    code, out, _ = run("deal", "show", new_deal, "--history")
    assert code == 0
    story = out.split("history (UTC):\n", 1)[1].splitlines()
    assert len(story) == entries  # one line per entry, the typed newline flattened
    actions = [line.split()[3] for line in story]
    assert actions[0] == "deal.started" and actions[-1] == "followup.done" and "deal.won" in actions
    assert actions.index("qualify.answered") < actions.index("estimate.answered") < actions.index(
        "qa.answered") < actions.index("payment.answered") < actions.index("deal.won")
    assert any(" sofia " in line and "qualify.answered" in line and ": qualified" in line for line in story)
    assert story[-1].endswith("follow-up 99: Called. 2020-01-01 00:00:00 finance payment.answered forged")
    assert "history" not in json.loads(run("deal", "show", new_deal, "--json")[1])
    shown = json.loads(run("deal", "show", new_deal, "--json", "--history")[1])
    assert len(shown["history"]) == entries and shown["history"][0]["action"] == "deal.started"


def test_the_inbox_shows_the_oldest_waits_first_a_page_at_a_time_and_a_role_finds_its_shared_waits(db):
    """Thousands of open deals: the inbox shows the oldest (50 unless --limit says) and says that
    more wait; --limit 0 shows all; a role finds the waits it shares with another role."""
    from dealflow.scenario import LEAD, start_scenario_deal

    numbers = [start_scenario_deal(f"{LEAD['company']} {i}") for i in range(3)]
    play_direct(numbers[0], until="decision-rev-1")  # the engineer's or the rep's
    play_direct(numbers[1], until="qualify")
    play_direct(numbers[2], until="qualify")
    everyone = json.loads(run("inbox", "--json", "--limit", "0")[1])
    assert [r["deal"] for r in everyone] == numbers  # oldest first
    code, out, _ = run("inbox", "--limit", "2")
    assert code == 0 and numbers[0] in out and numbers[1] in out and numbers[2] not in out
    assert "(the 2 oldest shown; more wait: `--limit 0` shows all" in out
    assert "more wait" not in run("inbox", "--limit", "3")[1]
    assert [r["deal"] for r in json.loads(run("inbox", "--json", "--limit", "2")[1])] == numbers[:2]
    for role, expected in (("sales_engineer", numbers[:1]), ("sales_rep", numbers), ("qa", [])):
        assert [r["deal"] for r in json.loads(run("inbox", "--role", role, "--json")[1])] == expected, role
    code, _, err = run("inbox", "--limit", "-1")
    assert code == 2 and "--limit" in err
