"""What dealflow relies on in Prefect beyond its documented API: one test per private or internal
name that ``services/orchestration`` uses (and the client calls, settings and server internals it
uses with particular arguments). When Prefect renames or changes one, its test fails naming it
and the module to change; no server is needed.

Each checks that the name is there, that it takes the parameters dealflow passes and, where that
is cheap, that it does what dealflow relies on."""

from __future__ import annotations

import importlib
import inspect
from uuid import uuid4

import pytest
from pydantic import Field

ADAPTER = "services/orchestration"


def prefect_name(dotted: str, used_in: str):
    """The object at ``dotted`` (``module.attr.attr``); fails saying which adapter module uses it."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                pytest.fail(f"Prefect has no {dotted} any more ({'.'.join(parts[:cut])} has no {attr!r}); "
                            f"{ADAPTER}/{used_in} relies on it")
            obj = getattr(obj, attr)
        return obj
    pytest.fail(f"Prefect has no module for {dotted}; {ADAPTER}/{used_in} relies on it")


def takes(fn, *names: str, used_in: str) -> None:
    """``fn`` accepts each of ``names`` as a parameter (by that name)."""
    params = inspect.signature(fn).parameters
    missing = [n for n in names if n not in params]
    assert not missing, (f"Prefect's {getattr(fn, '__qualname__', fn)} no longer takes {', '.join(missing)} "
                         f"(its signature is now {inspect.signature(fn)}); {ADAPTER}/{used_in} passes them")


# --- the forms (forms.py) ---------------------------------------------------------------------------

def test_create_v2_schema_builds_the_form_schema_with_its_properties():
    create_v2_schema = prefect_name("prefect._internal.pydantic.v2_schema.create_v2_schema", "forms.py")
    takes(create_v2_schema, "name_", "model_base", used_in="forms.py")
    from prefect.input import RunInput

    class QAForm(RunInput):
        passed: bool = Field(title="Passed")
        notes: str = ""

    schema = create_v2_schema("QAForm", model_base=QAForm)
    assert set(schema.get("properties", {})) == {"passed", "notes"}, \
        f"create_v2_schema no longer gives a form's fields as 'properties': {schema}"
    assert schema["properties"]["passed"]["title"] == "Passed"


def test_a_forms_description_is_run_inputs_private_description_stored_under_the_keysets_description_key(
        monkeypatch):
    """``forms.describe`` sets ``RunInput._description``; Prefect's own ``RunInput.save`` stores it
    under the keyset's "description" key, after the schema, and so does ``forms.save``."""
    import prefect.input.actions
    import prefect.input.run_input
    from prefect.input import RunInput
    from prefect.input.run_input import keyset_from_base_key

    from services.orchestration import forms

    assert "_description" in RunInput.__private_attributes__, \
        f"RunInput has no private _description any more; {ADAPTER}/forms.py sets it"
    stored: list[tuple[str, object]] = []

    def record(key, value, flow_run_id=None, sender=None):
        stored.append((key, value))

    class Form(RunInput):
        amount: int = 0

    forms.describe(Form, "**Pay** what is due")
    keyset = keyset_from_base_key("paused-payment-1")
    monkeypatch.setattr(prefect.input.run_input, "create_flow_run_input", record)
    Form.save(keyset, flow_run_id=uuid4())
    by_prefect, stored[:] = list(stored), []
    assert [k for k, _ in by_prefect] == ["paused-payment-1-schema", "paused-payment-1-description"], by_prefect
    assert by_prefect[1][1] == "**Pay** what is due", \
        f"Prefect no longer stores RunInput._description as the form's description: {by_prefect}"
    monkeypatch.setattr(prefect.input.actions, "create_flow_run_input", record)
    assert forms.save(Form, keyset, flow_run_id=uuid4()) == by_prefect[0][1]
    assert stored == by_prefect, "forms.save no longer stores a form as Prefect's RunInput.save does"


