"""The gateway: each person signs in, reaches only what the table allows, and every Resume is
named and sealed at the door. Here against a small recording stand-in for Prefect's server (an
ASGI app behind httpx's own transport), so that what reaches "Prefect" can be counted exactly;
the same gateway in front of a real server and a real browser is tests/test_ui_forms.py."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from dealflow.gateway import app as gateway
from dealflow.gateway_policy import API_ROUTES, decide
from dealflow.scenario import TEAM, play_direct
from models import AuditEntry, StaffUser, identity
from services.db import session_scope
from tasks.deal_steps import open_wait, plan_next_step
from tasks.deal_steps import record_answer as flow_check

from .helpers import code_of

CREDENTIAL = "dealflow:the-machines-only"
RUN = "0b5e1a6e-4c57-4d0e-9a53-5a1d7f0c0001"
ORIGIN = "http://gw.test"


class Prefect:
    """What the gateway forwards, as Prefect's server would receive it; a paused run ``RUN``."""

    def __init__(self):
        self.seen: list[dict] = []
        self.pause_key = "qualify"
        self.description = "Qualify the lead: Riverside Metalworks"
        self.resume_reply: dict | None = None  # what the server answers a resume (default: {"ok": true})

    def app(self) -> Starlette:
        async def anything(request: Request):
            raw = request.scope.get("raw_path", request.scope["path"].encode()).decode("latin-1")
            self.seen.append({"method": request.method, "path": raw, "headers": dict(request.headers),
                              "body": await request.body(), "query": request.url.query})
            if request.method == "GET" and raw == f"/api/flow_runs/{RUN}":
                return JSONResponse({"id": RUN, "state": {"type": "PAUSED", "name": "Paused", "state_details":
                                                          {"pause_key": self.pause_key}}})
            if raw == "/ui-settings":
                return JSONResponse({"api_url": "http://127.0.0.1:4200/api", "auth": "BASIC", "csrf_enabled": False,
                                     "flags": [], "default_ui": "v1"})
            if raw == "/api/admin/settings":
                return JSONResponse({"home": "/srv/prefect", "server": {
                    "ui": {"enabled": True, "api_url": "http://127.0.0.1:4200/api", "static_directory": "/srv"},
                    "database": {"connection_url": "postgresql+asyncpg://prefect:pw@db/prefect"},
                    "api": {"auth_string": "********"}}})
            if raw.startswith("/v2") and not raw.startswith("/v2/assets/"):
                return HTMLResponse("<!doctype html><html><head><title>Prefect Server</title></head><body></body></html>")
            if raw.endswith("-description"):
                return PlainTextResponse(json.dumps(self.description))
            if raw.endswith("/resume") and self.resume_reply is not None:
                return JSONResponse(self.resume_reply, status_code=201)
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/{p:path}", anything, methods=["GET", "HEAD", "POST", "PUT", "PATCH",
                                                                         "DELETE", "OPTIONS"])])

    def reached(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"]) for r in self.seen]


@pytest.fixture
def prefect():
    return Prefect()


@pytest.fixture
def gw(db, prefect):
    app = gateway.create_app(gateway.GatewayConfig(upstream="http://prefect.test", credential=CREDENTIAL),
                             transport=httpx.ASGITransport(app=prefect.app()))
    with TestClient(app, base_url=ORIGIN, follow_redirects=False) as client:
        yield client


def sign_in(client: TestClient, handle: str, code: str | None = None, origin: str = ORIGIN) -> httpx.Response:
    page = client.get("/dealflow/sign-in")
    token = re.search(r"name=csrf value='([0-9a-f]+)'", page.text).group(1)
    return client.post("/dealflow/sign-in", data={"handle": handle, "code": code or code_of(handle),
                                                  "csrf": token, "next": "/runs"},
                       headers={"origin": origin})


def csrf_headers(client: TestClient, client_id: str = "ui-1") -> dict[str, str]:
    token = client.get(f"/api/csrf-token?client={client_id}").json()["token"]
    return {"origin": ORIGIN, "prefect-csrf-client": client_id, "prefect-csrf-token": token}


def refused_in_audit() -> list[tuple[str, str]]:
    with session_scope() as s:
        return [(e.actor, f"{e.details['method']} {e.details['path']}") for e in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "gateway.refused").order_by(AuditEntry.id))]


