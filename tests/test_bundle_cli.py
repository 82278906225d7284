"""`condarchive bundle` and `condarchive install --bundle`, as a user runs them: download a
target's offline bundle from a served condarchive, stop every server, install it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.archive import wait_archive
from tests.support.pypi_world import PyPIWorld
from tests.support.service import Service, wait_for_solve

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.process


def condarchive(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, world: PyPIWorld) -> Iterator[Path]:
    """A bundle downloaded with `condarchive bundle` by a prefix of the lock id; every
    server (condarchive, the conda channel, the index) is stopped when it is handed over."""
    service: Service = start_service(
        tmp_path_factory.mktemp("bundle-cli-service"), world.channels.url, **world.settings()
    )
    out = tmp_path_factory.mktemp("bundle-out")
    try:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            environment = world.environment("fast-thing", "-e .", conda=("python=3.12",))
            body = {"environment": environment, "targets": ["linux-64"]}
            job = wait_for_solve(http, http.post("/api/v1/solves", json=body).json()["id"])
            assert job["status"] == "succeeded", job.get("error")
            assert wait_archive(http, job["lock_id"])["status"] == "archived"
        result = condarchive(
            "bundle", job["lock_id"][:12], "-t", "linux-64", "--server", service.url, cwd=out
        )
        assert result.returncode == 0, result.stderr
        (path,) = out.glob("*.tar")
        assert path.name == f"condarchive-{job['lock_id'][:12]}-linux-64.tar"
        refused = condarchive("bundle", job["lock_id"], "-t", "win-64", "--server", service.url)
        assert refused.returncode == 2 and "win-64" in refused.stderr
    finally:
        stop_service(service)
    world.channels.stop()
    world.index.stop()
    try:
        yield path
    finally:
        world.channels.start()
        world.index.start()


def test_install_from_the_bundle_with_no_server(bundle: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    result = condarchive("install", "--bundle", str(bundle), "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    assert "not installed: local code: -e ." in result.stdout + result.stderr
    names = {json.loads(p.read_text())["name"] for p in (prefix / "conda-meta").glob("*.json")}
    assert "python" in names
    site = prefix / "lib" / "python3.12" / "site-packages"
    assert any(site.glob("fast_thing-1.0.dist-info")), sorted(p.name for p in site.iterdir())
    assert any(site.glob("pure_dep-*.dist-info"))


def test_a_tampered_bundle_is_refused_and_leaves_nothing(bundle: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(bundle) as source, tarfile.open(tampered, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member)
            content = data.read() if data is not None else b""
            if member.name.endswith(".whl"):
                content = content[:-1] + bytes([content[-1] ^ 1])
            member.size = len(content)
            out.addfile(member, io.BytesIO(content))
    prefix = tmp_path / "env"
    result = condarchive("install", "--bundle", str(tampered), "--prefix", str(prefix))
    assert result.returncode == 2, result.stderr
    assert "is not the lock's" in result.stderr
    assert not prefix.exists()
