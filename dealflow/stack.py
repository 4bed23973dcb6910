"""``dealflow up`` / ``dealflow down``: a Prefect server, the deployments and a worker on this
machine, in the background, for trying real use without setting anything up by hand.

Everything lives under the data folder: the server's own database and home in ``prefect/``,
logs in ``logs/``, process ids and the server's address in ``run/``, the API's credential in
``prefect-api-auth`` (see ``api_credential``). A server on SQLite runs as ``python -m dealflow.stack``:
``prefect server start`` with the changes of ``RetryBusy``, so that the UI's Resume does not fail
with "database is locked". What is Prefect's in this (the server's tuning and changes, the pools'
job template, the ``prefect`` commands) is in ``services.orchestration``. For production, run the
same three pieces as services (see the README's "Run it for real").
"""

from __future__ import annotations

import base64
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from services.config import GATEWAY_PORT, PORTAL_PORT, PROJECT_ROOT, load_settings, people_url
from services.orchestration import deployments
from services.orchestration.server import (  # noqa: F401 - also this module's names, as the README uses them
    PINNED_JOB_TEMPLATE,
    SERVER_TUNING,
    RetryBusy,
    plain_server_command,
    serve_prefect,
    server_retries,
    server_tuning,
)
from services.orchestration.topology import (
    TopologyRefused,
    api_replica_command,
    redis_shown,
    replica_env,
    scaled_server_env,
    services_command,
    upgrade_command,
)

from . import api_credential

POOL = "dealflow"  # the scheduled flows (reminders, reports, outbox): a stock process worker
DEALS_POOL = "dealflow-deals"  # the deals: dealflow's executor (see dealflow/executor.py)


def _paths() -> tuple[Path, Path, Path]:
    data = load_settings().data_dir
    run, logs, home = data / "run", data / "logs", data / "prefect"
    for p in (run, logs, home):
        p.mkdir(parents=True, exist_ok=True)
    return run, logs, home


def _alive(pid_file: Path) -> int | None:
    """The pid in the file, if that process is still one of ours (a reused pid is not)."""
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"prefect" not in cmdline and b"dealflow" not in cmdline:
            return None
        return pid
    except (OSError, ValueError):
        return None


