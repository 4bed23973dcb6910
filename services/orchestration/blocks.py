"""Prefect's blocks that dealflow reads: a Secret (e.g. the SMTP password, never a run's input)."""

from __future__ import annotations


def secret(name: str) -> str:
    """The value of the Secret block ``name``."""
    from prefect.blocks.system import Secret

    return str(Secret.load(name).get())
