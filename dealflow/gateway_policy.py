"""The gateway's route table: now ``dealflow.gateway.policy``; this name stays for its importers."""

from __future__ import annotations

from .gateway.policy import API_ROUTES, CANCEL, DENY, READ, RESUME, Decision, decide, plain_path, readme_rows

__all__ = ["API_ROUTES", "CANCEL", "DENY", "READ", "RESUME", "Decision", "decide", "plain_path", "readme_rows"]