def test_keyset_from_base_key_names_the_three_parts_of_a_stored_form():
    keyset_from_base_key = prefect_name("prefect.input.run_input.keyset_from_base_key", "forms.py")
    assert keyset_from_base_key("suspended-qa-attempt-1") == {
        "description": "suspended-qa-attempt-1-description", "response": "suspended-qa-attempt-1-response",
        "schema": "suspended-qa-attempt-1-schema"}


def test_keyset_from_paused_state_is_the_state_name_and_the_pause_key():
    """``forms.stored_answer`` reads ``suspended-KEY-response`` or ``paused-KEY-response``."""
    keyset_from_paused_state = prefect_name("prefect.input.keyset_from_paused_state", "pausing.py")
    from prefect.states import Paused, Suspended

    assert keyset_from_paused_state(Paused(pause_key="qa-attempt-1"))["response"] == "paused-qa-attempt-1-response"
    assert keyset_from_paused_state(Suspended(pause_key="qa-attempt-1"))["schema"] == "suspended-qa-attempt-1-schema"


def test_read_and_create_flow_run_input_take_a_key_a_value_and_the_run():
    read = prefect_name("prefect.input.actions.read_flow_run_input", "forms.py")
    create = prefect_name("prefect.input.actions.create_flow_run_input", "forms.py")
    takes(read, "key", "flow_run_id", used_in="forms.py")
    takes(create, "key", "value", "flow_run_id", used_in="forms.py")


# --- waiting for a person (pausing.py) --------------------------------------------------------------

def test_propose_state_sync_takes_the_client_the_state_and_the_run():
    propose_state_sync = prefect_name("prefect.utilities.engine.propose_state_sync", "pausing.py")
    takes(propose_state_sync, "client", "state", "flow_run_id", used_in="pausing.py")


def test_a_paused_state_carries_its_key_timeout_and_a_keyset_to_fill_in():
    from prefect.states import Paused

    takes(Paused, "timeout_seconds", "reschedule", "pause_key", used_in="pausing.py")
    state = Paused(timeout_seconds=60, reschedule=False, pause_key="qualify")
    assert state.is_paused() and state.state_details.pause_key == "qualify"
    state.state_details.run_input_keyset = {"schema": "paused-qualify-schema"}
    assert state.state_details.run_input_keyset == {"schema": "paused-qualify-schema"}


def test_suspend_flow_run_takes_a_form_a_key_and_no_timeout_and_ends_the_run_with_pause():
    suspend_flow_run = prefect_name("prefect.flow_runs.suspend_flow_run", "pausing.py")
    takes(suspend_flow_run, "wait_for_input", "key", "timeout", used_in="pausing.py")
    # Pause and Abort are signals, not errors: the executor's `except Exception` lets them through
    for name in ("Pause", "Abort"):
        signal = prefect_name(f"prefect.exceptions.{name}", "pausing.py and worker.py")
        assert not issubclass(signal, Exception), f"prefect.exceptions.{name} is an Exception now"
    prefect_name("prefect.exceptions.FlowPauseTimeout", "pausing.py")


def test_the_flow_run_context_says_whether_the_run_came_from_a_deployment():
    FlowRunContext = prefect_name("prefect.context.FlowRunContext", "pausing.py")
    from prefect.client.schemas.objects import FlowRun

    assert FlowRunContext.get() is None  # outside a run
    assert "flow_run" in FlowRunContext.model_fields and "deployment_id" in FlowRun.model_fields


def test_a_run_input_form_loads_its_answer_by_keyset():
    from prefect.input import RunInput

    takes(RunInput.load, "keyset", used_in="pausing.py")
    takes(RunInput.save, "keyset", "flow_run_id", used_in="forms.py")


# --- the executor (worker.py) -----------------------------------------------------------------------

def test_run_flow_runs_a_given_flow_run_and_returns_its_state():
    run_flow = prefect_name("prefect.flow_engine.run_flow", "worker.py")
    takes(run_flow, "flow", "flow_run", "return_type", used_in="worker.py")
    assert "state" in str(inspect.signature(run_flow).parameters["return_type"].annotation)


