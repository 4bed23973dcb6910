"""Test fixtures: a clean business database per test (SQLite file, or the PostgreSQL named by
DEALFLOW_TEST_DATABASE_URL), settings pointed at a temporary data folder, and one real Prefect
API (prefect_test_harness) for the whole session, started only by tests that run flows."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

import dealflow  # noqa: F401  (its settings for Prefect are made before Prefect is imported)
from models import Base, DocumentSequence, process, seed
from models.numbering import PREFIXES
from models.pipeline import add_lead
from services import keys
from services.db import engine_for, migrate, session_scope

PG_URL = os.environ.get("DEALFLOW_TEST_DATABASE_URL")
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, … when the tests run in parallel (pytest -n N)
if PG_URL and WORKER:  # each worker truncates its tables per test: its own database beside the one named
    _server, _, _name = PG_URL.rpartition("/")
    _name, _q, _query = _name.partition("?")
    PG_URL = f"{_server}/{_name}_{WORKER}{_q}{_query}"
# One secret key for the test session (the seeded staff's code secrets are encrypted with it);
# tests of the key file itself unset it.
os.environ["DEALFLOW_SECRET_KEY"] = Fernet.generate_key().decode()
os.environ.pop("DEALFLOW_SECRET_KEY_BLOCK", None)
os.environ.pop("DEALFLOW_ANSWER_CODES", None)


def _create_database(url: str) -> None:
    """The scratch database a parallel worker uses, made on the same server if it is not there."""
    server, _, name = url.split("?", 1)[0].rpartition("/")
    with engine_for(server + "/postgres").execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            conn.execute(text(f'CREATE DATABASE "{name}"'))


def pytest_collection_modifyitems(config, items):
    """DEALFLOW_DATABASE_TESTS_ONLY=1 (CI's second pass, on PostgreSQL): only the tests that use
    the database; the others (static checks, pure rules, Prefect's contract) ran in the first pass
    and would run the same again."""
    if not os.environ.get("DEALFLOW_DATABASE_TESTS_ONLY"):
        return
    uses = [i for i in items if {"db", "_template"} & set(getattr(i, "fixturenames", ()))]
    if len(uses) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in uses])
        items[:] = uses


@pytest.fixture(scope="session")
def _template(tmp_path_factory) -> str:
    """A migrated, seeded database: a SQLite file to copy, or the PostgreSQL schema made once."""
    if PG_URL:
        if WORKER:
            _create_database(PG_URL)
        engine = engine_for(PG_URL)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        migrate(PG_URL)
        return PG_URL
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    migrate(url)
    with session_scope(url) as s:
        seed.load(s, keys.cipher())
        s.commit()
    engine_for(url).dispose()
    return str(path)


RESTART_SEQUENCES = """SELECT setval(seq, 1, false) FROM (
    SELECT pg_get_serial_sequence(quote_ident(table_name), column_name) AS seq FROM information_schema.columns
    WHERE table_schema = current_schema() AND column_default LIKE 'nextval%') AS sequences"""


@pytest.fixture
def db(_template, tmp_path, monkeypatch) -> Iterator[str]:
    """A clean, seeded database for one test; DATABASE_URL and DEALFLOW_DATA_DIR point at it."""
    if PG_URL:
        engine = engine_for(PG_URL)
        # DELETE, children first, and the id sequences set back: a test leaves a few rows, and
        # TRUNCATE of every table (new files for each table and index) took ~1 s a test
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
            conn.execute(text(RESTART_SEQUENCES))
        with session_scope(PG_URL) as s:  # as the migrations leave a new database
            s.add_all(DocumentSequence(doc_type=t, last_value=0) for t in PREFIXES)
            seed.load(s, keys.cipher())
            s.commit()
        url = PG_URL
    else:
        path = tmp_path / "dealflow.db"
        shutil.copy(_template, path)
        url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DEALFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DEALFLOW_CONFIG_DIR", str(tmp_path / "config"))  # `dealflow login`'s session file
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD", "SMTP_PASSWORD_SECRET_BLOCK"):
        monkeypatch.delenv(name, raising=False)
    yield url
    if not PG_URL:
        engine_for(url).dispose()


@pytest.fixture
def data_dir(db) -> Path:
    return Path(os.environ["DEALFLOW_DATA_DIR"])


@pytest.fixture
def new_deal(db) -> str:
    """A deal started for the Glocial scenario's lead; returns its number."""
    from dealflow.scenario import LEAD

    with session_scope() as s:
        lead = add_lead(s, **LEAD)
        deal = process.start_deal(s, lead.id, by="sofia")
        s.commit()
        return deal.number


@pytest.fixture
def won_deal(new_deal) -> str:
    """The scenario's deal played to won: 3 lathes (serialized), 2 tool kits, 2 chucks shipped,
    invoiced and paid (what returns, claims and their reports start from)."""
    from application import deals
    from dealflow.scenario import play_direct

    play_direct(new_deal)
    assert deals.deal_summary(new_deal)["status"] == "won"
    return new_deal


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect API (temporary server on SQLite) for the whole test session."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


SMTP_PASSWORD = "s3cr3t-Pw-7Zq9x"  # a value to look for where it must never appear


@pytest.fixture
def smtp(db, monkeypatch):
    """A real SMTP server on loopback (aiosmtpd) with login, and dealflow's settings pointing at it."""
    from .smtp_server import Recorder, start

    recorder = Recorder(user="sales@glocial.example", password=SMTP_PASSWORD)
    controller = start(recorder)
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(controller.port))
    monkeypatch.setenv("SMTP_SECURITY", "none")
    monkeypatch.setenv("SMTP_USER", recorder.user)
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    yield recorder
    controller.stop()


@pytest.fixture
def portal(db, monkeypatch):
    """The customer portal on loopback (a thread of the test), and the links in mail pointing at it."""
    from dealflow.portal import PortalThread
    from services.config import load_settings

    with PortalThread(load_settings()) as server:
        monkeypatch.setenv("DEALFLOW_PUBLIC_URL", server.url)
        yield server
