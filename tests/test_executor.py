"""Who takes over a deal's run when the executor that claimed it is gone (no server needed; the
end-to-end test kills a real executor and checks it recovers the deals and they finish)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dealflow.executor import orphaned

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(minutes=3)


def check(owner: str, *, alive: set[int] = frozenset(), adopt: set[str] = frozenset(),
          since: datetime | None = NOW, in_hand: bool = False) -> bool:
    return orphaned(owner, "box:100", "box", set(adopt), since, NOW, is_executor=lambda pid: pid in alive,
                    in_hand=in_hand)


def test_a_run_of_a_live_executor_on_this_host_stays_with_it():
    assert check("box:200", alive={200}, since=OLD) is False


def test_our_own_run_is_ours_while_in_hand_and_taken_back_when_it_was_lost():
    assert check("box:100", in_hand=True, since=OLD) is False
    assert check("box:100", since=NOW - timedelta(seconds=20)) is False  # just claimed: give it time
    assert check("box:100", since=OLD) is True  # names us, not in our hands: a claim whose reply was lost


def test_a_run_of_a_dead_executor_on_this_host_is_taken_over():
    assert check("box:200", alive=set()) is True
    assert check("box:not-a-pid") is True


def test_another_hosts_runs_are_adopted_only_when_asked_and_stuck():
    assert check("other:200", since=OLD) is False
    assert check("other:200", adopt={"other"}, since=NOW - timedelta(seconds=30)) is False  # moving
    assert check("other:200", adopt={"other"}, since=OLD) is True


def test_a_claim_without_a_name_is_taken_over_only_after_two_minutes():
    assert check("", since=NOW - timedelta(seconds=30)) is False
    assert check("", since=OLD) is True
    assert check("", since=None) is False


class _ReadBeforeTheOtherClaim:
    """A Prefect client that reads the run as it was polled (Scheduled): the other executor's claim
    lands between this one's read and its proposal."""

    def __init__(self, client, polled):
        self.client, self.polled = client, polled

    def read_flow_run(self, flow_run_id):
        return self.polled

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.mark.flow
def test_of_two_executors_claiming_one_run_at_the_same_moment_only_the_first_gets_it(prefect_api):
    """Prefect refuses the second claim (ABORT) but answers it with the run's current state, the
    first claim's Pending: taken for a yes, both executors ran the run (seen on the scaled
    topology, tests/test_scaled_faults.py), and the second's late Running left a suspended run
    Running with nobody running it."""
    from prefect import flow, get_client
    from prefect.states import Scheduled

    from services.orchestration import worker

    @flow
    def nothing() -> None:
        pass

    with get_client(sync_client=True) as client:
        polled = client.create_flow_run(nothing, state=Scheduled())
        assert worker.claim(client, polled, "box:100") is True
        assert worker.claim(_ReadBeforeTheOtherClaim(client, polled), polled, "box:200") is False
        run = client.read_flow_run(polled.id)
        assert (run.state.type.value, run.infrastructure_pid) == ("PENDING", "box:100")
