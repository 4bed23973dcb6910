"""Failures counted per address in the business database (``dealflow.limits.FailureLimit`` over
``models.throttle``): every replica of the portal or the gateway counts the same failures, the
window moves with the door's clock, old rows are trimmed, and odd keys (IPv6, long, unprintable)
are counted apart. On SQLite, or on the PostgreSQL named by DEALFLOW_TEST_DATABASE_URL."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from dealflow.limits import FailureLimit, limit_key
from models.throttle import FailedAttempt
from services.db import current_engine, session_scope


def rows(scope: str = "portal") -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(FailedAttempt).where(FailedAttempt.scope == scope))


@contextmanager
def statements():
    """The SQL statements sent to the business database meanwhile (a list, filled as they go)."""
    sent: list[str] = []

    def seen(conn, cursor, statement, *args):
        sent.append(statement)

    engine = current_engine()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_failures_leave_the_count_after_the_window_and_a_flood_of_addresses_unblocks_none(db):
    now = [0.0]
    limit = FailureLimit("portal", allowed=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        limit.fail("10.0.0.1")
    assert limit.blocked_for("10.0.0.1") == 60 and limit.blocked_for("10.0.0.2") == 0
    for i in range(50):  # looking is free of writes: an address that never failed is not remembered
        limit.blocked_for(f"10.1.0.{i}")
    assert limit.tracked() == 1 and rows() == 3
    for i in range(50):  # failures from many addresses: all counted (the table has no cap), the blocked one stays
        limit.fail(f"10.2.0.{i}")
    assert limit.tracked() == 51 and limit.blocked_for("10.0.0.1") == 60
    now[0] = 61
    assert limit.blocked_for("10.0.0.1") == 0 and limit.tracked() == 0
    limit.fail("10.3.0.1")  # the failures out of the window are deleted
    assert limit.tracked() == 1 and rows() == 1


def test_two_replicas_over_one_database_count_the_same_failures(db):
    now = [1000.0]
    one, two = (FailureLimit("portal", allowed=4, window=60, clock=lambda: now[0]) for _ in range(2))
    gateway = FailureLimit("gateway", allowed=4, window=60, clock=lambda: now[0])
    for limit in (one, two, one):
        limit.fail("203.0.113.7")
        now[0] += 1
    assert one.blocked_for("203.0.113.7") == 0 and two.blocked_for("203.0.113.7") == 0
    two.fail("203.0.113.7")  # the fourth, on the other replica: both refuse the address now
    assert one.blocked_for("203.0.113.7") == 57 and two.blocked_for("203.0.113.7") == 57
    assert gateway.blocked_for("203.0.113.7") == 0  # each door counts its own
    assert one.tracked() == two.tracked() == 1 and gateway.tracked() == 0


def test_replicas_failing_at_the_same_moment_lose_no_failure(db):
    now = [5000.0]
    replicas = [FailureLimit("gateway", allowed=40, window=600, clock=lambda: now[0]) for _ in range(4)]
    start = threading.Barrier(len(replicas))

    def hammer(limit: FailureLimit) -> None:
        start.wait()
        for _ in range(10):
            limit.fail("2001:db8:1:2::/64")

    threads = [threading.Thread(target=hammer, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rows("gateway") == 40
    assert all(r.blocked_for("2001:db8:1:2::/64") == 600 for r in replicas)


def test_the_window_moves_with_the_injected_clock_and_the_block_ends_when_enough_failures_leave_it(db):
    now = [0.0]
    limit = FailureLimit("portal", allowed=3, window=60, clock=lambda: now[0])
    for at in (0, 10, 20, 30):  # four failures (two replicas may both let one through): one over
        now[0] = at
        limit.fail("198.51.100.1")
    now[0] = 35
    assert limit.blocked_for("198.51.100.1") == 35  # until the third newest (at 10) leaves: 10 + 60
    now[0] = 69.5
    assert limit.blocked_for("198.51.100.1") == 0.5
    now[0] = 70
    assert limit.blocked_for("198.51.100.1") == 0  # 20 and 30 are left: two of three
    now[0] = 75
    limit.fail("198.51.100.1")
    assert limit.blocked_for("198.51.100.1") == 5  # 20, 30 and 75: until 20 leaves, at 80
    now[0] = 80
    assert limit.blocked_for("198.51.100.1") == 0


def test_a_check_is_one_query_and_a_blocked_address_knocking_again_costs_none(db):
    now = [0.0]
    limit = FailureLimit("gateway", allowed=2, window=60, clock=lambda: now[0])
    with statements() as sent:
        assert limit.blocked_for("192.0.2.1") == 0
    assert len([q for q in sent if q.lstrip().upper().startswith("SELECT")]) == 1
    with statements() as sent:
        limit.fail("192.0.2.1")
        now[0] = 1
        limit.fail("192.0.2.1")  # within a tenth of the window of the first: no second trim
    assert [q.split()[0].upper() for q in sent if q.split()[0].upper() in ("INSERT", "DELETE")] == \
        ["INSERT", "DELETE", "INSERT"]
    assert limit.blocked_for("192.0.2.1") == 59
    with statements() as sent:
        for second in range(2, 50):
            now[0] = second
            assert limit.blocked_for("192.0.2.1") == 60 - second
    assert sent == []
    other = FailureLimit("gateway", allowed=2, window=60, clock=lambda: now[0])
    other.fail("192.0.2.1")  # another replica let one more through meanwhile (at 49): the block is longer
    now[0] = 60
    assert limit.blocked_for("192.0.2.1") == 1  # where it was known to end, the database is asked again
    now[0] = 61
    assert limit.blocked_for("192.0.2.1") == 0


KEYS = st.one_of(
    st.ip_addresses(v=6).map(lambda ip: limit_key(str(ip))),
    st.ip_addresses(v=4).map(str),
    st.text(min_size=0, max_size=300),
    st.text(alphabet=st.characters(codec="ascii"), min_size=70, max_size=200),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=KEYS, other=KEYS)
def test_any_key_is_counted_as_itself_and_apart_from_any_other(db, key, other):
    clock = [0.0]
    with session_scope() as s:  # each example later than every earlier one's window
        latest = s.scalar(select(func.max(FailedAttempt.at)))
    if latest is not None:
        from models.throttle import seconds_of

        clock[0] = seconds_of(latest) + 1000
    limit = FailureLimit("portal", allowed=2, window=100, clock=lambda: clock[0])
    limit.fail(key)
    assert limit.blocked_for(key) == 0
    limit.fail(key)
    assert limit.blocked_for(key) == 100
    assert limit.blocked_for(other) == (100 if other == key else 0)
    with session_scope() as s:
        stored = s.scalars(select(FailedAttempt.key)).all()
    assert all(len(k) <= 80 for k in stored)


# --- the doors: two replicas of the portal, two of the gateway, over one database --------------------

def test_two_portal_replicas_refuse_an_address_after_its_failures_on_both(db, data_dir):
    from dealflow.portal import create_app
    from services.config import load_settings

    replicas = [TestClient(create_app(load_settings(), FailureLimit("portal", allowed=4)), follow_redirects=False)
                for _ in range(2)]
    with replicas[0] as one, replicas[1] as two:
        for client in (one, two, one, two):
            assert client.get("/e/nonsense").status_code == 404
        for client in (one, two):
            page = client.get("/e/nonsense")
            assert page.status_code == 429 and "Too many links that did not work" in page.text


def test_two_gateway_replicas_refuse_an_address_after_failed_sign_ins_on_both(db):
    from dealflow import gateway

    config = gateway.GatewayConfig(upstream="http://prefect.test", credential="user:pw")

    def replica() -> TestClient:
        app = gateway.create_app(config, transport=httpx.ASGITransport(app=Starlette()),
                                 limit=FailureLimit("gateway", allowed=4))
        return TestClient(app, base_url="http://127.0.0.1:4300", follow_redirects=False)

    with replica() as one, replica() as two:
        for client in (one, two, one, two):
            refused = client.post("/dealflow/api/login", json={"handle": "nobody", "code": "123456"})
            assert refused.status_code == 401
        for client in (one, two):
            refused = client.post("/dealflow/api/login", json={"handle": "nobody", "code": "123456"})
            assert refused.status_code == 429 and "too many failed sign-ins" in refused.json()["detail"]