def _stat(pid: int) -> tuple[bytes, bytes] | None:
    """(state, start time) of the process, from /proc; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def _exited(pid: int, within: float) -> bool:
    """Whether the process has exited (gone, a zombie nobody reaped, or its pid another's now)
    within that many seconds. Its command line reads empty as soon as its memory is released, a
    moment before it has exited: a process still tearing down is not gone yet, so `down` waits
    on its state."""
    first = _stat(pid)
    deadline = time.monotonic() + within
    while True:
        now = _stat(pid)
        if now is None or first is None or now[0] in (b"Z", b"X") or now[1] != first[1]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _spawn(name: str, args: list[str], env: dict[str, str]) -> int:
    run, logs, _ = _paths()
    if pid := _alive(run / f"{name}.pid"):
        return pid
    log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT,
                            start_new_session=True)
    (run / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _healthy(api: str, timeout: float, path: str = "/health") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api}{path}", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _auth_on(api: str, credential: str) -> str:
    """Whether the server takes this credential and nothing else: "on"; "off" when it takes
    requests without one (started without authentication); "other" when it refuses this one."""
    def status(headers: dict[str, str]) -> int:
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{api}/admin/version", headers=headers), timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:  # gone again: the next step says so
            return 0

    token = base64.b64encode(credential.encode()).decode()
    if status({"Authorization": f"Basic {token}"}) == 401:
        return "other"
    return "off" if status({}) == 200 else "on"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pinned_template_file(run: Path) -> Path:
    import json

    path = run / "pool-job-template.json"
    path.write_text(json.dumps(PINNED_JOB_TEMPLATE, indent=1))
    return path


def executor_poll(env: dict[str, str]) -> str:
    """Seconds between an executor's polls: gentle for a Prefect server on SQLite (see ``up``)."""
    return "0.25" if env.get("PREFECT_SERVER_DATABASE_CONNECTION_URL", "").startswith("postgresql") else "2"


def replica_names(api_replicas: int) -> list[str]:
    """The API replicas' pid names: the first is "server" (what a dealflow command in another shell
    looks for), then server-2, …; a single server (not scaled) is "server" alone."""
    return ["server"] + [f"server-{i}" for i in range(2, api_replicas + 1)]


def _scaled_env(server_env: dict[str, str], redis: str | None, api_replicas: int) -> dict[str, str]:
    """The Prefect servers' environment for the scaled topology, or a one-line refusal."""
    if not redis:
        raise TopologyRefused(f"redis: {api_replicas} API replicas share Prefect's events through Redis: "
                              f"give --redis redis://HOST:PORT/DB")
    return scaled_server_env(server_env, redis)


def _start_gateway(run: Path, logs: Path, env: dict[str, str], gateway_port: int, upstreams: list[str],
                   machines_port: int | None) -> int:
    if not _alive(run / "gateway.pid") and not _port_free(gateway_port):
        raise RuntimeError(f"port {gateway_port} (the gateway) is taken by another program; choose one with "
                           f"--gateway-port")
    door = ["--machines-port", str(machines_port)] if machines_port else []
    gateway = _spawn("gateway", [sys.executable, "-m", "dealflow.cli", "gateway", "--port", str(gateway_port),
                                 "--upstream", ",".join(upstreams), *door], env)
    if not _healthy(f"http://127.0.0.1:{gateway_port}/dealflow/health", 30, path=""):
        raise RuntimeError(f"the gateway did not answer on port {gateway_port}; see {logs / 'gateway.log'}")
    if machines_port and not _healthy(f"http://127.0.0.1:{machines_port}/api", 30):
        raise RuntimeError(f"the machines' door did not answer on port {machines_port}; see {logs / 'gateway.log'}")
    return gateway


def up(port: int = 4200, executors: int = 1, say=print, portal_port: int = PORTAL_PORT,
       gateway_port: int = GATEWAY_PORT, api_replicas: int = 1, redis: str | None = None,
       machines_port: int | None = None) -> dict[str, object]:
    """Start the stack. With ``api_replicas`` > 1 or ``redis``, Prefect's scaled topology (see
    services/orchestration/topology.py): replicas on ``port``, ``port``+1, …, one services process,
    and the gateway's machines' door on ``machines_port`` (default: the port after the last
    replica), which the executors, the worker, the portal and a dealflow command in another shell
    use as their PREFECT_API_URL, so that losing one replica loses none of them."""
    scaled = api_replicas > 1 or redis is not None
    if scaled:
        _scaled_env(dict(os.environ), redis, api_replicas)  # refused before anything starts
    run, logs, home = _paths()
    servers = replica_names(api_replicas) + (["services"] if scaled else [])
    pieces = [*servers, "worker", "portal", "gateway"] + [f"executor-{i}" for i in range(1, executors + 1)]
    running = {name: pid for name in pieces if (pid := _alive(run / f"{name}.pid"))}
    if len(running) == len(pieces):  # a second `up`: say so, start nothing, deploy nothing
        api_now = api_credential.address_file(run.parent).read_text().strip() if api_credential.address_file(
            run.parent).exists() else f"http://127.0.0.1:{port}/api"
        ui_now = people_url() or f"http://127.0.0.1:{gateway_port}"
        say(f"dealflow is already running for {run.parent} (server pid {running['server']}): the UI for the team at "
            f"{ui_now}, the Prefect server at {api_now.removesuffix('/api')}. `dealflow down` stops it.")
        return {"already_running": True, "ui": ui_now, "gateway": ui_now, "api": api_now, "pids": running,
                "logs": str(logs)}
    if running:
        say(f"dealflow is partly running for {run.parent} ({', '.join(sorted(running))}): starting the rest")
    public_url = os.environ.get("DEALFLOW_PUBLIC_URL", "")
    # what the executors and the portal need from the first moment: the business database's
    # tables and the secret key (`dealflow init` then loads the catalogue and the staff)
    from services import keys
    from services.db import migrate
    from services.files import tighten

    created = keys.ensure_key_file()
    migrate()
    if tightened := tighten(load_settings().data_dir):
        say(f"{load_settings().data_dir}: {tightened} files and folders that others could read or write are now "
            f"yours alone")
    if created:
        say(f"secret key created: {created} (mode 0600; back it up: it encrypts the staff's code secrets "
            f"and signs the customers' links)")
    data = run.parent
    api = f"http://127.0.0.1:{port}/api"
    ports = [port + i for i in range(api_replicas)]
    machines_port = (machines_port or port + api_replicas) if scaled else None
    for name, p in zip(replica_names(api_replicas), ports, strict=True):
        if not _alive(run / f"{name}.pid") and not _port_free(p):
            raise RuntimeError(f"port {p} is taken by another program; choose one with --port")
    # The API is closed to strangers: the server takes requests with this credential only (its
    # health check excepted), and every client started here is given it.
    try:
        credential, created = api_credential.ensure_credential(data)
    except (OSError, ValueError) as exc:
        raise RuntimeError(str(exc)) from None
    credential_file = api_credential.credential_file(data)
    say(f"Prefect API credential: {'made now, ' if created else ''}kept in {credential_file} (readable by you "
        f"only): for the machines (executors, the worker) and administrators on this host, never for the "
        f"team, who sign in at the gateway")
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": credential,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    # the executors mail the customers' links: by default they name the portal started below
    env["DEALFLOW_PUBLIC_URL"] = public_url or f"http://127.0.0.1:{portal_port}"
    # Each poll of a pool is a write on the server (the pool is marked ready). A server on SQLite
    # has one writer at a time, and a write that collides with another is refused ("database is
    # locked"; see RetryBusy for how the server `up` starts copes with that): poll it gently.
    poll = executor_poll(env)
    on_sqlite = poll == "2"
    server_env = {k: v for k, v in env.items() if not k.startswith("SMTP_")}  # the server needs no mail secrets
    server_env["PREFECT_SERVER_API_AUTH_STRING"] = credential
    server_env = server_tuning(server_env)
    if scaled:
        server_env = _scaled_env(server_env, redis, api_replicas)
        if not all(_alive(run / f"{name}.pid") for name in servers):  # migrations once, not per replica
            upgraded = subprocess.run(upgrade_command(), env=server_env, cwd=PROJECT_ROOT, capture_output=True,
                                      text=True)
            if upgraded.returncode != 0:
                raise RuntimeError(f"prefect server database upgrade failed:\n{upgraded.stdout[-2000:]}"
                                   f"{upgraded.stderr[-2000:]}")
        replicas = [_spawn(name, api_replica_command("127.0.0.1", p), replica_env(server_env, first=p == port))
                    for name, p in zip(replica_names(api_replicas), ports, strict=True)]
        services = _spawn("services", services_command(), server_env)
        server, scaled_pids = replicas[0], {"replica_pids": replicas, "services_pid": services,
                                            "replicas": [f"http://127.0.0.1:{p}/api" for p in ports]}
        say(f"{api_replicas} Prefect API replica(s) (pids {', '.join(map(str, replicas))}) starting on ports "
            f"{', '.join(map(str, ports))}, their background services (pid {services}), Redis at {redis_shown(redis)} ...")
        for p in ports[1:]:
            if not _healthy(f"http://127.0.0.1:{p}/api", 90):
                raise RuntimeError(f"the Prefect API replica on port {p} did not answer; see {logs}")
    else:
        scaled_pids = {}
        # On SQLite the server tries again what SQLite refused with "database is locked" (see
        # RetryBusy), so that the UI's Resume (which never retries) does not fail with it.
        wrapped = on_sqlite and server_retries(env) > 0
        start = [sys.executable, "-m", "dealflow.stack"] if wrapped else plain_server_command()
        server = _spawn("server", [*start, "--host", "127.0.0.1", "--port", str(port)], server_env)
        say(f"Prefect server (pid {server}) starting on {api} ...")
    if not _healthy(api, 90):
        raise RuntimeError(f"the Prefect server did not answer on {api}; see {logs / 'server.log'}")
    auth = _auth_on(api, credential)
    if auth == "other":
        raise RuntimeError(f"the Prefect server running on {api} (pid {server}) refuses the credential in "
                           f"{credential_file}: it was started with another one; run `dealflow down`, then `dealflow up`")
    if auth == "off":
        say(f"WARNING: the Prefect server running on {api} (pid {server}) was started without authentication "
            f"and takes requests from anyone who reaches it; run `dealflow down`, then `dealflow up`, to turn it on")
    upstreams = [f"http://127.0.0.1:{p}" for p in ports]
    if scaled:  # the machines (the gateway's own answers too, and dealflow commands in another shell)
        api = env["PREFECT_API_URL"] = f"http://127.0.0.1:{machines_port}/api"  # go through the machines' door
        gateway = _start_gateway(run, logs, env, gateway_port, upstreams, machines_port)
        say(f"gateway (pid {gateway}): the team's door on port {gateway_port}, the machines' door on {api}")
    api_credential.record_address(data, api)  # a dealflow command pointed at it finds the credential
    template = pinned_template_file(run)
    for pool_name in (POOL, DEALS_POOL):
        pool = subprocess.run(deployments.create_pool_command(pool_name, template),
                              env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
        if pool.returncode != 0:
            raise RuntimeError(f"creating the work pool failed:\n{pool.stdout[-2000:]}{pool.stderr[-2000:]}")
    deployed = subprocess.run(deployments.deploy_all_command(), env=env, cwd=PROJECT_ROOT,
                              capture_output=True, text=True)
    if deployed.returncode != 0:
        raise RuntimeError(f"prefect deploy failed:\n{deployed.stdout[-2000:]}{deployed.stderr[-2000:]}")
    say("deployments: deal, reminders (weekdays 08:00), reports (daily 07:00), outbox (every 5 min)")
    worker = _spawn("worker", deployments.worker_command(POOL, "dealflow-worker"), env)
    say(f"worker (pid {worker}) on pool '{POOL}' for the scheduled flows")
    pids = [_spawn(f"executor-{i}", [sys.executable, "-m", "dealflow.cli", "executor", "--pool", DEALS_POOL, "--poll", poll,
                                      "--status-file", str(run / f"executor-{i}.json")], env)
            for i in range(1, executors + 1)]
    say(f"{executors} deal executor(s) on pool '{DEALS_POOL}' (polling every {poll} s): pids {', '.join(map(str, pids))}")
    portal_url = f"http://127.0.0.1:{portal_port}"
    if not _alive(run / "portal.pid") and not _port_free(portal_port):
        raise RuntimeError(f"port {portal_port} (the customer portal) is taken by another program; "
                           f"choose one with --portal-port")
    portal = _spawn("portal", [sys.executable, "-m", "dealflow.cli", "portal", "--port", str(portal_port)],
                    env)
    if not _healthy(portal_url + "/healthz", 30, path=""):
        raise RuntimeError(f"the customer portal did not answer on {portal_url}; see {logs / 'portal.log'}")
    say(f"customer portal (pid {portal}) on {portal_url}; links in mail start with {public_url or portal_url}")
    gateway_url = os.environ.get("DEALFLOW_GATEWAY_URL") or f"http://127.0.0.1:{gateway_port}"
    if not scaled:
        gateway = _start_gateway(run, logs, env, gateway_port, upstreams, None)
        say(f"gateway (pid {gateway}) on http://127.0.0.1:{gateway_port}: the team's door to the Prefect UI")
    api_credential.record_gateway(data, gateway_url)
    if on_sqlite:
        say("The Prefect server runs on SQLite: fine to try things; for a team, put it on PostgreSQL "
            "(PREFECT_SERVER_DATABASE_CONNECTION_URL, see the README).")
    say(f"\nThe UI, for the team: {gateway_url} (each person signs in with their handle and the code their "
        f"authenticator app shows;\n  `dealflow staff enroll HANDLE` first)\n"
        f"The Prefect server itself (machines and administrators on this host only): http://127.0.0.1:{port}\n"
        f"In an administrator's shell:  export PREFECT_API_URL={api}\n"
        f"  (dealflow commands then read the credential themselves; the prefect CLI also needs\n"
        f"  export PREFECT_API_AUTH_STRING=\"$(cat {shlex.quote(str(credential_file))})\")\nLogs: {logs}")
    return {"ui": gateway_url, "gateway": gateway_url, "gateway_pid": gateway, "prefect_ui": f"http://127.0.0.1:{port}",
            "api": api, "portal": portal_url, "portal_pid": portal, "server_pid": server,
            "worker_pid": worker, "executor_pids": pids,
            "logs": str(logs), "credential_file": str(credential_file), **scaled_pids}


def down(say=print) -> list[str]:
    run, _, _ = _paths()
    stopped, stuck = [], []
    def last(pid_file: Path) -> tuple[int, str]:  # the machines first, then their door, then Prefect's servers
        name = pid_file.stem
        return (2 if name.startswith(("server", "services")) else 1 if name == "gateway" else 0), name

    for pid_file in sorted(run.glob("*.pid"), key=last):
        pid = _alive(pid_file)
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
                if not _exited(pid, within=40):
                    os.killpg(pid, signal.SIGKILL)
                    if not _exited(pid, within=10):
                        stuck.append(f"{pid_file.stem} (pid {pid})")
                        continue  # its pid file stays, for the next `down`
            except ProcessLookupError:
                pass
            stopped.append(pid_file.stem)
            say(f"stopped {pid_file.stem} (pid {pid})")
        pid_file.unlink(missing_ok=True)
    api_credential.forget_address(run.parent)  # the credential file stays, for the next `up`
    api_credential.forget_gateway(run.parent)
    if stuck:
        raise RuntimeError(f"still running after SIGTERM and SIGKILL: {', '.join(stuck)}"
                           f"{' (stopped: ' + ', '.join(stopped) + ')' if stopped else ''}")
    return stopped


if __name__ == "__main__":  # `python -m dealflow.stack ARGS`: `prefect server start ARGS` (see serve_prefect)
    serve_prefect(sys.argv[1:])