# --- signing in -------------------------------------------------------------------------------------

def test_nobody_gets_through_without_signing_in(gw, prefect):
    assert gw.get("/api/flow_runs/filter").status_code == 401
    page = gw.get("/runs/flow-run/abc?tab=Logs")
    assert page.status_code == 303
    assert page.headers["location"] == "/dealflow/sign-in?next=" + quote("/runs/flow-run/abc?tab=Logs", safe="")
    assert gw.post("/api/flow_runs/filter", json={}).status_code == 401
    assert prefect.seen == []


def test_a_person_signs_in_with_a_code_and_gets_an_httponly_session_cookie(gw, prefect):
    wrong = sign_in(gw, "sofia", TEAM.wrong_code("sofia"))
    assert wrong.status_code == 401
    assert "handle or code: not accepted. Type the code your authenticator app shows now" in wrong.text
    # a stranger learns nothing of who exists: an unknown handle reads the same
    nobody = sign_in(gw, "nobody", "123456")
    assert nobody.status_code == 401 and gateway.SIGN_IN_REFUSED in nobody.text
    answer = sign_in(gw, "sofia")
    assert answer.status_code == 303 and answer.headers["location"] == "/runs"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("dealflow_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=28800" in cookie
    assert gw.get("/dealflow/me").json()["handle"] == "sofia"
    listed = gw.get("/api/flow_runs/abc")
    assert listed.status_code == 200
    sent = prefect.seen[-1]["headers"]
    assert sent["authorization"].startswith("Basic ")  # the machines' credential, added at the door
    assert "cookie" not in sent  # the person's session never reaches Prefect
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(identity.AnswerFailure)) == 1
        logins = [e.details["door"] for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "staff.login"))]
        assert logins == ["gateway"]


def test_a_sign_in_from_another_site_or_without_its_token_is_refused(gw):
    assert sign_in(gw, "sofia", origin="https://evil.example").status_code == 400
    gw.get("/dealflow/sign-in")
    without = gw.post("/dealflow/sign-in", data={"handle": "sofia", "code": code_of("sofia")},
                      headers={"origin": ORIGIN})
    assert without.status_code == 400 and "expired or came from another site" in without.text
    assert gw.get("/dealflow/me").status_code == 401
    with session_scope() as s:  # the code was not even looked at
        assert s.scalars(select(StaffUser.totp_last_step).where(StaffUser.handle == "sofia")).one() is None


def test_signing_out_or_being_disabled_closes_the_session(gw, monkeypatch):
    from click.testing import CliRunner

    from dealflow.cli import main

    monkeypatch.setattr(gateway, "SESSION_CHECK_SECONDS", 0.0)
    sign_in(gw, "mark")
    assert gw.get("/dealflow/me").status_code == 200
    assert CliRunner().invoke(main, ["staff", "disable", "mark"]).exit_code == 0
    assert gw.get("/dealflow/me").status_code == 401
    assert gw.get("/api/flow_runs/x").status_code == 401
    sign_in(gw, "sofia")
    page = gw.get("/dealflow/sign-out")
    token = re.search(r"name=csrf value='([0-9a-f]+)'", page.text).group(1)
    assert gw.post("/dealflow/sign-out", data={"csrf": token}, headers={"origin": ORIGIN}).status_code == 303
    assert gw.get("/dealflow/me").status_code == 401


def test_the_command_line_signs_in_for_a_bearer_token(gw, prefect):
    refused = gw.post("/dealflow/api/login", json={"handle": "finance", "code": TEAM.wrong_code("finance")})
    assert refused.status_code == 401 and refused.json()["detail"] == gateway.SIGN_IN_REFUSED
    got = gw.post("/dealflow/api/login", json={"handle": "finance", "code": code_of("finance"), "hours": 24}).json()
    assert got["handle"] == "finance"
    with session_scope() as s:  # a token lasts no longer than a browser's session (8 h), whatever was asked
        row = s.get(identity.StaffSession, got["session"])
        assert abs((row.expires_at - row.opened_at).total_seconds() - 8 * 3600) < 5
    fresh = TestClient(gw.app, base_url=ORIGIN)
    bearer = {"authorization": f"Bearer {got['token']}"}
    assert fresh.get("/dealflow/me", headers=bearer).json()["handle"] == "finance"
    assert fresh.post("/api/flow_runs/filter", json={}, headers=bearer).status_code == 200  # no cookie: no CSRF
    assert fresh.post("/api/flow_runs/", json={}, headers=bearer).status_code == 403
    assert fresh.get("/dealflow/me", headers={"authorization": "Bearer " + got["token"][:-2] + "xx"}).status_code == 401


