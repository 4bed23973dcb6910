"""What the gateway adds to a request: reads and resumes, straight to the Prefect server and
through the gateway, on the same server, alternating.

    .venv/bin/python benchmarks/gateway.py                  # 300 reads of each kind, 100 resumes each way
    .venv/bin/python benchmarks/gateway.py --reads 50 --resumes 20

In a new temporary data folder: a business database (SQLite, seeded), the Prefect server on
SQLite as `dealflow up` starts it (`python -m dealflow.stack`), with a credential, on a free port, and the gateway served by uvicorn in this process
(as `dealflow gateway` serves it) in front of it. A person (sofia) signs in at the gateway for a
bearer token. Then, alternating direct and through the gateway:
- reads: `GET /api/flow_runs/{id}` and `POST /api/flow_runs/filter` (limit 20);
- resumes: flow runs paused at "qualify" (their form stored, each an open wait of its own deal
  in the business database), resumed with an answer: directly with the credential, or through
  the gateway, which reads the run, finds the wait, checks the role and seals the answer.
Printed: p50 and p95 of each, per path, and what the gateway adds (p50 and p95 of through minus
direct), with the settings. Target (issue 21): added p50 and p95 at most 20 ms.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--resumes", type=int, default=100)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dealflow-gateway-bench-"))
    credential = f"bench:{secrets.token_urlsafe(18)}"
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    for name in [k for k in os.environ if k.startswith(("PREFECT_", "DEALFLOW_", "SMTP_")) or k == "DATABASE_URL"]:
        del os.environ[name]
    os.environ.update(DEALFLOW_DATA_DIR=str(tmp / "data"), DATABASE_URL=f"sqlite:///{tmp / 'dealflow.db'}",
                      DEALFLOW_CONFIG_DIR=str(tmp / "config"), PREFECT_HOME=str(tmp / "prefect"),
                      PREFECT_API_URL=api, PREFECT_API_AUTH_STRING=credential,
                      PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
    # the server as `dealflow up` runs it on SQLite (dealflow/stack.py: a resume takes the write
    # lock first, a "database is locked" is tried again in the server)
    server = subprocess.Popen([sys.executable, "-m", "dealflow.stack", "--host", "127.0.0.1",
                               "--port", str(port)], env={**os.environ, "PREFECT_SERVER_API_AUTH_STRING": credential},
                              stdout=open(tmp / "server.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    uv = None
    try:
        import httpx
        import uvicorn

        import dealflow  # noqa: F401
        from dealflow import gateway
        from dealflow.scenario import start_scenario_deal
        from models import StaffUser, identity, seed
        from services import keys
        from services.db import migrate, session_scope
        from tasks.deal_steps import open_wait, plan_next_step

        keys.ensure_key_file()
        migrate()
        with session_scope() as s:
            seed.load(s, keys.cipher())
            s.commit()
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit((tmp / "server.log").read_text()[-2000:])
            time.sleep(0.5)

        gport = _free_port()
        config = gateway.GatewayConfig(upstream=f"http://127.0.0.1:{port}", credential=credential)
        uv = uvicorn.Server(uvicorn.Config(gateway.create_app(config), host="127.0.0.1", port=gport,
                                           log_level="warning", access_log=False))
        threading.Thread(target=uv.run, daemon=True).start()
        gw = f"http://127.0.0.1:{gport}"
        while not uv.started:
            time.sleep(0.05)

        with session_scope() as s:
            person = s.query(StaffUser).filter_by(handle="sofia").one()
            generator = identity.totp(person, keys.cipher())
        code = generator.generate_otp(int(time.time()) // 30)
        token = httpx.post(f"{gw}/dealflow/api/login", json={"handle": "sofia", "code": code}).json()["token"]
        direct = httpx.Client(base_url=api, headers={"authorization": "Basic " + base64.b64encode(
            credential.encode()).decode()}, timeout=30)
        through = httpx.Client(base_url=f"{gw}/api", headers={"authorization": f"Bearer {token}"}, timeout=30)

        # paused runs, each an open wait of its own deal
        flow_id = direct.post("/flows/", json={"name": "bench-deal"}).json()["id"]
        schema = {"type": "object", "properties": {"qualified": {"type": "boolean", "title": "Qualified?"}}}
        runs = []
        for i in range(args.resumes * 2):
            run_id = direct.post("/flow_runs/", json={"flow_id": flow_id, "name": f"bench-{i}"}).json()["id"]
            direct.post(f"/flow_runs/{run_id}/set_state", json={"state": {"type": "RUNNING"}, "force": True})
            paused = direct.post(f"/flow_runs/{run_id}/set_state", json={"state": {
                "type": "PAUSED", "name": "Paused", "state_details": {
                    "pause_key": "qualify", "pause_reschedule": False,
                    "run_input_keyset": {"response": "paused-qualify-response", "schema": "paused-qualify-schema",
                                         "description": "paused-qualify-description"}}}, "force": True})
            assert paused.json()["status"] == "ACCEPT", paused.text
            direct.post(f"/flow_runs/{run_id}/input", json={"key": "paused-qualify-schema", "value": json.dumps(schema)})
            number = start_scenario_deal(company=f"Bench {i} Ltd")
            step = plan_next_step(number)
            open_wait(number, step["name"], step["key"], run_id)
            runs.append(run_id)
        sample = runs[0]

        def timed(client: httpx.Client, method: str, path: str, body: dict | None = None) -> float:
            started = time.perf_counter()
            response = client.request(method, path, json=body)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code < 300, (path, response.status_code, response.text[:300])
            return elapsed

        results: dict[str, dict[str, list[float]]] = {}
        cases = [("read: GET /api/flow_runs/{id}", "GET", f"/flow_runs/{sample}", None),
                 ("read: POST /api/flow_runs/filter", "POST", "/flow_runs/filter", {"limit": 20})]
        for name, method, path, body in cases:
            for client in (direct, through):  # warm both
                timed(client, method, path, body)
            got = results[name] = {"direct": [], "gateway": []}
            for _ in range(args.reads):
                got["direct"].append(timed(direct, method, path, body))
                got["gateway"].append(timed(through, method, path, body))
        got = results["resume: POST /api/flow_runs/{id}/resume"] = {"direct": [], "gateway": []}
        for i in range(args.resumes):
            answer = {"run_input": {"qualified": True}}
            got["direct"].append(timed(direct, "POST", f"/flow_runs/{runs[2 * i]}/resume",
                                       {"run_input": {**answer["run_input"], "by": "sofia"}}))
            got["gateway"].append(timed(through, "POST", f"/flow_runs/{runs[2 * i + 1]}/resume", answer))

        print(f"gateway benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, load "
              f"{os.getloadavg()[0]:.2f}; Prefect server (python -m dealflow.stack) on SQLite ({tmp}), gateway in-process (uvicorn, httpx "
              f"pool to loopback), business database SQLite; reads x{args.reads}, resumes x{args.resumes}")
        print(f"{'request':42} {'direct p50':>10} {'p95':>7} {'gateway p50':>12} {'p95':>7} {'added p50':>10} {'p95':>7}")
        for name, got in results.items():
            d50, d95 = statistics.median(got["direct"]), _pct(got["direct"], 0.95)
            g50, g95 = statistics.median(got["gateway"]), _pct(got["gateway"], 0.95)
            print(f"{name:42} {d50:10.1f} {d95:7.1f} {g50:12.1f} {g95:7.1f} {g50 - d50:10.1f} {g95 - d95:7.1f}  ms")
        print("target: added p50 and p95 at most 20 ms")
    finally:
        if uv is not None:
            uv.should_exit = True
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
