"""Engines and sessions. A session belongs to one task or one CLI command, and rolls back
unless the caller commits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

import models

from .config import PROJECT_ROOT, load_settings


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    models.load_all()  # every mapped class known before the first session maps one
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" below decide
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):
            # SQLite ignores SELECT ... FOR UPDATE; taking the write lock at BEGIN makes a
            # read-then-write (stock, document numbers) serialise instead of interleave. A
            # connection that only reads (``read_only``) takes no lock: it reads beside a writer.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True)


READ_ONLY = "dealflow_read_only"


def read_only(url: str | None = None):
    """A connection for one read that never waits for a writer (on SQLite, no write lock), e.g.
    the company's details while a rendering caller holds a session of its own."""
    engine = engine_for(url) if url else current_engine()
    return engine.connect().execution_options(**{READ_ONLY: True})


def current_engine() -> Engine:
    return engine_for(load_settings().database_url)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    engine = engine_for(url) if url else current_engine()
    session = sessionmaker(engine, expire_on_commit=False)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def alembic_config(url: str | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.attributes["engine"] = engine_for(url) if url else current_engine()
    return cfg


def migrate(url: str | None = None) -> None:
    """Create or upgrade the schema to the newest Alembic revision."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
