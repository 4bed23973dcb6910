"""A mail server that is down is not a deal's (or a reminder run's) fate: the mail waits in the
outbox and the scheduled outbox run sends it once the server is back."""

from __future__ import annotations

from typing import Any

from services.config import load_settings
from services.mailer import TransientMailError
from services.orchestration.engine import State, Task, get_run_logger


def with_mail_retries(mail_task: Task) -> Task:
    """The mail task retrying as DEALFLOW_MAIL_RETRY_SECONDS says (2, 10 and 30 s unless set)."""
    delays = list(load_settings().mail_retry_seconds)
    return mail_task.with_options(retries=len(delays), retry_delay_seconds=delays or 0)


def sent_or_left_in_outbox(state: State, what: str) -> Any:
    """The mail task's result; or, when it ended failed because the mail server could not take
    mail through all its retries, None after a warning. Any other failure is raised."""
    if state.is_completed():
        return state.result()
    error = state.result(raise_on_failure=False)
    if not isinstance(error, TransientMailError):
        raise error if isinstance(error, BaseException) else RuntimeError(f"{what}: {state.message}")
    get_run_logger().warning("%s: the mail server cannot take mail (%s); it waits in the outbox and goes "
                             "out with the next outbox run", what, error)
    return None
