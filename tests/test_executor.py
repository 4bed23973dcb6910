"""Who takes over a deal's run when the executor that claimed it is gone (no server needed; the
end-to-end test kills a real executor and checks the deals finish)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dealflow.executor import orphaned

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def check(owner: str, *, alive: set[int] = frozenset(), adopt: set[str] = frozenset(),
          since: datetime | None = NOW) -> bool:
    return orphaned(owner, "box:100", "box", set(adopt), since, NOW, is_executor=lambda pid: pid in alive)


def test_a_run_of_a_live_executor_on_this_host_stays_with_it():
    assert check("box:200", alive={200}) is False
    assert check("box:100") is False  # our own


def test_a_run_of_a_dead_executor_on_this_host_is_taken_over():
    assert check("box:200", alive=set()) is True
    assert check("box:not-a-pid") is True


def test_another_hosts_runs_are_left_alone_unless_adopted():
    assert check("other:200") is False
    assert check("other:200", adopt={"other"}) is True


def test_a_claim_without_a_name_is_taken_over_only_after_two_minutes():
    assert check("", since=NOW - timedelta(seconds=30)) is False
    assert check("", since=NOW - timedelta(minutes=3)) is True
    assert check("", since=None) is False
