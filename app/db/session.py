"""Engine and sessions. One engine per process, created from the settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import CursorResult, Engine, Executable, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the API read while the worker writes; busy_timeout waits instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, connect_timeout: int = 5) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # While Postgres is unreachable a request must fail fast (503), not hang: bound the
    # connect, and the wait for a pooled connection. pre_ping replaces connections the
    # server dropped, so the service recovers without a restart when it is back.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=connect_timeout * 2,
        connect_args={"connect_timeout": connect_timeout},
    )


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    if settings.embedded:
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.resolved_database_url, settings.db_connect_timeout)


@lru_cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def reset_engine() -> None:
    """Dispose of the engine and forget it, so the next use builds one from the settings
    as they are now (the in-process tests switch data directories between services)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _session_factory.cache_clear()


@contextmanager
def _committed(session: Session) -> Iterator[Session]:
    """Commit `session` on success, roll it back on error, close it either way."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with _committed(_session_factory()()) as session:
        yield session


@contextmanager
def pinned_session_scope() -> Iterator[Session]:
    """Like :func:`session_scope`, on one connection for the whole scope.

    A plain session hands its connection back to the pool at every commit, and the next
    statement checks one out again, pinging the server first (``pool_pre_ping``). A
    worker's task commits three or four times (claim, progress, result), so it holds
    one connection instead: one ping per task. A dropped connection still fails the
    task, and the pool replaces it at the next checkout.
    """
    with (
        get_engine().connect() as connection,
        _committed(_session_factory()(bind=connection)) as session,
    ):
        yield session


def get_session() -> Iterator[Session]:
    """FastAPI dependency."""
    with session_scope() as session:
        yield session


def write_committed(session: Session, statement: Executable) -> CursorResult[Any]:
    """Execute a write through Core on the session's connection, then COMMIT.

    An ORM-enabled UPDATE first brings every object of that class the session holds up
    to date; a worker holding many (an archive run's entries, a claimed job) paid for it
    on every write. Objects the session holds are left as they were (sessions do not
    expire on commit): callers act only on what they query afresh.
    """
    result = session.connection().execute(statement)
    session.commit()
    return result


def insert_ignore(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT rows, skipping those that collide with a unique key: how write-once rows
    (locks, package files, archive entries) are written by racing writers."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Core, not the ORM's bulk INSERT: the ORM handles every row dict in Python first,
    # which adds up for a lock of hundreds of packages; Core sends them in one batched
    # statement. Flush first, as the ORM would, so rows these reference are written.
    session.flush()
    target = getattr(table, "__table__", table)
    session.connection().execute(insert(target).on_conflict_do_nothing(), rows)
