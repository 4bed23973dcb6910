"""The executor's side of a work pool (``dealflow.executor`` decides what to claim and when): what
a Prefect worker does, without a process per run.

It polls the pool through the workers' own endpoint (``POST /work_pools/NAME/
get_scheduled_flow_runs``), heartbeats as a worker, claims a run by proposing ``Pending`` (the
server refuses a second claim), and runs the flow with Prefect's engine in this process
(``prefect.flow_engine.run_flow``), as ``prefect flow-run retry`` does. Those are internals: see
tests/test_prefect_contract.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from .runs import client  # noqa: F401 - the executor's connection

HEARTBEAT_SECONDS = 15


def heartbeat(c, pool: str, name: str) -> None:
    """Tell the server that the worker ``name`` of ``pool`` is online (the UI shows it so)."""
    c.send_worker_heartbeat(pool, name, heartbeat_interval_seconds=HEARTBEAT_SECONDS)


def due_runs(c, pool: str, limit: int) -> list:
    """Runs of the pool due now, oldest first, no more than ``limit`` (a worker's own call,
    ``get_scheduled_flow_runs_for_work_pool``, fetches up to 200 on every poll). Each has
    ``.flow_run``."""
    from prefect.client.schemas.responses import WorkerFlowRunResponse

    response = c.request("POST", "/work_pools/{name}/get_scheduled_flow_runs",
                         path_params={"name": pool},
                         json={"scheduled_before": datetime.now(UTC).isoformat(), "limit": limit})
    return WorkerFlowRunResponse.model_validate_list(response.json())


def claim(c, flow_run, owner: str) -> bool:
    """Claim the run for ``owner`` (``host:pid``, recorded as its ``infrastructure_pid``): True if
    it is ours now. Only the very Scheduled state polled is claimed: a stale poll result (the run
    already taken, run and rescheduled since) is skipped without a state proposal."""
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Pending

    try:
        current = c.read_flow_run(flow_run.id).state
        if current is None or not current.is_scheduled() or current.id != flow_run.state.id:
            return False
        result = c.set_flow_run_state(flow_run.id, Pending(), force=False)
    except ObjectNotFound:
        return False
    # The status says whose it is, not the state: a claim refused because another executor (or
    # worker) claimed it first comes back ABORT with the run's current state, which is that
    # other claim's Pending
    if result.status != SetStateStatus.ACCEPT or result.state is None or not result.state.is_pending():
        return False
    try:
        c.update_flow_run(flow_run.id, infrastructure_pid=owner)
    except Exception:
        from prefect.states import Scheduled

        c.set_flow_run_state(flow_run.id, Scheduled(name="Unclaimed"), force=True)  # ours to give back
        raise
    return True


def load_flow(c, deployment_id: UUID, root: Path):
    """The flow of the deployment, loaded from its entrypoint (a path under ``root``)."""
    from prefect.flows import load_flow_from_entrypoint

    deployment = c.read_deployment(deployment_id)
    path, _, name = deployment.entrypoint.partition(":")
    return load_flow_from_entrypoint(f"{root / path}:{name}")


def run(flow_run_id: UUID, flow_for) -> tuple[str, Any, BaseException | None]:
    """Run the claimed run's flow here, with Prefect's engine, until it ends or suspends:
    ``(its name, its final state, None)``, or ``(its name, None, why)`` when the engine was
    stopped (a suspension, or the server telling it to stop). ``flow_for(client, flow_run)``
    gives the run's flow."""
    from prefect.exceptions import Abort, Pause
    from prefect.flow_engine import run_flow

    from .engine import engine_settings

    with client() as c:
        flow_run = c.read_flow_run(flow_run_id)
        flow = flow_for(c, flow_run)
    try:
        with engine_settings():
            state = run_flow(flow, flow_run=flow_run, return_type="state")
    except (Pause, Abort) as stopped:
        return flow_run.name, None, stopped
    return flow_run.name, state, None


def run_again_later(flow_run_id: UUID, seconds: float, message: str) -> None:
    """Schedule the run again in ``seconds`` (proposed, not forced: if the run has moved on,
    the server refuses)."""
    from prefect.states import Scheduled

    with client() as c:
        c.set_flow_run_state(flow_run_id, Scheduled(
            name="AwaitingRetry", scheduled_time=datetime.now(UTC) + timedelta(seconds=seconds), message=message))


def claimed_runs(c, pool: str) -> list:
    """The pool's runs that are Pending or Running (claimed by someone), up to 200."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.client.schemas.objects import StateType

    return c.read_flow_runs(
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING]))),
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
        limit=200)


def give_back(c, run_id: UUID, message: str) -> None:
    """Put a run whose claimer is gone back to Scheduled, for anyone to claim."""
    from prefect.states import Scheduled

    c.set_flow_run_state(run_id, Scheduled(name="Recovered", message=message), force=True)