def test_load_flow_from_entrypoint_takes_a_path_and_a_name():
    load = prefect_name("prefect.flows.load_flow_from_entrypoint", "worker.py")
    takes(load, "entrypoint", used_in="worker.py")


def test_the_workers_endpoint_for_due_runs_is_still_there_and_takes_a_time_and_a_limit():
    """The executor polls as a worker does, through the server's own route for workers."""
    from prefect.server.api import workers

    routes = {r.path: r for r in workers.router.routes}
    path = "/work_pools/{name}/get_scheduled_flow_runs"
    assert path in routes and "POST" in routes[path].methods, \
        f"Prefect's server has no POST {path} any more; {ADAPTER}/worker.py polls it"
    takes(routes[path].endpoint, "scheduled_before", "limit", used_in="worker.py")
    response = prefect_name("prefect.client.schemas.responses.WorkerFlowRunResponse", "worker.py")
    assert "flow_run" in response.model_fields and callable(response.model_validate_list)


def test_the_sync_clients_calls_take_what_the_adapter_passes():
    from prefect.client.orchestration import SyncPrefectClient

    calls = {
        "request": ("method", "path", "path_params"),  # worker.py, with json= (httpx's)
        "send_worker_heartbeat": ("work_pool_name", "worker_name", "heartbeat_interval_seconds"),
        "read_flow_run": ("flow_run_id",),
        "set_flow_run_state": ("flow_run_id", "state", "force"),
        "update_flow_run": ("flow_run_id", "infrastructure_pid", "tags"),
        "read_deployment": ("deployment_id",),
        "read_deployment_by_name": ("name",),
        "read_flow_runs": ("flow_run_filter", "work_pool_filter", "limit", "offset"),
        "read_flow_run_input": ("flow_run_id", "key"),
        "create_flow_run_input": ("flow_run_id", "key", "value"),
        "delete_flow_run_input": ("flow_run_id", "key"),
        "resume_flow_run": ("flow_run_id", "run_input"),
        "update_artifact": ("artifact_id", "artifact"),
    }
    for name, params in calls.items():
        assert hasattr(SyncPrefectClient, name), f"Prefect's sync client has no {name} any more"
        takes(getattr(SyncPrefectClient, name), *params, used_in="(the module that calls it)")
    from prefect.client.orchestration._artifacts.client import ArtifactCollectionReadParams

    assert {"artifact_filter", "limit"} <= set(ArtifactCollectionReadParams.__annotations__), \
        f"read_latest_artifacts no longer takes artifact_filter and limit; {ADAPTER}/artifacts.py passes them"
    from prefect.client.schemas.responses import SetStateStatus

    assert {"ACCEPT", "ABORT"} <= set(SetStateStatus.__members__)


def test_run_deployment_starts_a_run_without_waiting_with_tags_and_an_idempotency_key():
    run_deployment = prefect_name("prefect.deployments.run_deployment", "deployments.py")
    takes(run_deployment, "parameters", "timeout", "tags", "idempotency_key", used_in="deployments.py")


# --- how flows run (engine.py) ----------------------------------------------------------------------

def test_the_engine_settings_turn_the_flow_heartbeat_off_unless_it_was_set(monkeypatch):
    """``engine_settings`` copies the current settings with ``flows.heartbeat_frequency`` unset."""
    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", raising=False)
    from prefect.context import get_settings_context
    from prefect.settings import get_current_settings

    from services.orchestration.engine import engine_settings

    assert "heartbeat_frequency" in type(get_settings_context().settings.flows).model_fields
    with engine_settings():
        assert get_current_settings().flows.heartbeat_frequency is None


def test_the_names_flows_and_tasks_take_from_the_engine_are_there():
    for dotted in ("prefect.cache_policies.NO_CACHE", "prefect.get_run_logger", "prefect.Task",
                   "prefect.states.Completed", "prefect.states.Failed", "prefect.states.State",
                   "prefect.runtime.flow_run.id", "prefect.runtime.flow_run.parameters",
                   "prefect.runtime.flow_run.tags"):
        prefect_name(dotted, "engine.py")