# --- allowed by role ----------------------------------------------------------------------------------

REFUSED = [  # one of each route class the issue names, as an insider with a session would try it
    ("POST", "/api/flow_runs/", {"flow_id": "x", "job_variables": {"command": "sh -c id"}}),
    ("POST", "/api/deployments/d1/create_flow_run", {"job_variables": {"env": {"DEALFLOW_ANSWER_CODES": "off"}}}),
    ("POST", f"/api/flow_runs/{RUN}/set_state", {"state": {"type": "SCHEDULED"}, "force": True}),
    ("PATCH", f"/api/flow_runs/{RUN}", {"parameters": {"deal_number": "DEAL-0002"}}),
    ("POST", f"/api/flow_runs/{RUN}/input", {"key": "paused-qualify-description", "value": "lies"}),
    ("DELETE", f"/api/flow_runs/{RUN}/input/paused-qualify-response", None),
    ("GET", "/api/block_documents/b1?include_secrets=true", None),
    ("POST", "/api/block_documents/filter", {}),
    ("POST", "/api/variables/", {"name": "x", "value": "y"}),
    ("POST", "/api/deployments/", {"name": "mine"}),
    ("PATCH", "/api/work_pools/dealflow", {"base_job_template": {}}),
    ("POST", "/api/automations/", {}),
    ("GET", "/api/admin/storage", None),
    ("DELETE", "/api/admin/storage", None),
    ("POST", "/api/work_pools/dealflow-deals/get_scheduled_flow_runs", {}),
]


def test_every_route_outside_the_table_is_refused_and_audited(gw, prefect):
    sign_in(gw, "sofia")
    headers = csrf_headers(gw)
    for method, path, body in REFUSED:
        answer = gw.request(method, path, json=body, headers=headers)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["detail"].startswith("dealflow's gateway: ")
    assert prefect.seen == []
    audited = refused_in_audit()
    assert len(audited) == len(REFUSED) and {actor for actor, _ in audited} == {"sofia"}
    assert audited[0] == ("sofia", "POST /api/flow_runs/")


def test_a_change_needs_the_gateways_origin_and_the_sessions_token(gw, prefect):
    sign_in(gw, "sofia")
    assert gw.post("/api/flow_runs/filter", json={}, headers={"origin": ORIGIN}).status_code == 403
    headers = csrf_headers(gw)
    assert gw.post("/api/flow_runs/filter", json={}, headers={**headers, "origin": "https://evil.example"}).status_code == 403
    assert gw.post("/api/flow_runs/filter", json={}, headers={**headers, "prefect-csrf-client": "other"}).status_code == 403
    assert prefect.seen == []
    assert gw.post("/api/flow_runs/filter", json={}, headers=headers).status_code == 200
    assert prefect.reached() == [("POST", "/api/flow_runs/filter")]
    assert "prefect-csrf-token" not in prefect.seen[0]["headers"]


