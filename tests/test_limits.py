"""Limits: each is configurable, and hitting one answers 413, 422 or 429 naming the setting
and its value. The solve timeout has its own tests (tests/test_solves_api.py)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.auth.tokens import create_token
from app.db.session import session_scope
from tests.conftest import start_service, stop_service
from tests.support.channel_server import ChannelServer
from tests.support.inprocess import inprocess_service
from tests.support.service import ROOT, Service, wait_for_solve

KiB = 1024


TIGHT = {
    "auth": "token",
    "max_body_bytes": str(64 * KiB),
    "max_import_bytes": str(256 * KiB),
    "max_dependencies": "5",
    "max_targets": "2",
    "max_environment_bytes": "2048",
    "max_yaml_depth": "8",
    "max_jobs_per_token": "2",
}


@pytest.fixture(scope="module")
def tight(
    tmp_path_factory: pytest.TempPathFactory, channel_server: ChannelServer
) -> Iterator[Service]:
    """Small limits, tokens required, and no worker: accepted solves stay queued."""
    service = start_service(
        tmp_path_factory.mktemp("limits"), channel_server.url, no_worker=True, **TIGHT
    )
    yield service
    assert service.server_errors() == []
    stop_service(service)


def token_for(service: Service, scope: str = "solve") -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "token", "create", "--scope", scope, "--name",
         f"limits-{uuid.uuid4().hex[:8]}"],
        env=service.env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def http(
    tmp_path_factory: pytest.TempPathFactory, channel_server: ChannelServer
) -> Iterator[httpx.Client]:
    """The same small limits in process, with an admin token: every request here is
    refused before a solve would be queued."""
    workdir = tmp_path_factory.mktemp("limits-inprocess")
    with inprocess_service(workdir, channel_server.url, **TIGHT) as service:
        with session_scope() as session:
            token = create_token(session, f"limits-{uuid.uuid4().hex[:8]}", "admin")
        headers = {"Authorization": f"Bearer {token}"}
        with service.client(headers=headers) as client:
            yield client


def limit_422(response: httpx.Response, setting: str, value: int, loc: list[Any]) -> str:
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["type"] == "limit_exceeded"
    assert detail["ctx"] == {"setting": setting, "limit": value}
    assert detail["loc"] == loc
    assert setting in detail["msg"] and str(value) in detail["msg"]
    return detail["msg"]


def body(channel_url: str, dependencies: list[str], targets: list[Any] | None = None) -> dict:
    return {
        "channels": [channel_url],
        "dependencies": dependencies,
        "targets": targets or ["linux-64"],
    }


def test_body_size_declared(http: httpx.Client) -> None:
    response = http.post(
        "/api/v1/solves", content=b"{" + b" " * (80 * KiB) + b"}",
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 413, response.text
    assert response.json() == {
        "detail": f"the request body is {80 * KiB + 2} bytes; the limit is {64 * KiB} bytes "
        "(CONDARCHIVE_MAX_BODY_BYTES)",
        "limit": {"setting": "CONDARCHIVE_MAX_BODY_BYTES", "value": 64 * KiB},
    }


def test_body_size_streamed(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * (8 * KiB)

    response = http.post(
        "/api/v1/solves", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["limit"] == {"setting": "CONDARCHIVE_MAX_BODY_BYTES", "value": 64 * KiB}


def test_imports_have_their_own_body_limit(http: httpx.Client) -> None:
    """A lockfile is legitimately bigger than a solve request."""
    padding = "# " + "x" * (100 * KiB) + "\n"
    allowed = http.post("/api/v1/locks/import", json={"content": padding + "@EXPLICIT\n"})
    assert allowed.status_code == 422, allowed.text  # read, and refused for what it says
    over = http.post("/api/v1/locks/import", json={"content": padding * 3})
    assert over.status_code == 413, over.text
    assert over.json()["limit"] == {"setting": "CONDARCHIVE_MAX_IMPORT_BYTES", "value": 256 * KiB}


def test_number_of_dependencies(http: httpx.Client, channel_url: str) -> None:
    response = http.post("/api/v1/solves", json=body(channel_url, [f"p{i}" for i in range(6)]))
    message = limit_422(response, "CONDARCHIVE_MAX_DEPENDENCIES", 5, ["body", "dependencies"])
    assert message.startswith("6 dependencies; the limit is 5")
    environment = f"channels: [{channel_url}]\ndependencies: [a, b, c, d, e, f, g]\n"
    response = http.post("/api/v1/solves", json={"environment": environment})
    loc = ["body", "environment", "dependencies"]
    assert limit_422(response, "CONDARCHIVE_MAX_DEPENDENCIES", 5, loc).startswith("7 dep")


def test_number_of_targets(http: httpx.Client, channel_url: str) -> None:
    targets = ["linux-64", "osx-arm64", {"name": "gpu", "platform": "linux-64"}]
    response = http.post("/api/v1/solves", json=body(channel_url, ["libfoo"], targets))
    limit_422(response, "CONDARCHIVE_MAX_TARGETS", 2, ["body", "targets"])
    environment = (
        f"channels: [{channel_url}]\ndependencies: [libfoo]\n"
        "platforms: [linux-64, osx-arm64, win-64]\n"
    )
    response = http.post("/api/v1/solves", json={"environment": environment})
    limit_422(response, "CONDARCHIVE_MAX_TARGETS", 2, ["body", "targets"])


def test_environment_size_and_depth(http: httpx.Client, channel_url: str) -> None:
    environment = f"channels: [{channel_url}]\ndependencies: [libfoo]\n" + "#\n" * 1200
    response = http.post("/api/v1/solves", json={"environment": environment})
    message = limit_422(
        response, "CONDARCHIVE_MAX_ENVIRONMENT_BYTES", 2048, ["body", "environment"]
    )
    assert f"environment.yml is {len(environment)} bytes" in message
    nested = f"channels: [{channel_url}]\ndependencies: [libfoo]\nx: " + "[" * 9 + "]" * 9
    response = http.post("/api/v1/solves", json={"environment": nested})
    message = limit_422(response, "CONDARCHIVE_MAX_YAML_DEPTH", 8, ["body", "environment"])
    assert "nested deeper than 8 levels" in message and "line 3" in message


@pytest.mark.process
def test_concurrent_solves_per_token(tight: Service, channel_url: str) -> None:
    """Two solves queued (no worker runs them): a third is 429; an identical one joins its job;
    another token still gets its own."""
    token = token_for(tight)
    with httpx.Client(
        base_url=tight.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        first = http.post("/api/v1/solves", json=body(channel_url, ["libfoo"]))
        second = http.post("/api/v1/solves", json=body(channel_url, ["numlib"]))
        assert (first.status_code, second.status_code) == (202, 202), second.text
        third = http.post("/api/v1/solves", json=body(channel_url, ["pyutil"]))
        assert third.status_code == 429, third.text
        assert third.headers["retry-after"] == "10"
        assert third.json()["limit"] == {"setting": "CONDARCHIVE_MAX_JOBS_PER_TOKEN", "value": 2}
        assert "has 2 solves queued or running; the limit is 2" in third.json()["detail"]
        again = http.post("/api/v1/solves", json=body(channel_url, ["libfoo"]))
        assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    other = token_for(tight)
    accepted = httpx.post(
        f"{tight.url}/api/v1/solves",
        json=body(channel_url, ["pyutil"]),
        headers={"Authorization": f"Bearer {other}"},
    )
    assert accepted.status_code == 202, accepted.text


# --- archive bytes per lock ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_archive(
    tmp_path_factory: pytest.TempPathFactory, channel_server: ChannelServer
) -> Iterator[Service]:
    service = start_service(
        tmp_path_factory.mktemp("limits-archive"),
        channel_server.url,
        max_archive_bytes_per_lock="1000",
    )
    yield service
    assert service.server_errors() == []
    stop_service(service)


@pytest.mark.process
def test_archive_bytes_per_lock(small_archive: Service, channel_url: str) -> None:
    with httpx.Client(base_url=small_archive.url, timeout=30) as http:
        response = http.post("/api/v1/solves", json=body(channel_url, ["numlib>=1.26"]))
        job = wait_for_solve(http, response.json()["id"])
        assert job["status"] == "succeeded", job
        lock_id = job["lock_id"]
        lock = http.get(f"/api/v1/locks/{lock_id}").json()
        total = sum(p["size"] for p in lock["targets"]["linux-64"]["packages"])
        assert total > 1000
        # The automatic archive after the solve skipped it, and asking for it is refused.
        assert http.get(f"/api/v1/locks/{lock_id}/archive").json()["status"] == "not_requested"
        refused = http.post(f"/api/v1/locks/{lock_id}/archive")
        message = limit_422(
            refused, "CONDARCHIVE_MAX_ARCHIVE_BYTES_PER_LOCK", 1000, ["path", "lock_id"]
        )
        assert f"the lock's packages are {total} bytes" in message
    assert "not archiving lock" in small_archive.logs()
