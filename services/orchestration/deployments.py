"""Deployments: reading one, starting a run of one, and the ``prefect`` commands that set them up
on a server (a process work pool with a job template, ``prefect.yaml`` deployed, a worker)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def read_deployment(name: str):
    """The deployment named ``name`` ("FLOW/DEPLOYMENT") on the server, or None."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None


def start_run(deployment_id, *, parameters: dict[str, Any], tags: list[str], idempotency_key: str):
    """A new run of the deployment (not waited for): the server returns the run it made first
    under ``idempotency_key``."""
    from prefect.deployments import run_deployment

    return run_deployment(deployment_id, parameters=parameters, timeout=0, tags=tags,
                          idempotency_key=idempotency_key)


PREFECT = [sys.executable, "-m", "prefect"]  # the `prefect` command of this Python


def create_pool_command(name: str, job_template: Path) -> list[str]:
    """Create (or replace) the process work pool ``name`` with the job template in the file."""
    return [*PREFECT, "work-pool", "create", name, "--type", "process", "--overwrite",
            "--base-job-template", str(job_template)]


def deploy_all_command() -> list[str]:
    """Deploy every deployment of ``prefect.yaml`` (run in the project's folder)."""
    return [*PREFECT, "--no-prompt", "deploy", "--all"]


def worker_command(pool: str, name: str) -> list[str]:
    """A stock process worker on ``pool``."""
    return [*PREFECT, "worker", "start", "--pool", pool, "--name", name]
