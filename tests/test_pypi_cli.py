"""`condarchive lock` with a PyPI part, as a user runs it: a subprocess against a served
embedded service (a file's pip: list, or --spec with --pip), with citation metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.pypi_world import PyPIWorld
from tests.support.service import Service

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, world: PyPIWorld) -> Iterator[Service]:
    service = start_service(
        tmp_path_factory.mktemp("pypi-cli-service"), world.channels.url, **world.settings()
    )
    yield service
    stop_service(service)


def condarchive(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args, "--server", service.url],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=180,
    )


def test_lock_a_file_with_a_pip_section(served: Service, world: PyPIWorld, tmp_path: Path) -> None:
    environment = tmp_path / "environment.yml"
    environment.write_text(world.environment("pure-dep==1.0", "-e ."))
    result = condarchive(served, "lock", str(environment), "-t", "linux-64")
    assert result.returncode == 0, result.stderr
    lock_id = result.stdout.split()[0]
    lock = httpx.get(f"{served.url}/api/v1/locks/{lock_id}").json()
    assert [p["name"] for p in lock["targets"]["linux-64"]["pypi_packages"]] == ["pure-dep"]
    assert lock["targets"]["linux-64"]["pypi_local"] == ["-e ."]


def test_lock_specs_with_pip_lines_and_citation(served: Service, world: PyPIWorld) -> None:
    result = condarchive(
        served,
        "lock",
        "--spec",
        "python=3.12",
        "-c",
        world.channel_url,
        "--pip",
        "fast-thing",
        "-t",
        "osx-arm64",
        "--title",
        "Fast things on a Mac",
        "--author",
        "Ada Lovelace",
    )
    assert result.returncode == 0, result.stderr
    lock_id = result.stdout.split()[0]
    packages = httpx.get(f"{served.url}/api/v1/locks/{lock_id}").json()["targets"]["osx-arm64"]
    assert {p["name"] for p in packages["pypi_packages"]} == {"fast-thing", "pure-dep"}
    requests = httpx.get(f"{served.url}/api/v1/locks/{lock_id}/requests").json()
    metadata = requests["items"][0]["submitted"]["metadata"]
    assert metadata["title"] == "Fast things on a Mac"
    assert metadata["authors"] == ["Ada Lovelace"]


def test_unsatisfiable_pip_line_exits_1_and_a_refused_one_2(
    served: Service, world: PyPIWorld
) -> None:
    base = ["lock", "--spec", "python=3.12", "-c", world.channel_url, "-t", "linux-64"]
    failed = condarchive(served, *base, "--pip", "future-only")
    assert failed.returncode == 1, failed.stderr
    assert "future-only" in failed.stderr
    refused = condarchive(served, *base, "--pip=--pre")
    assert refused.returncode == 2, refused.stderr
    assert "--index-url" in refused.stderr
