"""The unit of work of one use case: a session that is committed when the use case's block ends
normally and rolled back when it raises, so that a refused step leaves nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from services.db import session_scope


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One session for one use case (``services.db.session_scope``: closed, and anything not
    committed rolled back, whatever happens). A use case that reads only commits nothing."""
    with session_scope() as session:
        yield session
        session.commit()
