"""A return's or a warranty claim's steps as Prefect tasks and the run's bookkeeping, over
``application.cases`` (as ``tasks.deal_steps`` is for a deal): numbers in, plain data out."""

from __future__ import annotations

from prefect import task

from application import cases
from services.orchestration import runs
from services.orchestration.engine import NO_CACHE


@task(task_run_name="{key}", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def case_step(name: str, case: str, key: str) -> str:
    """An automatic step of a return or a claim (closing a return), done once by its key."""
    return cases.run_automatic(name, case, key)


def tag_case_run(case: str, flow_run_id: str, step: str) -> list[str]:
    """Tags on the case's run for the UI's filters (kind, deal, customer, step, whose turn)."""
    tags = cases.run_tags(case, step)
    runs.tag(flow_run_id, tags)
    return tags
