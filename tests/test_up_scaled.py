"""`dealflow up --api-replicas 2 --executors 2 --redis URL`: Prefect's scaled topology on one host,
on PostgreSQL, with a Redis of the test's own (Debian's redis-server on a free port). Both replicas
ready, the services process running, a deal answered through the gateway, and after one replica
is killed (SIGKILL) the gateway still serves, the deal still moves, and `dealflow down` stops
everything. (Killing a replica, an executor and the services under 20 deals is the next slice.)

Slow (one to two minutes): runs when DEALFLOW_E2E=1 and the tests are on PostgreSQL, as in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text

from services.db import engine_for

from .conftest import PG_URL
from .e2e_stack import api_status
from .helpers import code_of
from .smtp_server import free_port
from .test_up import dealflow, running, waited_for

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not os.environ.get("DEALFLOW_E2E"), reason="set DEALFLOW_E2E=1 (CI does)"),
              pytest.mark.skipif(not PG_URL, reason="the scaled topology needs PostgreSQL (DEALFLOW_TEST_DATABASE_URL)"),
              pytest.mark.skipif(not shutil.which("redis-server"), reason="needs Debian's redis-server (.ci/run installs it)")]


def _prefect_database() -> str:
    server, database = PG_URL.rsplit("/", 1)
    name = re.sub(r"\W", "_", database.split("?", 1)[0]).lower()[:40] + "_scaled_prefect"
    with engine_for(server + "/postgres").execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return f"{server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"


@pytest.fixture
def redis(tmp_path):
    """A redis-server of this test's own, on a free port, keeping nothing on disk."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
        time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def two_free_ports() -> int:
    """A port whose next one is free too (the two replicas)."""
    while True:
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


def _post(url: str, body: dict, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=90) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_up_runs_prefects_scaled_topology_and_a_deal_moves_on_after_a_replica_is_killed(data_dir, redis):
    port, machines, portal_port, gateway_port = two_free_ports(), free_port(), free_port(), free_port()
    shell = {k: v for k, v in os.environ.items()
             if k not in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING")}
    shell["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = _prefect_database()
    pids: list[int] = []
    try:
        first = dealflow("up", "--port", str(port), "--api-replicas", "2", "--executors", "2", "--redis", redis,
                         "--machines-port", str(machines), "--portal-port", str(portal_port),
                         "--gateway-port", str(gateway_port), "--json", env=shell)
        pids = [int(p.read_text()) for p in (data_dir / "run").glob("*.pid")]
        assert first.returncode == 0, first.stdout + first.stderr
        info = json.loads(first.stdout)
        assert sorted(p.name for p in (data_dir / "run").glob("*.pid")) == [
            "executor-1.pid", "executor-2.pid", "gateway.pid", "portal.pid", "server-2.pid", "server.pid",
            "services.pid", "worker.pid"]
        assert info["replicas"] == [f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port + 1}/api"]
        assert info["api"] == f"http://127.0.0.1:{machines}/api"  # the machines' door
        for replica in info["replicas"]:
            assert api_status(replica, "/ready") == 200
        assert running(info["services_pid"])
        services_cmd = Path(f"/proc/{info['services_pid']}/cmdline").read_bytes().split(b"\0")
        assert services_cmd[-4:-1] == [b"server", b"services", b"start"]
        replica_cmd = Path(f"/proc/{info['replica_pids'][1]}/cmdline").read_bytes().split(b"\0")
        assert b"--no-services" in replica_cmd
        # every Prefect server process shares Prefect's events through the test's Redis
        environ = Path(f"/proc/{info['replica_pids'][0]}/environ").read_bytes().split(b"\0")
        assert b"PREFECT_SERVER_EVENTS_MESSAGING_BROKER=prefect_redis.messaging" in environ
        assert f"PREFECT_SERVER_DOCKET_URL={redis}".encode() in environ
        logs = "".join(p.read_text() for p in (data_dir / "logs").glob("server*.log"))
        assert "Failed to register block schema" not in logs  # one replica registers Prefect's block types

        gateway = f"http://127.0.0.1:{gateway_port}"
        token = _post(f"{gateway}/dealflow/api/login", {"handle": "sofia", "code": code_of("sofia")}, "")[1]["token"]
        user = {**shell, "PREFECT_API_URL": info["api"]}  # an administrator's shell: the door, no credential typed
        lead = json.loads(dealflow("lead", "add", "--company", "Acme Steel", "--contact", "Ann Lee", "--email",
                                   "ann@acme.example", "--owner", "sofia", "--json", env=user).stdout)
        started = dealflow("deal", "start", str(lead["lead"]), "--json", env=user)
        assert started.returncode == 0, started.stderr
        deal = json.loads(started.stdout)["deal"]
        waited_for(deal, "qualify", user)
        assert _post(f"{gateway}/dealflow/api/answer", {"deal": deal, "step": "qualify",
                                                         "answer": {"qualified": True}}, token) == (
            200, {"deal": deal, "key": "qualify", "status": "sent"})
        waited_for(deal, "handoff", user)

        os.kill(info["replica_pids"][0], signal.SIGKILL)  # the first replica, the one on --port
        assert api_status(info["replicas"][1], "/ready") == 200
        for _ in range(4):  # whichever replica each would have gone to, every one is answered
            assert _post(f"{gateway}/api/flow_runs/filter", {"limit": 1}, token)[0] == 200
        assert _post(f"{gateway}/dealflow/api/answer", {"deal": deal, "step": "handoff",
                                                         "answer": {"engineer": "mark"}}, token)[0] == 200
        waited_for(deal, "estimate", user)  # the executors moved it on through the door
        inbox = dealflow("inbox", "--json", env=user)
        assert inbox.returncode == 0 and any(w["deal"] == deal for w in json.loads(inbox.stdout)), inbox.stderr
    finally:
        down = dealflow("down", env=shell)
    assert down.returncode == 0, down.stdout + down.stderr
    assert len(pids) == 8 and not [p for p in pids if running(p)]
    assert list((data_dir / "run").glob("*.pid")) == []
