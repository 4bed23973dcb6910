"""`dealflow up` as a user runs it, in a data folder of its own on a free port: the Prefect API it
starts takes its generated credential and nothing else, and everything it starts (worker,
executor) and the CLI in the user's shell find it.

Slow (a minute or two: a Prefect server, two `prefect deploy` runs, a flow run, `dealflow down`):
it runs when DEALFLOW_E2E=1, as CI does.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from uuid import UUID

import pytest

from dealflow.customer import PortalCustomer, link_in_mail
from services.config import PROJECT_ROOT

from .e2e_stack import api_status
from .helpers import code_of
from .smtp_server import free_port

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not os.environ.get("DEALFLOW_E2E"), reason="set DEALFLOW_E2E=1 (CI does)")]


def dealflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dealflow.cli", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)


def waited_for(deal: str, step: str, env: dict[str, str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inbox = json.loads(dealflow("inbox", "--json", env=env).stdout or "[]")
        if any(w.get("deal") == deal and w.get("step") == step for w in inbox):
            return
        time.sleep(1)
    raise TimeoutError(f"{deal} never waited for {step}")


def _status(url: str, token: str, body: dict) -> int:
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_up_closes_the_prefect_api_to_strangers_and_what_it_starts_and_the_cli_get_in(data_dir):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    # the user's shell: the data folder and database of the `db` fixture, no Prefect API of its own
    shell = {k: v for k, v in os.environ.items()
             if k not in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING")}
    credential_file = data_dir / "prefect-api-auth"
    pids: list[int] = []
    # a file left readable by others in the data folder from before: `up` makes it the owner's alone
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "old-notes.txt").write_text("x")
    os.chmod(data_dir / "old-notes.txt", 0o644)
    try:
        portal_port, gateway_port = free_port(), free_port()
        ports = ["--port", str(port), "--portal-port", str(portal_port), "--gateway-port", str(gateway_port)]
        first = dealflow("up", *ports, env=shell)
        pids = [int(p.read_text()) for p in (data_dir / "run").glob("*.pid")]
        assert first.returncode == 0, first.stdout + first.stderr
        assert stat.S_IMODE(credential_file.stat().st_mode) == 0o600
        credential = credential_file.read_text().strip()
        assert credential.startswith("dealflow:") and len(credential) > 30
        assert credential not in first.stdout + first.stderr  # for the machines: kept, never shown
        assert f"Prefect API credential: made now, kept in {credential_file}" in first.stdout
        assert f"The UI, for the team: http://127.0.0.1:{gateway_port}" in first.stdout
        assert "files and folders that others could read or write are now yours alone" in first.stdout
        assert stat.S_IMODE((data_dir / "old-notes.txt").stat().st_mode) == 0o600

        second = dealflow("up", *ports, env=shell)  # a second `up` says one runs, and starts nothing
        assert second.returncode == 0, second.stdout + second.stderr
        assert credential not in second.stdout + second.stderr
        assert second.stdout.startswith(f"dealflow is already running for {data_dir} (server pid "), second.stdout
        assert f"the UI for the team at http://127.0.0.1:{gateway_port}" in second.stdout
        assert sorted(int(p.read_text()) for p in (data_dir / "run").glob("*.pid")) == sorted(pids)
        assert credential_file.read_text().strip() == credential

        # a command in a new terminal (no PREFECT_API_URL) uses the server `up` runs, not one of its own:
        # with a wrong credential of its own, that server is the one that refuses it
        new_terminal = dealflow("inbox", env={**shell, "PREFECT_API_AUTH_STRING": "dealflow:wrong"})
        assert new_terminal.stderr.startswith(f"error: prefect: the Prefect server at {api} refused the request "
                                              "(401 Unauthorized)"), new_terminal.stderr
        assert (dealflow("inbox", "--json", env=shell).returncode, dealflow("inbox", "--json", env=shell).stdout
                .strip()) == (0, "[]")

        assert api_status(api, "/admin/version") == 401  # a stranger
        assert api_status(api, "/health") == 200  # a health probe needs none
        assert api_status(api, "/admin/version", auth=credential) == 200

        # `export PREFECT_API_URL=...` and nothing else: dealflow reads the credential itself
        inbox = dealflow("inbox", "--json", env={**shell, "PREFECT_API_URL": api})
        assert (inbox.returncode, inbox.stderr) == (0, ""), inbox.stderr
        assert json.loads(inbox.stdout) == []
        # ... and it did ask the server: with a wrong credential the server refuses, in one line
        wrong = dealflow("inbox", env={**shell, "PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": "dealflow:wrong"})
        assert wrong.returncode == 1 and wrong.stdout == ""
        assert wrong.stderr.startswith(f"error: prefect: the Prefect server at {api} refused the request "
                                       "(401 Unauthorized): set PREFECT_API_AUTH_STRING"), wrong.stderr
        assert wrong.stderr.count("\n") == 1

        # the worker `up` started has the credential: it runs a scheduled flow's run to the end
        from prefect import get_client
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: credential}), \
                get_client(sync_client=True) as client:
            run = client.create_flow_run_from_deployment(client.read_deployment_by_name("outbox/outbox").id)
            deadline = time.monotonic() + 120
            while not (state := client.read_flow_run(UUID(str(run.id))).state).is_final() \
                    and time.monotonic() < deadline:
                time.sleep(1)
        assert state.name == "Completed", (state, (data_dir / "logs" / "worker.log").read_text()[-3000:])

        # no run can be told to run something else: job variables naming a command, an
        # environment (answers without codes) or a folder are not the pools' to fill in
        marker = data_dir / "job-variables-ran"
        asked = {"command": f"touch {marker}", "env": {"DEALFLOW_ANSWER_CODES": "off", "PYTHONSTARTUP": str(marker)},
                 "working_dir": "/tmp"}
        with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: credential}), \
                get_client(sync_client=True) as client:
            ends = []
            for deployment in ("outbox/outbox", "deal/deal"):
                try:
                    run = client.create_flow_run_from_deployment(
                        client.read_deployment_by_name(deployment).id, job_variables=asked,
                        parameters={"deal_number": "DEAL-9999"} if deployment == "deal/deal" else None)
                except Exception as exc:  # noqa: BLE001 - refused by the server: nothing of theirs runs either
                    ends.append(f"refused: {type(exc).__name__}")
                    continue
                deadline = time.monotonic() + 120
                while not (state := client.read_flow_run(UUID(str(run.id))).state).is_final() \
                        and time.monotonic() < deadline:
                    time.sleep(1)
                ends.append(state.name)
        assert ends[0] in ("Completed", "refused: PrefectHTTPStatusError"), ends  # the outbox ran as deployed
        assert ends[1] in ("Failed", "refused: PrefectHTTPStatusError"), ends  # no such deal: the flow's own end
        assert not marker.exists()

        # the team's door: strangers get nothing, a person signs in for a token and gets what
        # their role allows
        gateway = f"http://127.0.0.1:{gateway_port}"
        assert api_status(gateway + "/api", "/flow_runs/x") == 401
        login = urllib.request.Request(f"{gateway}/dealflow/api/login", method="POST",
                                       data=json.dumps({"handle": "finance", "code": code_of("finance")}).encode(),
                                       headers={"content-type": "application/json"})
        with urllib.request.urlopen(login, timeout=10) as r:
            token = json.loads(r.read())["token"]
        assert _status(f"{gateway}/api/flow_runs/filter", token, {}) == 200
        assert _status(f"{gateway}/api/flow_runs/", token, {"flow_id": "x"}) == 403
        assert _status(f"{gateway}/api/block_documents/filter", token, {}) == 403

        # the customer's side: a deal brought to its estimate, the link from its .eml opened, Accept
        # pressed, and `dealflow deal show` lists the order within seconds
        assert "customer portal (pid " in first.stdout and f"127.0.0.1:{portal_port}" in first.stdout
        user = {**shell, "PREFECT_API_URL": api}
        lead = json.loads(dealflow("lead", "add", "--company", "Acme Steel", "--contact", "Ann Lee", "--email",
                                   "ann@acme.example", "--owner", "sofia", "--json", env=user).stdout)
        started = dealflow("deal", "start", str(lead["lead"]), "--json", env=user)
        assert started.returncode == 0, started.stderr
        deal = json.loads(started.stdout)["deal"]
        for step, by, ahead, args in (
                ("qualify", "sofia", 0, ["--set", "qualified=true"]),
                ("handoff", "sofia", 1, ["--set", "engineer=mark"]),
                ("estimate", "mark", 0, ["--input", '{"lines": [{"sku": "VMC-850", "quantity": 1}]}'])):
            waited_for(deal, step, user)
            answered = dealflow("answer", deal, step, "--by", by, "--code", code_of(by, ahead=ahead), *args, env=user)
            assert answered.returncode == 0, answered.stderr
        waited_for(deal, "decision", user)
        link = link_in_mail(data_dir / "mail", "Estimate EST-", base=f"http://127.0.0.1:{portal_port}")
        assert link and link.startswith(f"http://127.0.0.1:{portal_port}/e/")
        with PortalCustomer() as browser:
            page = browser.answer(link, "accept", name="Ann Lee", po_number="PO-77", terms="yes")
        assert page.status_code == 200 and "you accepted estimate" in page.text, page.text[-2000:]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shown = json.loads(dealflow("deal", "show", deal, "--json", env=user).stdout)
            if shown.get("order"):
                break
            time.sleep(1)
        assert shown["order"]["number"] == "SO-0001", shown
    finally:
        down = dealflow("down", env=shell)
    assert down.returncode == 0, down.stdout + down.stderr
    assert len(pids) == 5 and not [p for p in pids if running(p)]  # server, worker, executor, portal, gateway
    # everything in the data folder is its owner's alone: databases, Prefect's home, mail, logs
    shared = [str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.lstat().st_mode & 0o077]
    assert shared == [], shared
    assert credential_file.read_text().strip() == credential  # kept for the next `up`
    assert not (data_dir / "run" / "api-url").exists()  # nothing answering there may be sent it
