"""Helpers of the fault tests: a deployment of their own, slow channels, database reads.

Each fault test runs `serve --no-worker` on a Postgres database of its own and a
`redis-server` of its own, with short leases and a fast sweeper, so a killed worker's
job is taken back within seconds and nothing a test breaks reaches another test.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import _active_services, require_services, start_service, stop_service
from tests.support.channel_server import ChannelServer
from tests.support.redis_server import RedisServer
from tests.support.service import Process, Service

#: Seconds: short enough that a test sees a dead worker's job taken back quickly.
FAST = {"job_lease": "3", "sweep_interval": "0.5", "sweep_grace": "2", "db_connect_timeout": "2"}

T = TypeVar("T")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    require_services()  # Postgres is needed alongside; skip (or fail on CI) as the others do
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def fault_service(
    tmp_path: Path,
    upstream: ChannelServer,
    database_url: str,
    broker_url: str,
    workers: int = 0,
    **settings: str,
) -> Service:
    """A distributed service with FAST settings (overridable), and `workers` ready workers."""
    service = start_service(
        tmp_path / "service",
        upstream.url,
        no_worker=True,
        database_url=database_url,
        broker_url=broker_url,
        **{**FAST, **settings},
    )
    for _ in range(workers):
        ready_worker(service)
    return service


def ready_worker(service: Service) -> Process:
    worker = service.add_worker()
    service.wait_for_log(worker, " ready.")
    return worker


def finish(service: Service) -> None:
    stop_service(service)
    if service in _active_services:  # pragma: no cover - stop_service removes it
        _active_services.remove(service)


@contextmanager
def slow_channel(upstream: ChannelServer, delay: float) -> Iterator[tuple[str, str]]:
    """A fresh alias of the test channel (no worker has its repodata cached) whose every
    request waits `delay` seconds; yields (channel URL, delay key) so a test can lift
    the delay with ``del upstream.delays[key]``."""
    name = f"slow-{uuid.uuid4().hex[:8]}"
    (upstream.root / name).symlink_to(upstream.root / "testchan")
    key = f"/{name}/"
    upstream.delays[key] = delay
    try:
        yield upstream.channel_url(name), key
    finally:
        upstream.delays.pop(key, None)


def solve_body(channel: str, dependency: str = "numlib", target: str | None = None) -> dict:
    """A small solve; a unique target name makes a request no other test has made."""
    name = target or f"t-{uuid.uuid4().hex[:8]}"
    return {
        "channels": [channel],
        "dependencies": [dependency],
        "targets": [{"name": name, "platform": "linux-64"}],
    }


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(0.1)


def job_row(database_url: str, job_id: str) -> dict[str, Any]:
    """The job's row as the database has it (status, attempts, error, times)."""
    import psycopg
    from psycopg.rows import dict_row

    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, row_factory=dict_row) as db:
        row = db.execute(
            "SELECT id, status, attempts, error, lock_id, started_at, finished_at, heartbeat_at"
            " FROM solve_jobs WHERE id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None, f"job {job_id} is not in the database"
    return row


def running_on(service: Service, job_id: str) -> Process | None:
    """The worker whose log shows it received the job's message, if one has."""
    for worker in service.workers:
        if job_id in worker.log() and worker.popen and worker.popen.poll() is None:
            return worker
    return None


def post(http: httpx.Client, body: dict) -> str:
    response = http.post("/api/v1/solves", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def pause(process: Process) -> None:
    """SIGSTOP: the worker is alive but silent, as under a long GC pause or a frozen VM."""
    assert process.popen is not None
    os.killpg(process.popen.pid, signal.SIGSTOP)


def resume(process: Process) -> None:
    assert process.popen is not None
    os.killpg(process.popen.pid, signal.SIGCONT)
