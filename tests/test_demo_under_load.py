"""The README's first command on a busy machine: `dealflow demo` as a new process, with a fresh
Prefect home (so its temporary server starts from an empty database) and every core kept busy
by another process. It must wait for the server as long as the machine needs, and say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from .conftest import PG_URL

pytestmark = [pytest.mark.flow, pytest.mark.skipif(
    bool(PG_URL), reason="the demo uses its own SQLite database; once per CI run is enough")]

BURN = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end:\n    pass\n"


def test_the_demo_succeeds_beside_a_cpu_load_on_every_core(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_") and k not in ("DATABASE_URL", "DEALFLOW_DATA_DIR")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(os.cpu_count() or 2)]
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "dealflow.cli", "demo", "--json", "--data-dir",
                               str(tmp_path / "demo")], env=env, capture_output=True, text=True, timeout=900)
        seconds = time.monotonic() - started
    finally:
        for b in burners:
            b.kill()
            b.wait()
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "won"
    starting = [ln for ln in done.stderr.splitlines() if ln.startswith("starting a temporary Prefect server")]
    assert len(starting) == 1, done.stderr[:2000]
    print(f"demo beside {len(burners)} busy processes: {seconds:.0f} s")


def test_a_temporary_server_that_does_not_start_in_time_is_one_line_saying_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    done = subprocess.run([sys.executable, "-m", "dealflow.cli", "demo", "--data-dir", str(tmp_path / "demo")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: prefect: the temporary Prefect server did not start within 1 s"), done.stderr
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in last and "Traceback" not in done.stderr