# --- the server (server.py, api.py) ------------------------------------------------------------------

def test_prefect_server_start_builds_its_app_with_create_app_looked_up_when_it_starts():
    """``serve_prefect`` replaces ``create_app`` before ``prefect server start`` runs: it works only
    while the command looks the function up by name when it builds the app."""
    prefect_name("prefect.server.api.server.create_app", "server.py")
    run_in_foreground = prefect_name("prefect.cli._server_utils._run_in_foreground", "server.py")
    assert "import create_app" in inspect.getsource(run_in_foreground)
    assert callable(prefect_name("prefect.cli.app", "server.py"))


def test_prefects_sqlite_transactions_begin_with_a_with_for_update_switch():
    """The patch that makes a resume take SQLite's write lock first (its effect: tests/test_stack.py)."""
    configuration = prefect_name("prefect.server.database.configurations.AioSqliteConfiguration", "server.py")
    takes(configuration.begin_transaction, "session", "with_for_update", used_in="server.py")


def test_the_temporary_server_says_whether_it_runs_its_address_and_its_process():
    server_class = prefect_name("prefect.server.api.server.SubprocessASGIServer", "api.py")
    assert callable(server_class.start)
    server = object.__new__(server_class)  # not the shared instance: nothing is started
    server_class.__init__(server)
    assert server.running is False and server.server_process is None
    assert isinstance(inspect.getattr_static(server_class, "api_url"), property)


# Every Prefect setting dealflow sets or reads by its environment variable: the server's tuning,
# what `up` gives the processes it starts, what the demo and `dealflow/__init__.py` default.
SETTINGS = {
    "PREFECT_API_URL": "http://127.0.0.1:4999/api",
    "PREFECT_API_AUTH_STRING": "u:p",
    "PREFECT_API_SSL_CERT_FILE": "/tmp/ca.pem",
    "PREFECT_HOME": "/tmp/prefect-home",
    "PREFECT_PROFILES_PATH": "/tmp/profiles.toml",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_API_AUTH_STRING": "u:p",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u@127.0.0.1/prefect",
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
}


def _as_set(got: object) -> str:
    """A setting's value as its environment variable says it."""
    from datetime import timedelta

    got = got.get_secret_value() if hasattr(got, "get_secret_value") else got
    if isinstance(got, bool):
        return str(got).lower()
    if isinstance(got, set | frozenset):  # a comma-separated list
        return ",".join(sorted(got))
    if isinstance(got, timedelta):
        got = got.total_seconds()
    if isinstance(got, float) and got.is_integer():
        got = int(got)
    return str(got)


def test_every_setting_dealflow_sets_is_a_prefect_setting_that_takes_its_value(monkeypatch):
    import prefect.settings
    from prefect.settings import Settings

    from services.orchestration.server import SERVER_TUNING

    wanted = {**SETTINGS, **SERVER_TUNING}
    for name, value in wanted.items():
        if not hasattr(prefect.settings, name):
            pytest.fail(f"{name} is not a Prefect setting any more; dealflow sets it")
        monkeypatch.setenv(name, value)
    settings = Settings()
    for name, value in wanted.items():
        got = _as_set(getattr(prefect.settings, name).value_from(settings))
        assert got == value, f"{name}={value} reaches Prefect as {got!r}"


def test_the_pinned_job_template_configures_only_what_the_process_worker_knows():
    from prefect.workers.process import ProcessWorker

    from services.orchestration.server import PINNED_JOB_TEMPLATE

    default = ProcessWorker.get_default_base_job_template()
    assert set(PINNED_JOB_TEMPLATE["job_configuration"]) == set(default["job_configuration"]), \
        f"the process worker's job configuration is now {sorted(default['job_configuration'])}"
    assert set(PINNED_JOB_TEMPLATE["variables"]["properties"]) <= set(default["variables"]["properties"])
