"""The deal executor: one long-lived process that runs the deal deployment's runs in threads.

A Prefect process worker starts a new Python process for every run it picks up, and a deal's run
is picked up again after every answer (its waits suspend, and a resumed run starts again from its
top). On a small machine that process start (~2-3 CPU-seconds of imports and engine set-up) is
the whole cost of an answer. The executor does what a worker does, without the process:

1. it polls the ``dealflow-deals`` work pool for runs that are due (new deals, resumed ones),
   and heartbeats as a worker of that pool, so the UI shows it online;
2. it claims a run by proposing ``Pending`` (the server refuses a second claim, so several
   executors, on one machine or several, never run the same run twice) and records itself as
   the run's ``infrastructure_pid`` (``host:pid``);
3. it runs the flow with Prefect's own engine (``run_flow``) in a thread: the run goes to its next
   wait, suspends, and the thread is free again.

The Prefect calls of each (the workers' endpoint, the claim, ``run_flow``) are
``services.orchestration.worker``'s; this module decides what to claim, when, and who recovers what.

What a worker's process boundary gave for free, it does itself: a run left ``Pending`` or
``Running`` by an executor that died (killed, machine restarted) is put back to ``Scheduled``
when an executor on the same host starts, or on any host with ``--adopt HOST``; the deal's
flow then continues from where the database says the deal is, and its steps repeat nothing.
A stock process worker on the same pool still works (``prefect worker start --pool
dealflow-deals``), only slower.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from services.orchestration import worker

POOL = "dealflow-deals"
log = logging.getLogger("dealflow.executor")


def _host_pid() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _is_executor(pid: int) -> bool:
    """Whether ``pid`` on this host is a live executor (a reused pid of another program is not)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    argv = cmdline.split(b"\0")
    # `python -m dealflow.cli executor ...` or `dealflow executor ...` (not, say, an editor on executor.py)
    return b"executor" in argv and any(a == b"dealflow.cli" or a.endswith(b"/dealflow") for a in argv)


def orphaned(owner: str, me: str, host: str, adopt: set[str], since: datetime | None, now: datetime,
             is_executor=_is_executor, in_hand: bool = False) -> bool:
    """Whether a run claimed by ``owner`` (``host:pid``, as written at the claim) has lost it.

    A run in our own hands is not; one that names us but is not in our hands (a claim whose
    reply was lost, a failure after it) is, once its state is a minute old. On this host, a run
    whose executor process is gone is. On another host, only if we were told to adopt that
    host's runs, and only runs stuck for two minutes (a live executor's runs move in seconds).
    A run claimed by nobody we know of (its claimer died before writing its name): after two
    minutes."""
    stale = since is not None and now - since > timedelta(minutes=2)
    if owner == me:
        return not in_hand and since is not None and now - since > timedelta(minutes=1)
    owner_host, _, owner_pid = owner.rpartition(":")
    if owner and owner_host == host:
        return not (owner_pid.isdigit() and is_executor(int(owner_pid)))
    if owner:
        return owner_host in adopt and stale
    return stale


