"""Fixtures: a real conda channel over HTTP, and condarchive in two tiers.

The in-process tier (`inprocess`, `api`) runs the app under TestClient in this process,
on SQLite in a temp dir, with tasks run inline: `make test-fast` runs only that tier.
The process tier (`embedded`, `client`, `distributed`, `start_service`) runs
`condarchive serve` and workers as subprocesses; its tests carry the `process` marker,
added here to every test that uses one of those fixtures, and checked when a service
starts, so a test that starts one without the marker fails instead of slowing the fast
tier down.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import service as service_module
from tests.support.channel_server import ChannelServer
from tests.support.inprocess import InProcessClient, InProcessService
from tests.support.packages import build_channel
from tests.support.pypi_world import PyPIWorld, pypi_world
from tests.support.service import (
    POSTGRES_ADMIN_URL,
    REDIS_URL,
    Service,
    base_env,
    missing_services,
)
from tests.support.testchan import testchan_packages

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REALDATA = SHARED / "realdata"

_active_services: list[Service] = []

#: Fixtures that start condarchive as real processes: a test using one is a `process` test.
PROCESS_FIXTURES = frozenset({"embedded", "client", "distributed"})
_running: pytest.Item | None = None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.process)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # type: ignore[no-untyped-def]
    global _running
    _running = item
    yield
    _running = None


def _only_in_process_tests(service: Service) -> None:
    """Refuse to start `condarchive serve` for a test not marked `process`."""
    if _running is not None and _running.get_closest_marker("process") is None:
        pytest.fail(
            f"{_running.nodeid} starts condarchive as a process but is not marked "
            "`process`: mark it (pytest.mark.process), or use the in-process fixtures",
            pytrace=False,
        )


service_module.start_hooks.append(_only_in_process_tests)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for service in _active_services:
            report.sections.append(("condarchive logs", service.logs()[-8000:]))


def require_services() -> None:
    """Distributed tests need Postgres and Redis; CI starts them, so there they must be up."""
    missing = missing_services()
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
def inprocess(
    tmp_path_factory: pytest.TempPathFactory, channel_server: ChannelServer
) -> Iterator[InProcessService]:
    """The session's in-process service (SQLite, tasks inline, archive off), the
    counterpart of `embedded`."""
    service = InProcessService(tmp_path_factory.mktemp("inprocess"), channel_server.url)
    yield service
    service.close()


@pytest.fixture(scope="session")
def api(inprocess: InProcessService) -> Iterator[InProcessClient]:
    """An HTTP client of the in-process service: the counterpart of `client`."""
    with inprocess.client() as http:
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


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyPIWorld]:
    """A conda channel with Python and a PyPI index beside it (tests/support/pypi_world.py),
    one per test module."""
    with pypi_world(tmp_path_factory.mktemp("pypi-world")) as world:
        yield world


@pytest.fixture(scope="module")
def pypi_api(
    tmp_path_factory: pytest.TempPathFactory, world: PyPIWorld
) -> Iterator[InProcessClient]:
    """An in-process service allowed to use `world`'s channel and index."""
    service = InProcessService(
        tmp_path_factory.mktemp("pypi-service"), world.channels.url, **world.settings()
    )
    with service.client() as http:
        yield http
    service.close()