def test_only_a_manager_may_cancel_and_only_cancel(gw, prefect):
    sign_in(gw, "sofia")
    cancel = {"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True}  # as the UI's Cancel sends it
    assert gw.post(f"/api/flow_runs/{RUN}/set_state", json=cancel, headers=csrf_headers(gw)).status_code == 403
    gw.cookies.clear()
    sign_in(gw, "manager")
    headers = csrf_headers(gw)
    for other in ("COMPLETED", "SCHEDULED", "RUNNING", "PAUSED"):
        assert gw.post(f"/api/flow_runs/{RUN}/set_state", json={"state": {"type": other}, "force": True},
                       headers=headers).status_code == 403
    assert gw.post(f"/api/flow_runs/{RUN}/set_state", json=cancel, headers=headers).status_code == 200
    assert prefect.reached() == [("POST", f"/api/flow_runs/{RUN}/set_state")]


def test_a_resume_may_hold_no_value_prefect_would_replace_before_storing_it(gw, prefect, new_deal):
    """Prefect "hydrates" an answer before it stores it: {"__prefect_kind": "json", "value": …}
    is replaced by what its value says (here: another person, no seal), a workspace_variable by a
    Prefect variable. What is stored would not be what was sealed: refused at the door."""
    _waiting(new_deal)
    sign_in(gw, "sofia")
    headers = csrf_headers(gw)
    for run_input in ({"__prefect_kind": "json", "value": json.dumps({"by": "manager", "qualified": True})},
                      {"qualified": True, "notes": {"__prefect_kind": "workspace_variable", "variable_name": "x"}},
                      {"qualified": True, "budget": 2 ** 64}):
        answer = gw.post(f"/api/flow_runs/{RUN}/resume", json={"run_input": run_input}, headers=headers)
        assert answer.status_code == 422, answer.text
    nan = gw.post(f"/api/flow_runs/{RUN}/resume", content=b'{"run_input": {"budget": NaN}}',
                  headers={**headers, "content-type": "application/json"})
    assert nan.status_code == 422
    assert ("POST", f"/api/flow_runs/{RUN}/resume") not in prefect.reached()


def test_a_body_past_the_limit_is_refused_also_without_a_length(gw, monkeypatch):
    monkeypatch.setattr(gateway, "MAX_BODY", 1024)
    app = gateway.create_app(gateway.GatewayConfig(upstream="http://prefect.test", credential=None),
                             transport=httpx.ASGITransport(app=Prefect().app()))
    with TestClient(app, base_url=ORIGIN) as client:
        big = client.post("/dealflow/api/login", content=b"x" * 5000, headers={"content-type": "application/json"})
        assert big.status_code == 413

        def chunks():
            for _ in range(10):
                yield b"y" * 500

        chunked = client.post("/dealflow/api/login", content=chunks(), headers={"content-type": "application/json"})
        assert chunked.status_code == 413  # no length announced: counted as it arrives


def test_websockets_are_refused(gw):
    from starlette.websockets import WebSocketDisconnect

    sign_in(gw, "sofia")
    with pytest.raises(WebSocketDisconnect), gw.websocket_connect("/api/events/in"):
        pass


def test_the_ui_is_told_its_api_is_the_gateways_with_csrf_and_no_login_page(gw):
    sign_in(gw, "sofia")
    got = gw.get("/ui-settings").json()
    assert (got["api_url"], got["auth"], got["csrf_enabled"]) == (f"{ORIGIN}/api", None, True)


def test_the_newer_uis_pages_get_dealflows_layout_and_the_older_run_page_sends_there(gw, prefect):
    sign_in(gw, "sofia")
    html = {"accept": "text/html,application/xhtml+xml"}
    page = gw.get(f"/v2/runs/flow-run/{RUN}", headers=html)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count('<link rel="stylesheet" href="/dealflow/ui.css">') == 1
    assert page.text.index("/dealflow/ui.css") < page.text.index("</head>")
    style = gw.get("/dealflow/ui.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert '[role="dialog"][data-slot="dialog-content"].max-h-\\[80vh\\].flex-col' in style.text
    old = gw.get(f"/runs/flow-run/{RUN}?tab=Logs", headers=html)
    assert (old.status_code, old.headers["location"]) == (303, f"/v2/runs/flow-run/{RUN}?tab=Logs")
    # the UI's scripts and its API calls pass as they are
    assert gw.get("/v2/assets/index.js").json() == {"ok": True}
    assert gw.get(f"/runs/flow-run/{RUN}", headers={"accept": "application/json"}).json() == {"ok": True}


def test_a_waits_description_says_who_is_signed_in(gw, prefect):
    prefect.description = "Qualify the lead"
    with session_scope() as s:
        person = s.scalars(select(StaffUser).where(StaffUser.handle == "sofia")).one()
        person.name = "Sofia *Ruiz* <img src=x>"
        s.commit()
    sign_in(gw, "sofia")
    text = json.loads(gw.get(f"/api/flow_runs/{RUN}/input/paused-qualify-description").text)
    assert text == ("Qualify the lead\n\n---\n\n**You answer as Sofia \\*Ruiz\\* \\<img src=x\\> (sofia)**: signed in, "
                    "your answer is sealed with your name. Not you? /dealflow/sign-out")


# --- sealed at the door ------------------------------------------------------------------------------

def _waiting(new_deal: str, key: str = "qualify") -> None:
    play_direct(new_deal, until=key)
    _next_wait(new_deal)


def _next_wait(new_deal: str) -> None:
    step = plan_next_step(new_deal)
    open_wait(new_deal, step["name"], step["key"], RUN)


def test_a_resume_is_named_from_the_session_and_sealed_and_the_flow_accepts_it_once(gw, prefect, new_deal):
    _waiting(new_deal)
    sign_in(gw, "sofia")
    typed = {"qualified": True, "notes": "real need", "by": "mark", "code": "123456", "seal": "forged"}
    answer = gw.post(f"/api/flow_runs/{RUN}/resume", json={"run_input": typed}, headers=csrf_headers(gw))
    assert answer.status_code == 200
    sent = json.loads(prefect.seen[-1]["body"])["run_input"]
    assert sent["by"] == "sofia" and "code" not in sent  # the person from the session; no code, ever
    assert set(sent["seal"]) == {"v", "by", "at", "nonce", "mac"}
    # what the flow does with the answer as Prefect stored it
    result = flow_check.fn(new_deal, "qualify", sent, sent)
    assert result["accepted"] and result["proof"] == identity.BY_GATEWAY and result["by"] == "sofia"


def test_an_answer_the_forms_schema_refuses_comes_back_in_the_teams_words(gw, prefect, new_deal):
    _waiting(new_deal)
    sign_in(gw, "sofia")
    prefect.resume_reply = {"status": "REJECT", "details": {"type": "reject_details", "reason": (
        "Reason: Validation failed for field 'lines[2].discount_pct'. Failure reason: 150 is greater than the "
        "maximum of 100")}}
    answer = gw.post(f"/api/flow_runs/{RUN}/resume", json={"run_input": {"qualified": True}}, headers=csrf_headers(gw))
    assert answer.status_code == 201
    assert answer.json() == {"status": "REJECT", "details": {"type": "reject_details",
                                                             "reason": "Line 3, discount %: must be at most 100"}}
    prefect.resume_reply = {"status": "ACCEPT", "details": {"type": "accept_details"}}
    answer = gw.post(f"/api/flow_runs/{RUN}/resume", json={"run_input": {"qualified": True}}, headers=csrf_headers(gw))
    assert answer.json() == prefect.resume_reply  # anything else as the server said it


def test_a_stored_answer_changed_after_the_resume_is_refused_as_tampered(gw, prefect, new_deal):
    _waiting(new_deal)
    sign_in(gw, "sofia")
    gw.post(f"/api/flow_runs/{RUN}/resume", json={"run_input": {"qualified": False, "notes": "no budget"}},
            headers=csrf_headers(gw))
    sent = json.loads(prefect.seen[-1]["body"])["run_input"]
    changed = {**sent, "qualified": True, "notes": "great lead"}  # rewritten in Prefect's stored input
    result = flow_check.fn(new_deal, "qualify", changed, changed)
    assert result["reason"] == ("seal: does not match this deal, wait, person and answer (the answer was "
                                "changed after it was sent)")
    as_mark = {**sent, "by": "manager"}  # another person (who may answer it) put in
    _next_wait(new_deal)
    assert flow_check.fn(new_deal, "qualify-retry-1", as_mark, as_mark)["reason"].startswith("seal: does not match")
    # the genuine one, replayed at the next wait: a seal is for its own wait, and good once
    _next_wait(new_deal)
    assert flow_check.fn(new_deal, "qualify-retry-2", sent, sent)["reason"].startswith("seal: does not match")
    with session_scope() as s:
        tampered = list(s.scalars(select(AuditEntry.subject).where(AuditEntry.action == identity.TAMPERED)
                                    .order_by(AuditEntry.id)))
    assert tampered == ["qualify", "qualify-retry-1", "qualify-retry-2"]


def test_a_seal_is_good_once(new_deal):
    from services import keys

    _waiting(new_deal)
    answer = {"qualified": True, "by": "sofia"}
    sealed = {**answer, "seal": identity.make_seal(keys.seal_key(), new_deal, "qualify", answer)}
    with session_scope() as s:
        from models.deal import deal_by_number

        deal = deal_by_number(s, new_deal)
        wait = next(w for w in deal.waits if w.key == "qualify")
        person = s.scalars(select(StaffUser).where(StaffUser.handle == "sofia")).one()
        identity.prove(s, person, wait.role_list, "qualify", {"seal": sealed["seal"]}, new_deal, "qualify", answer,
                       cipher=keys.cipher(), codes_required=True, consume=True, seal_key=keys.seal_key(), sent=sealed)
        with pytest.raises(identity.ProofRefused, match=r"^seal: used before"):
            identity.prove(s, person, wait.role_list, "qualify", {"seal": sealed["seal"]}, new_deal, "qualify",
                           answer, cipher=keys.cipher(), codes_required=True, consume=True,
                           seal_key=keys.seal_key(), sent=sealed)


def test_a_wait_answered_by_a_person_without_its_role_is_refused_at_the_door(gw, prefect, new_deal):
    _waiting(new_deal)
    sign_in(gw, "qa")
    answer = gw.post(f"/api/flow_runs/{RUN}/resume", json={"run_input": {"qualified": True}},
                     headers=csrf_headers(gw))
    assert answer.status_code == 403
    assert answer.json()["detail"] == (f"dealflow's gateway: qa (qa) may not answer qualify of {new_deal}: "
                                       f"it needs sales_rep")
    assert ("POST", f"/api/flow_runs/{RUN}/resume") not in prefect.reached()
    assert refused_in_audit() == [("qa", f"POST /api/flow_runs/{RUN}/resume")]
    gw.cookies.clear()
    sign_in(gw, "manager")  # a manager may stand in
    assert gw.post(f"/api/flow_runs/{RUN}/resume", json={"run_input": {"qualified": True}},
                   headers=csrf_headers(gw)).status_code == 200


def test_a_resume_of_a_run_that_waits_at_no_deals_wait_is_refused(gw, prefect, new_deal):
    sign_in(gw, "manager")
    prefect.pause_key = "anything"
    answer = gw.post(f"/api/flow_runs/{RUN}/resume", json={"run_input": {}}, headers=csrf_headers(gw))
    assert answer.status_code == 409
    assert answer.json()["detail"] == "dealflow's gateway: this run waits at no open wait of a deal"
    assert prefect.seen == []  # nothing reached Prefect


# --- the table, tried with generated requests ----------------------------------------------------------

def _allowed_by_table(method: str, path: str) -> bool:
    """The table read independently of the gateway's matcher: each {id} one plain segment."""
    method = "GET" if method == "HEAD" else method
    if not path.startswith("/api/"):
        return method == "GET" and "%" not in path and "//" not in path and \
            all(p not in (".", "..") for p in path.split("/"))
    for m, pattern, _ in API_ROUTES:
        rx = "/api" + re.sub(r"\\\{id\\\}", r"[A-Za-z0-9][A-Za-z0-9_.:-]*", re.escape(pattern))
        if m == method and re.fullmatch(rx, path) and all(p not in (".", "..") for p in path.split("/")):
            return True
    return False


WORDS = sorted({part for _, p, _ in API_ROUTES for part in p.split("/") if part and part != "{id}"}
               | {"block_documents", "variables", "admin", "settings", "automations", "input", "set_state",
                  "create_flow_run", "%2e%2e", "..", ".", "%2F", "", "x", "0b5e1a6e", "filter%00", "API", "api"})
segments = st.one_of(st.sampled_from(WORDS), st.text("abc./%-_:", min_size=1, max_size=6))


@settings(max_examples=int(__import__("os").environ.get("DEALFLOW_HYPOTHESIS_EXAMPLES", 300)),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
       parts=st.lists(segments, min_size=1, max_size=6), under_api=st.booleans())
def test_no_request_outside_the_table_reaches_prefect_with_a_staff_session(gw_session, method, parts, under_api):
    client, prefect, headers = gw_session
    path = ("/api/" if under_api else "/") + "/".join(parts)
    before = len(prefect.seen)
    try:
        client.request(method, path, headers=headers, content=b"{}" if method not in ("GET", "HEAD") else None)
    except (httpx.InvalidURL, UnicodeError):
        return  # not a request a client can send
    for seen in prefect.seen[before:]:
        assert _allowed_by_table(seen["method"], seen["path"]), (method, path, seen["method"], seen["path"])
        assert "%" not in seen["path"]
    if decide(method, path).kind != "deny":
        assert _allowed_by_table(method, path), (method, path)


@pytest.fixture
def gw_session(gw, prefect):
    sign_in(gw, "sofia")
    return gw, prefect, csrf_headers(gw)


def test_the_readme_lists_the_gateways_table_as_it_is():
    from dealflow.gateway_policy import readme_rows
    from services.config import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    for row in readme_rows():
        assert row in readme, row


# --- the command line through the door ----------------------------------------------------------------

@pytest.mark.flow
def test_the_command_line_signs_in_at_the_gateway_and_answers_through_it(prefect_api, new_deal):
    """A person with no database and no Prefect credential: `dealflow login --gateway`, then
    `inbox`, `answer` and `deal show` through the gateway, which names and seals the answer."""
    import threading
    import time

    import uvicorn
    from click.testing import CliRunner
    from prefect.settings import PREFECT_API_URL

    from dealflow.cli import main

    from .helpers import run_deal_with, wait_for_run
    from .smtp_server import free_port

    port = free_port()
    app = gateway.create_app(gateway.GatewayConfig(upstream=PREFECT_API_URL.value().removesuffix("/api"),
                                                   credential=None))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    said: dict[str, tuple[int, str, str]] = {}

    def cli(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args))
        return result.exit_code, result.stdout, result.stderr

    def person() -> None:
        wait_for_run(new_deal, "qualify")
        said["wrong"] = cli("login", "sofia", "--gateway", url, "--code", TEAM.wrong_code("sofia"))
        said["login"] = cli("login", "sofia", "--gateway", url, "--code", code_of("sofia"))
        said["inbox"] = cli("inbox", "--json")
        # a laptop signed in at the gateway: its commands read no database and start no Prefect client
        from .test_cli import _imported_by

        said["imported"] = {" ".join(argv): _imported_by(*argv) & {"sqlalchemy", "prefect", "pandas", "pydantic"}
                            for argv in (["inbox"], ["deal", "show", new_deal, "--history"])}
        said["as mark"] = cli("answer", new_deal, "qualify", "--by", "mark", "--set", "qualified=false")
        said["answer"] = cli("answer", new_deal, "qualify", "--set", "qualified=false", "--set", "notes=no budget")
        said["show"] = cli("deal", "show", new_deal, "--json")
        said["logout"] = cli("logout")
        said["after"] = cli("inbox")

    try:
        result = run_deal_with(new_deal, person)
    finally:
        server.should_exit = True
    assert result["status"] == "lost"
    assert said["wrong"] == (2, "", f"error: {gateway.SIGN_IN_REFUSED}\n")
    assert said["login"][0] == 0 and said["login"][1].startswith(f"signed in at {url} as sofia until ")
    assert [(r["deal"], r["step"]) for r in json.loads(said["inbox"][1])] == [(new_deal, "qualify")]
    assert said["imported"] == {"inbox": set(), f"deal show {new_deal} --history": set()}
    assert said["as mark"] == (2, "", f"error: by: you are signed in at {url} as sofia; `dealflow logout` to "
                                      f"answer as someone else\n")
    assert said["answer"] == (0, "qualify: answered by sofia\n", "")
    assert json.loads(said["show"][1])["status"] == "lost"
    assert said["logout"] == (0, f"signed out at {url} (sofia)\n", "")
    assert said["after"][0] == 0 and "DEAL" not in said["after"][1]  # this machine's database again: nothing waits
    with session_scope() as s:
        from models.deal import deal_by_number

        wait = next(w for w in deal_by_number(s, new_deal).waits if w.key == "qualify")
        assert (wait.answered_by, wait.proof) == ("sofia", identity.BY_GATEWAY)
        logins = [e.details["door"] for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "staff.login"))]
        assert logins == ["command line via gateway"]


def test_the_uis_settings_are_its_own_part_only(gw, prefect):
    sign_in(gw, "sofia")
    got = gw.get("/api/admin/settings")
    assert got.status_code == 200
    assert got.json() == {"ui_url": ORIGIN, "server": {"ui": {"enabled": True, "api_url": f"{ORIGIN}/api"}}}
