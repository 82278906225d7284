"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file, tuned for one host.

Messages persist on disk, so a job queued while `condarchive serve` is down is still
there when it starts again (and the database sweeper re-sends any that are not).
kombu passes every transport option to ``create_engine``, which rejects
``polling_interval``; this transport sets the interval on the class instead and gives
SQLite a generous busy timeout, since the API and the worker write from two processes,
and survives their first use of the broker file at the same moment.
"""

from __future__ import annotations

import time

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import create_engine, event
from sqlalchemy.exc import IntegrityError, OperationalError

ALIAS = "condarchive-sqlite"
RETRIES = 5


def _first_use_race(exc: OperationalError) -> bool:
    """Errors of several processes opening or writing the broker file at once, which
    trying again after a moment gets past."""
    message = str(exc)
    return "already exists" in message or "database is locked" in message


def _busy_timeout(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Channel(kombu_sqla.Channel):
    def _engine_from_config(self):  # type: ignore[no-untyped-def]
        engine = create_engine(self.connection.client.hostname, connect_args={"timeout": 30})
        event.listen(engine, "connect", _busy_timeout)
        return engine

    def _open(self):  # type: ignore[no-untyped-def]
        """kombu creates its tables on first use in each process. When the API and the
        worker both do so at once (the first POST while the worker starts), one CREATE
        TABLE fails with "already exists" and that job's message is lost; the tables are
        there by then, so trying again (create_all skips existing tables) succeeds."""
        for attempt in range(RETRIES):
            try:
                return super()._open()
            except OperationalError as exc:
                if not _first_use_race(exc) or attempt == RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _put(self, queue, payload, **kwargs):  # type: ignore[no-untyped-def]
        """SQLite can refuse a write with "database is locked" without waiting out the busy
        timeout (a fresh file switching to WAL while others open it, or a read snapshot
        that went stale); kombu has rolled the message back by then, so store it again."""
        for attempt in range(RETRIES):
            try:
                return super()._put(queue, payload, **kwargs)
            except OperationalError as exc:
                if not _first_use_race(exc) or attempt == RETRIES - 1:
                    raise
                self.session.rollback()
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_or_create(self, queue):  # type: ignore[no-untyped-def]
        """The same race for the queue's row: the second process to INSERT the queue name
        breaks its unique constraint. The row exists then, so roll back and read it."""
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            self.session.rollback()
            return super()._get_or_create(queue)


class Transport(kombu_sqla.Transport):
    Channel = Channel
    polling_interval = 0.1


TRANSPORT_ALIASES[ALIAS] = "app.queue.broker:Transport"
