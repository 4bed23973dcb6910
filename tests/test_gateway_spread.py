"""The gateway in front of several Prefect API replicas: requests go to the ready ones in turn, a
request that reached no server goes to the next, a change that broke off is never sent twice,
and the machines' door passes connections through to a live replica. Against real small servers
on loopback (uvicorn, and a raw socket server that breaks off), never a fake transport."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from dealflow.gateway import app as gateway
from dealflow.gateway.config import GatewayConfig, config_from_env, parse_upstreams
from dealflow.gateway.door import MachineDoor
from dealflow.gateway.proxy import no_answer
from dealflow.gateway.replicas import MaybeDone, NoReplicaReady, Replicas, Spread

from .helpers import code_of
from .smtp_server import free_port

CREDENTIAL = "dealflow:the-machines-only"


class Replica:
    """A small stand-in for one Prefect API replica, served by uvicorn on its own port: it records
    what reached it, and answers /api/ready as told."""

    def __init__(self, name: str, ready: bool = True):
        self.name, self.ready, self.port = name, ready, free_port()
        self.seen: list[tuple[str, str, str]] = []  # (method, path, authorization)
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def app(self) -> Starlette:
        async def ready(request: Request):
            return JSONResponse({"message": "OK"} if self.ready else {"message": "database"},
                                status_code=200 if self.ready else 503)

        async def anything(request: Request):
            self.seen.append((request.method, request.url.path, request.headers.get("authorization", "")))
            return JSONResponse({"replica": self.name})

        return Starlette(routes=[Route("/api/ready", ready),
                                 Route("/{p:path}", anything, methods=["GET", "HEAD", "POST", "DELETE"])])

    def start(self) -> Replica:
        self.server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Gone: its port refuses connections from now on."""
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(10)
            self.server = None

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.seen]


class BreaksOff:
    """A replica that reads each request whole, then closes the connection without an answer (as
    one killed while it works on a request)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(m.group(1)) if (m := re.search(rb"content-length: *(\d+)", head, re.I)) else 0
                while len(body) < length and (chunk := conn.recv(65536)):
                    body += chunk
                if head and not head.startswith(b"GET /api/ready "):  # the gateway's checks are not counted
                    self.requests.append(head.split(b"\r\n", 1)[0])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def replicas():
    started: list[Replica] = []

    def make(name: str, ready: bool = True) -> Replica:
        started.append(Replica(name, ready).start())
        return started[-1]

    yield make
    for replica in started:
        replica.stop()


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


async def _send(urls: list[str], calls: list[tuple[str, str]], checked: bool = False) -> tuple[list, Replicas]:
    """Each call through a client spread over ``urls``: the replica's name, or the error."""
    spread = Replicas(urls)
    async with httpx.AsyncClient(base_url=urls[0], transport=Spread(spread), timeout=10) as client:
        if checked:
            await spread.check_once(httpx.AsyncClient(timeout=2))
        results = []
        for method, path in calls:
            try:
                results.append((await client.request(method, path, json={} if method == "POST" else None)).json()["replica"])
            except httpx.HTTPError as exc:
                results.append(exc)
    return results, spread


# --- spreading and failing over ------------------------------------------------------------------

def test_requests_go_to_the_ready_replicas_in_turn(replicas):
    a, b = replicas("a"), replicas("b")
    answered, _ = asyncio.run(_send([a.url, b.url], [("GET", "/api/flow_runs/x")] * 4))
    assert sorted(answered) == ["a", "a", "b", "b"]
    assert a.paths() == b.paths() == ["/api/flow_runs/x"] * 2


def test_a_replica_whose_ready_check_fails_gets_no_requests(replicas):
    a, b = replicas("a"), replicas("b", ready=False)
    answered, spread = asyncio.run(_send([a.url, b.url], [("GET", "/api/flow_runs/x")] * 3, checked=True))
    assert answered == ["a", "a", "a"]
    assert b.seen == [] and spread.ready == {a.url: True, b.url: False}


def test_the_background_checks_bring_a_replica_back_once_it_is_ready(replicas):
    a, b = replicas("a"), replicas("b", ready=False)

    async def scenario() -> list[str]:
        spread = Replicas([a.url, b.url], check_seconds=0.05)
        async with httpx.AsyncClient(base_url=a.url, transport=Spread(spread)) as client:
            await client.get("/api/hello")  # starts the checks
            while spread.checks < 1:
                await asyncio.sleep(0.01)
            assert spread.ready[b.url] is False
            b.ready = True
            seen = spread.checks
            while spread.checks < seen + 2:  # a whole check round after the change
                await asyncio.sleep(0.01)
            return [(await client.get("/api/hello")).json()["replica"] for _ in range(2)]

    assert sorted(asyncio.run(scenario())) == ["a", "b"]


def test_a_read_goes_to_the_live_replica_when_the_other_refuses_connections(replicas):
    b = replicas("b")
    gone = closed_port_url()
    answered, spread = asyncio.run(_send([gone, b.url], [("GET", "/api/flow_runs/x")] * 3))
    assert answered == ["b", "b", "b"]
    assert spread.ready[gone] is False  # not tried again until its check says it is ready


def test_a_change_that_reached_no_server_goes_to_the_next_replica_once(replicas):
    b = replicas("b")
    answered, _ = asyncio.run(_send([closed_port_url(), b.url], [("POST", "/api/flow_runs/r1/resume")]))
    assert answered == ["b"]
    assert b.seen == [("POST", "/api/flow_runs/r1/resume", "")]


