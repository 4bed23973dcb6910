"""The pieces of real use for the end-to-end tests: a `prefect server start` with basic
authentication on (a credential generated per stack, as `dealflow up` does), `prefect deploy`
from prefect.yaml and a deal executor as separate processes, and ways to look at them."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from sqlalchemy import text

from dealflow import stack as dealflow_stack
from models.deal import deal_by_number
from services.config import PROJECT_ROOT
from services.db import engine_for, session_scope

from .conftest import PG_URL
from .smtp_server import free_port

PREFECT = [sys.executable, "-m", "prefect"]


class Stack:
    """A Prefect server that takes only the credential its clients are given (``env``'s
    PREFECT_API_AUTH_STRING), the deployments and a deal executor, as separate processes."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env, self.executor, self.gateway_process = home, env, None, None
        self.api, self.auth = env["PREFECT_API_URL"], env["PREFECT_API_AUTH_STRING"]
        self.status_file = home / "executor.json"
        self.server = subprocess.Popen([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port",
                                        self.api.split(":")[-1].split("/")[0]],
                                       env={**env, "PREFECT_SERVER_API_AUTH_STRING": self.auth},
                                       cwd=PROJECT_ROOT, start_new_session=True,
                                       stdout=open(home / "server.log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.api}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError((home / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        template = dealflow_stack.pinned_template_file(home)
        for pool in (dealflow_stack.POOL, dealflow_stack.DEALS_POOL):
            self.prefect("work-pool", "create", pool, "--type", "process", "--overwrite", "--base-job-template",
                         str(template))
        self.prefect("--no-prompt", "deploy", "--all")
        self.start_executor()

    def prefect(self, *args: str) -> str:
        done = subprocess.run([*PREFECT, *args], env=self.env, cwd=PROJECT_ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def start_executor(self) -> None:
        self.executor = subprocess.Popen([sys.executable, "-m", "dealflow.cli", "executor", "--status-file",
                                          str(self.status_file), "--poll", dealflow_stack.executor_poll(self.env)],
                                         env=self.env, cwd=PROJECT_ROOT,
                                         start_new_session=True, stdout=open(self.home / "executor.log", "ab"),
                                         stderr=subprocess.STDOUT)

    def gateway(self) -> str:
        """The team's door in front of this server (started on first use): its address."""
        if self.gateway_process is None:
            port = free_port()
            self.gateway_url = f"http://127.0.0.1:{port}"
            self.gateway_process = subprocess.Popen(
                [sys.executable, "-m", "dealflow.cli", "gateway", "--port", str(port), "--upstream",
                 self.api.removesuffix("/api")], env=self.env, cwd=PROJECT_ROOT, start_new_session=True,
                stdout=open(self.home / "gateway.log", "ab"), stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{self.gateway_url}/dealflow/health", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError((self.home / "gateway.log").read_text()[-3000:]) from None
                    time.sleep(0.3)
        return self.gateway_url

    def kill_executor(self) -> None:
        """The executor dies (SIGKILL, no goodbye), with whatever runs it had in hand."""
        os.kill(self.executor.pid, signal.SIGKILL)
        self.executor.wait(timeout=30)

    def runs_in_hand(self) -> list[str]:
        """The runs the executor is moving right now (it writes them down on every poll)."""
        try:
            return json.loads(self.status_file.read_text())["active_runs"]
        except (OSError, ValueError):
            return []

    def stop(self) -> None:
        for proc in (self.gateway_process, self.executor, self.server):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def api_status(api: str, path: str, auth: str | None = None) -> int:
    """The HTTP status of a GET of the API, with this credential (basic auth) or none."""
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{api}{path}", headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _prefect_database(tmp_path: Path) -> str:
    """Prefect's own database: PostgreSQL when the tests run on it (as in CI), else SQLite."""
    if not PG_URL:
        return f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"
    server, database = PG_URL.rsplit("/", 1)
    # named after the tests' database: two runs on one server, each with its scratch database,
    # do not drop each other's
    name = re.sub(r"\W", "_", database.split("?", 1)[0]).lower()[:40] + "_e2e_prefect"
    with engine_for(server + "/postgres").execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return f"{server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"


@contextmanager
def running_stack(tmp_path: Path, **extra_env: str) -> Iterator[Stack]:
    """A Prefect server (on PostgreSQL when the tests are) with authentication on, the
    deployments and an executor, with this process's Prefect client pointed at them and given
    the credential; everything killed afterwards."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    api = f"http://127.0.0.1:{free_port()}/api"
    auth = f"dealflow-e2e:{secrets.token_urlsafe(18)}"
    env = {**os.environ, **extra_env, "PREFECT_HOME": str(home), "PREFECT_API_URL": api,
           "PREFECT_API_AUTH_STRING": auth,
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": _prefect_database(tmp_path),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "INFO"}
    s = Stack(home, env)
    client_env = {"PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": auth}
    before = {name: os.environ.get(name) for name in client_env}
    try:
        # Prefect read its settings from the environment when this process imported it: the
        # client in this process (and in threads run in a copy of this context) gets them as
        # settings; the environment is for what reads it later (the CLI's own checks).
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings
        with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: auth}):
            os.environ.update(client_env)
            yield s
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        s.stop()


def flow_processes(run_id: str) -> list[int]:
    """Processes on this machine running that flow run (a worker's child carries its id)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"PREFECT__FLOW_RUN_ID={run_id}".encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def await_wait(number: str, step: str, timeout: float = 180) -> tuple[str, str]:
    """Until deal ``number`` (or a return or claim of it) waits at ``step`` with its run suspended:
    the wait's key and run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as s:
            d = deal_by_number(s, number)
            w = next((w for w in [d.open_wait, *d.case_waits] if w is not None and w.step == step), None)
            if w is not None and w.flow_run_id and run_state(w.flow_run_id) == "Suspended":
                return w.key, w.flow_run_id
        time.sleep(0.3)
    raise TimeoutError(f"{number} never suspended at {step}")


def run_state(run_id: str) -> str:
    from prefect import get_client
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id)).state.name


def browser_path() -> str | None:
    import shutil

    return next((p for p in ("chromium", "chromium-browser", "google-chrome") if shutil.which(p)), None)
