"""The ASGI wrapper `dealflow up` puts around a Prefect server on SQLite: a request the app
answers 503 (SQLite's "database is locked") is sent to it again with its body, and only the
last answer goes back; anything else passes once, as it was answered."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from services.orchestration.server import (
    SERVER_TUNING,
    RetryBusy,
    _resume_path,
    server_retries,
    server_tuning,
)


class Busy:
    """A small ASGI app that answers 503 ``busy`` times, then echoes the body it got."""

    def __init__(self, busy: int, status: int = 200):
        self.busy, self.status, self.calls, self.bodies = busy, status, 0, []

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        status = 503 if self.calls <= self.busy else self.status
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps({"call": self.calls, "got": body.decode()})
                    .encode()})


def _post(app, path: str = "/api/flow_runs/1/resume", body: bytes = b'{"run_input": {"x": 1}}'):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.post(path, content=body)
    return asyncio.run(go())


def test_a_request_refused_as_busy_is_sent_again_with_its_body_and_only_the_last_answer_returns():
    app = Busy(busy=2)
    answer = _post(RetryBusy(app, retries=6, first_pause=0.001))
    assert answer.status_code == 200 and answer.json() == {"call": 3, "got": '{"run_input": {"x": 1}}'}
    assert app.bodies == [b'{"run_input": {"x": 1}}'] * 3


def test_a_request_still_busy_after_every_try_gets_the_503_and_others_pass_once():
    app = Busy(busy=100)
    assert _post(RetryBusy(app, retries=3, first_pause=0.001)).status_code == 503 and app.calls == 4
    other = Busy(busy=0, status=422)
    assert _post(RetryBusy(other, retries=3, first_pause=0.001)).status_code == 422 and other.calls == 1


def test_only_a_flow_runs_resume_begins_by_taking_the_write_lock_and_retries_are_bounded():
    assert _resume_path({"method": "POST", "path": "/api/flow_runs/abc/resume"})
    assert not _resume_path({"method": "GET", "path": "/api/flow_runs/abc/resume"})
    assert not _resume_path({"method": "POST", "path": "/api/flow_runs/abc/set_state"})
    assert server_retries({}) == 6 and server_retries({"DEALFLOW_SERVER_RETRIES": "0"}) == 0
    assert server_retries({"DEALFLOW_SERVER_RETRIES": "99"}) == 10
    assert server_retries({"DEALFLOW_SERVER_RETRIES": "x"}) == 6


def test_a_resume_begins_its_sqlite_transaction_by_taking_the_write_lock(tmp_path):
    """Prefect's own SQLite configuration, patched as `dealflow up`'s server patches it: inside a
    resume the transaction begins IMMEDIATE (the write lock first), elsewhere as Prefect begins it."""
    from prefect.server.database.configurations import SQLITE_BEGIN_MODE, AioSqliteConfiguration
    from sqlalchemy import text

    from services.orchestration import server as stack

    original = AioSqliteConfiguration.begin_transaction
    try:
        assert stack._begin_immediate_when_asked()

        async def modes() -> list[str]:
            config = AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}")
            engine = await config.engine()
            seen = []
            for resume in (False, True):
                token = stack._WRITE_AT_ONCE.set(resume)
                try:
                    session = await config.session(engine)
                    async with config.begin_transaction(session):
                        seen.append(SQLITE_BEGIN_MODE.get())
                        await session.execute(text("select 1"))
                    await session.close()
                finally:
                    stack._WRITE_AT_ONCE.reset(token)
            await engine.dispose()
            return seen

        assert asyncio.run(modes()) == ["DEFERRED", "IMMEDIATE"]
    finally:
        AioSqliteConfiguration.begin_transaction = original


def test_the_server_gets_dealflows_tuning_unless_the_user_set_a_value_or_turned_it_off(monkeypatch):
    key = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"
    assert server_tuning({"X": "1"}) == {**SERVER_TUNING, "X": "1"}
    assert server_tuning({key: "7"})[key] == "7"  # the user's own value is kept
    assert server_tuning({"DEALFLOW_SERVER_TUNING": "off"}) == {"DEALFLOW_SERVER_TUNING": "off"}
    # every setting is one Prefect 3 knows, with a value it accepts
    from prefect.settings import Settings

    for name, value in SERVER_TUNING.items():
        monkeypatch.setenv(name, value)
    services = Settings().server.services
    assert (services.task_run_recorder.batch_size, services.task_run_recorder.read_batch_size) == (50, 50)
    assert services.task_run_recorder.flush_interval == 1
    assert services.event_persister.read_batch_size == 50
    assert services.triggers.enabled is False
    # Prefect's database is kept from growing: finished runs deleted 90 days after they ended
    assert services.db_vacuum.enabled_vacuum_types >= {"events", "flow_runs"}
    assert services.db_vacuum.retention_period.days == 90


def test_a_redis_password_reaches_prefect_but_never_a_message_or_the_log():
    from services.orchestration.topology import TopologyRefused, redis_shown, scaled_server_env

    url = "redis://:s3cret-pw@10.0.0.5:6379/2"
    env = scaled_server_env({"PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u@h/p"}, url)
    assert (env["PREFECT_REDIS_MESSAGING_HOST"], env["PREFECT_REDIS_MESSAGING_DB"],
            env["PREFECT_REDIS_MESSAGING_PASSWORD"]) == ("10.0.0.5", "2", "s3cret-pw")
    assert redis_shown(url) == "redis://:***@10.0.0.5:6379/2"
    assert redis_shown("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    with pytest.raises(TopologyRefused) as refused:
        scaled_server_env({"PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u@h/p"},
                          "rediss://:s3cret-pw@10.0.0.5:6379/0")
    assert "s3cret-pw" not in str(refused.value) and "***" in str(refused.value)