def test_a_change_broken_off_after_it_was_sent_is_not_sent_again_and_says_it_may_be_done(replicas):
    breaks, b = BreaksOff(), replicas("b")
    try:
        answered, _ = asyncio.run(_send([breaks.url, b.url], [("POST", "/api/flow_runs/r1/resume")]))
    finally:
        breaks.close()
    assert isinstance(answered[0], MaybeDone)
    assert breaks.requests == [b"POST /api/flow_runs/r1/resume HTTP/1.1"] and b.seen == []
    answer = no_answer(answered[0])
    assert answer.status_code == 502
    assert (f"dealflow's gateway: the Prefect API replica {breaks.url} broke off after POST /api/flow_runs/r1/resume "
            f"was sent (RemoteProtocolError): it may have been done; look before trying again") in answer.body.decode()


def test_a_read_by_post_broken_off_is_sent_again_to_the_other_replica(replicas):
    breaks, b = BreaksOff(), replicas("b")
    try:
        answered, _ = asyncio.run(_send([breaks.url, b.url], [("POST", "/api/flow_runs/filter")]))
    finally:
        breaks.close()
    assert answered == ["b"] and len(breaks.requests) == 1
    assert b.paths() == ["/api/flow_runs/filter"]


def test_with_no_replica_ready_the_answer_is_502_at_once(replicas):
    a = replicas("a", ready=False)
    answered, _ = asyncio.run(_send([a.url], [("GET", "/api/flow_runs/x")], checked=True))
    assert isinstance(answered[0], NoReplicaReady) and a.seen == []
    assert no_answer(answered[0]).body == b'{"detail":"dealflow\'s gateway: no Prefect API replica is ready"}'


# --- through the whole gateway ---------------------------------------------------------------------

def test_a_signed_in_person_reaches_both_replicas_and_still_after_one_is_gone(db, replicas):
    a, b = replicas("a"), replicas("b")
    config = GatewayConfig(upstream=a.url, credential=CREDENTIAL, replicas=(a.url, b.url))
    with TestClient(gateway.create_app(config), base_url="http://gw.test", follow_redirects=False) as client:
        assert client.get("/api/flow_runs/x").status_code == 401  # nobody gets through unsigned
        page = client.get("/dealflow/sign-in")
        token = re.search(r"name=csrf value='([0-9a-f]+)'", page.text).group(1)
        signed = client.post("/dealflow/sign-in", data={"handle": "sofia", "code": code_of("sofia"), "csrf": token,
                                                        "next": "/runs"}, headers={"origin": "http://gw.test"})
        assert signed.status_code == 303
        assert sorted(client.get("/api/flow_runs/x").json()["replica"] for _ in range(4)) == ["a", "a", "b", "b"]
        assert {auth for _, _, auth in a.seen + b.seen} == {"Basic ZGVhbGZsb3c6dGhlLW1hY2hpbmVzLW9ubHk="}
        a.stop()
        assert [client.get("/api/flow_runs/x").json()["replica"] for _ in range(3)] == ["b", "b", "b"]
        refused = client.delete("/api/flow_runs/x", headers={"origin": "http://gw.test"})
        assert refused.status_code == 403  # the policy is the same in front of several replicas
    assert ("DELETE", "/api/flow_runs/x", "Basic ZGVhbGZsb3c6dGhlLW1hY2hpbmVzLW9ubHk=") not in b.seen


# --- the machines' door ----------------------------------------------------------------------------

def test_the_machines_door_passes_connections_to_a_live_replica_as_they_are(replicas):
    a, b = replicas("a"), replicas("b")
    gone = closed_port_url()

    async def scenario() -> tuple[list[str], list[str], int]:
        door, port = MachineDoor(Replicas([gone, a.url, b.url], check_seconds=60)), free_port()
        await door.start("127.0.0.1", port)
        try:
            answers = []
            for _ in range(4):  # a new connection each time: each goes to the next ready replica
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                    answers.append((await client.get("/api/flow_runs/x", headers={
                        "authorization": "Basic bWFjaGluZTpzZWNyZXQ="})).json()["replica"])
            a.stop()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         headers={"authorization": "Basic bWFjaGluZTpzZWNyZXQ="}) as client:
                after = [(await client.post("/api/flow_runs/r/set_state", json={})).json()["replica"]
                         for _ in range(3)]
            return answers, after, door.connections
        finally:
            await door.stop()

    answers, after, connections = asyncio.run(scenario())
    assert sorted(answers) == ["a", "a", "b", "b"]
    assert after == ["b", "b", "b"]
    assert connections == 5  # one connection carried the three requests after `a` went
    assert {auth for _, _, auth in a.seen + b.seen} == {"Basic bWFjaGluZTpzZWNyZXQ="}  # the client's own, untouched


# --- settings --------------------------------------------------------------------------------------

def test_one_upstream_is_the_gateway_of_today_and_several_are_replicas(monkeypatch):
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", CREDENTIAL)
    one = config_from_env("http://127.0.0.1:4200")
    assert one.upstream == "http://127.0.0.1:4200" and one.replicas == () and one.upstreams == ("http://127.0.0.1:4200",)
    two = config_from_env("http://10.0.0.1:4200/api, http://10.0.0.2:4200/")
    assert two.upstream == "http://10.0.0.1:4200" and two.upstreams == ("http://10.0.0.1:4200", "http://10.0.0.2:4200")


@pytest.mark.parametrize("text", ["ftp://a:1,http://b:2", "http://a:1,http://b:2/prefect", "http://a:1,nothing"])
def test_an_upstream_that_is_not_a_servers_address_is_refused_in_one_line(text):
    with pytest.raises(ValueError, match=r"^'[^']+' is not a Prefect server's address \(http://HOST:PORT, its API "
                                         r"under /api\)$"):
        parse_upstreams(text)