class Executor:
    def __init__(self, pool: str = POOL, slots: int = 8, poll: float = 0.25, name: str | None = None,
                 status_file: Path | None = None, adopt: tuple[str, ...] = ()):
        self.pool, self.slots, self.poll = pool, slots, poll
        self.name = name or f"executor-{_host_pid()}"
        self.me = _host_pid()
        self.status_file = status_file
        self.adopt = set(adopt)
        self.stopping = threading.Event()
        self.active: dict[str, Future] = {}
        self.lock = threading.Lock()
        self.runs_done = 0
        self._flows: dict[UUID, Any] = {}
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="deal-run")

    # ----- the loop
    def serve(self, until: float | None = None) -> None:
        log.info("%s serving pool %r with %d slots, polling every %.2f s", self.name, self.pool, self.slots,
                 self.poll)
        last_heartbeat = last_recovery = 0.0
        with worker.client() as client:
            while not self.stopping.is_set() and (until is None or time.monotonic() < until):
                now = time.monotonic()
                try:
                    if now - last_heartbeat >= worker.HEARTBEAT_SECONDS:
                        worker.heartbeat(client, self.pool, self.name)
                        last_heartbeat = now
                    if now - last_recovery >= 30:
                        self.recover(client)
                        last_recovery = now
                    free = self.slots - self._busy()
                    if free > 0:
                        for item in worker.due_runs(client, self.pool, free):
                            self._claim_and_start(client, item.flow_run)
                    self._write_status()
                except Exception:  # noqa: BLE001 - a server restarting is not the executor's end
                    log.warning("the Prefect API did not answer (or the status file could not be written); "
                                "trying again in 2 s", exc_info=True)
                    self.stopping.wait(2)
                    continue
                self.stopping.wait(self.poll)
        self.drain()

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def drain(self, timeout: float = 30) -> None:
        """Let running deals reach their next wait (seconds, as a rule) before the process ends."""
        deadline = time.monotonic() + timeout
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self._busy():
            log.warning("%d run(s) still running at exit; the next executor on this host takes them over",
                        self._busy())
            os._exit(1)  # do not wait for them (Python would join their threads); recovery resumes them
        self._threads.shutdown(wait=False, cancel_futures=True)
        try:
            self._write_status()
        except OSError:
            pass

    def _busy(self) -> int:
        with self.lock:
            for run_id in [r for r, f in self.active.items() if f.done()]:
                del self.active[run_id]
            return len(self.active)

    # ----- claiming and running
    def _claim_and_start(self, client, flow_run) -> None:
        run_id = str(flow_run.id)
        with self.lock:
            if run_id in self.active:
                return
        if not worker.claim(client, flow_run, self.me):
            return  # taken (or moved on) since the poll, or another executor (or worker) was first
        context = contextvars.copy_context()
        with self.lock:
            self.active[run_id] = self._threads.submit(context.run, self._run, flow_run.id)

    def _flow_for(self, client, flow_run):
        """The flow of the run's deployment, loaded once per deployment from its entrypoint."""
        from services.config import PROJECT_ROOT

        if flow_run.deployment_id not in self._flows:
            self._flows[flow_run.deployment_id] = worker.load_flow(client, flow_run.deployment_id, PROJECT_ROOT)
        return self._flows[flow_run.deployment_id]

    def _run(self, flow_run_id: UUID) -> None:
        started = time.monotonic()
        try:
            name, state, stopped = worker.run(flow_run_id, self._flow_for)
            if stopped is not None:  # a suspension, or the server telling the engine to stop
                log.info("%s stopped: %s", flow_run_id, stopped)
            else:
                log.info("%s -> %s in %.2f s", name, getattr(state, "name", state), time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - one broken run must not take the others down
            # Not the flow failing (the engine records that itself) but loading it or reaching the
            # API: try it again in a minute (proposed, not forced: if the run has moved on, the
            # server refuses). If even that fails, recovery takes it back (it names us, not in hand).
            log.exception("run %s failed outside its flow; it runs again in 60 s", flow_run_id)
            try:
                worker.run_again_later(flow_run_id, 60, f"executor: {exc}")
            except Exception:  # noqa: BLE001
                log.exception("could not reschedule %s; recovery will", flow_run_id)
        finally:
            with self.lock:
                self.runs_done += 1

    # ----- recovery
    def recover(self, client) -> list[str]:
        """Put back to Scheduled the runs a dead executor left Pending or Running, and store the
        form of any run that died between suspending and storing it."""
        runs = worker.claimed_runs(client, self.pool)
        recovered = []
        for run in runs:
            owner = run.infrastructure_pid or ""
            with self.lock:
                in_hand = str(run.id) in self.active
            if not orphaned(owner, self.me, socket.gethostname(), self.adopt,
                            run.state.timestamp if run.state else None, datetime.now(UTC), in_hand=in_hand):
                continue
            worker.give_back(client, run.id, f"its executor {owner or '?'} is gone; {self.me} runs it again")
            recovered.append(run.name)
            log.warning("recovered %s (left %s by %s)", run.name, run.state.name if run.state else "?", owner or "?")
        from flows.waits import restore_missing_forms

        for wait in restore_missing_forms():
            log.warning("stored the form of %s: its run had suspended without it", wait)
        return recovered

    def _write_status(self) -> None:
        if not self.status_file:
            return
        with self.lock:
            status = {"name": self.name, "pid": os.getpid(), "pool": self.pool, "slots": self.slots,
                      "active_runs": sorted(r for r, f in self.active.items() if not f.done()),
                      "runs_done": self.runs_done, "at": time.time()}
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(self.status_file)


def serve(pool: str = POOL, slots: int = 8, poll: float = 0.25, status_file: Path | None = None,
          adopt: tuple[str, ...] = ()) -> None:
    """Run until SIGTERM/SIGINT, then let the running deals reach their next wait."""
    from weasyprint.text.ffi import harfbuzz_subset

    # (a plain-HTTP API's clients skip the CA bundle: dealflow/__init__.py)
    # The executor's threads mostly wait on the network; one rendering a PDF holds the GIL. With
    # Python's default 5 ms switch interval a thread whose answer has arrived (the mail server's
    # "250", a database commit) can wait behind it at every step; 1 ms keeps the window between
    # handing an email over and marking it sent, which a crash leaves unknown, short.
    sys.setswitchinterval(0.001)
    if harfbuzz_subset is None:
        log.warning("libharfbuzz-subset is not installed: each PDF costs ~0.5 CPU-s instead of ~0.1 "
                    "(Debian/Ubuntu: apt install libharfbuzz-subset0)")
    executor = Executor(pool=pool, slots=slots, poll=poll, status_file=status_file, adopt=adopt)
    signal.signal(signal.SIGTERM, executor.stop)
    signal.signal(signal.SIGINT, executor.stop)
    executor.serve()
