"""Fixtures: a real conda channel over HTTP, and condarchive run as subprocesses."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.channel_server import ChannelServer
from tests.support.packages import build_channel
from tests.support.service import Service, base_env
from tests.support.testchan import testchan_packages

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REALDATA = SHARED / "realdata"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"

_active_services: list[Service] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for service in _active_services:
            report.sections.append(("condarchive logs", service.logs()[-8000:]))


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def require_services() -> None:
    """Distributed tests need Postgres and Redis; CI starts them, so there they must be up."""
    missing = [
        name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not _reachable(port)
    ]
    if missing:
        message = f"{' and '.join(missing)} not running on 127.0.0.1"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def channel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChannelServer]:
    root = tmp_path_factory.mktemp("channels")
    build_channel(root / "testchan", testchan_packages())
    with ChannelServer(root) as server:
        yield server


@pytest.fixture(scope="session")
def channel_url(channel_server: ChannelServer) -> str:
    return channel_server.channel_url("testchan")


def start_service(
    tmp_path: Path, allowed: str, no_worker: bool = False, **settings: str
) -> Service:
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = base_env(tmp_path / "data", allowed, **settings)
    service = Service(env, tmp_path, no_worker=no_worker).start()
    _active_services.append(service)
    return service


def stop_service(service: Service) -> None:
    service.stop()
    if service in _active_services:
        _active_services.remove(service)


@pytest.fixture(scope="session")
def embedded(
    tmp_path_factory: pytest.TempPathFactory, channel_server: ChannelServer
) -> Iterator[Service]:
    """One embedded `condarchive serve` (SQLite, local broker, worker alongside) for the session."""
    service = start_service(tmp_path_factory.mktemp("embedded"), channel_server.url)
    yield service
    stop_service(service)


@pytest.fixture
def client(embedded: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=embedded.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh Postgres database for the session, dropped afterwards."""
    require_services()
    import psycopg

    name = f"condarchive_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """An empty Postgres database for one test (no tables yet), dropped afterwards."""
    require_services()
    import psycopg

    name = f"condarchive_fresh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def distributed(
    tmp_path_factory: pytest.TempPathFactory, channel_server: ChannelServer, postgres_url: str
) -> Iterator[Service]:
    """`serve --no-worker` on Postgres + Redis, with one real `condarchive worker`."""
    service = start_service(
        tmp_path_factory.mktemp("distributed"),
        channel_server.url,
        no_worker=True,
        database_url=postgres_url,
        broker_url=REDIS_URL,
    )
    service.add_worker()
    yield service
    stop_service(service)
    import redis

    redis.Redis.from_url(REDIS_URL).delete(service.env["CONDARCHIVE_QUEUE"])


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real channel data not found at {REALDATA} (../shared/realdata is absent)")
    return REALDATA
