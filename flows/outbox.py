"""The scheduled outbox run (every 5 minutes, see prefect.yaml): mail that a deal's own run could
not send (the mail server was down longer than its retries, or its sender died before handing a
message over) goes out once the server takes mail again, each message once.

The run fails, visibly in the UI, while the mail server cannot take mail, with how much mail
waits and since when; its table artifact ``outbox`` says the same when it succeeds."""

from __future__ import annotations

from typing import Any

from prefect import flow

from models.outbox import waited
from services.orchestration.engine import Completed, Failed
from tasks.outbox import send_pending_mail
from tasks.ui import table_artifact


def _run_name() -> str:
    from models import utcnow
    return f"outbox-{utcnow().isoformat(timespec='minutes')}"


@flow(name="outbox", flow_run_name=_run_name, persist_result=False)
def outbox_flow():
    """Send all pending mail now; fail (visibly) while the mail server cannot take it."""
    result: dict[str, Any] = send_pending_mail()
    summary = (f"{len(result['sent'])} sent; {result['pending']} pending"
               + (f" (oldest {waited(result['oldest_pending_seconds'])}, email {result['oldest_pending_id']})"
                  if result["pending"] else "")
               + f"; {result['fate_unknown']} of unknown fate; {result['failed']} failed")
    table_artifact("outbox", [{k: result[k] for k in (
        "pending", "oldest_pending_id", "oldest_pending_since", "fate_unknown", "failed")} | {
        "sent_now": len(result["sent"]), "error": result["error"] or ""}], f"Outbox: {summary}")
    if result["error"]:
        return Failed(message=f"the mail server cannot take mail: {result['error']}; {summary}", data=result)
    return Completed(message=summary, data=result)
