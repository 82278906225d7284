"""The PyPI part in distributed mode: a real Celery worker process resolves it with uv,
and Postgres stores and serves it (the JSON columns, the content-addressed rows)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, start_service, stop_service
from tests.support.pypi_world import PyPIWorld
from tests.support.service import Service, wait_for_solve

pytestmark = [pytest.mark.distributed, pytest.mark.process]


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, world: PyPIWorld, postgres_url: str
) -> Iterator[Service]:
    service = start_service(
        tmp_path_factory.mktemp("pypi-distributed"),
        world.channels.url,
        no_worker=True,
        database_url=postgres_url,
        broker_url=REDIS_URL,
        auth="none",
        archive="off",
        **world.settings(),
    )
    service.add_worker()
    yield service
    stop_service(service)


def test_pip_section_locked_by_a_real_worker_on_postgres(
    service: Service, world: PyPIWorld, tmp_path: Path
) -> None:
    with httpx.Client(base_url=service.url, timeout=30) as http:
        environment = world.environment("fast-thing", "-e .", conda=("python=3.12",))
        body = {"environment": environment, "targets": ["linux-64", "win-64"]}
        response = http.post("/api/v1/solves", json=body)
        assert response.status_code == 202, response.text
        job = wait_for_solve(http, response.json()["id"], timeout=120)
        assert job["status"] == "succeeded", job.get("error")
        lock = http.get(f"/api/v1/locks/{job['lock_id']}").json()
        linux = {p["name"]: p for p in lock["targets"]["linux-64"]["pypi_packages"]}
        windows = {p["name"]: p for p in lock["targets"]["win-64"]["pypi_packages"]}
        assert linux["fast-thing"]["filename"].endswith("manylinux2014_x86_64.whl")
        assert windows["fast-thing"]["filename"].endswith("win_amd64.whl")
        assert lock["targets"]["win-64"]["pypi_local"] == ["-e ."]
        # the same request again: deduped to the same job and lock
        again = http.post("/api/v1/solves", json=body)
        assert again.status_code == 200 and again.json()["lock_id"] == job["lock_id"]
