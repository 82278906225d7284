"""Lock an environment with a `pip:` part, archive it, then take the PyPI index and the conda
channel down: pip still downloads the locked files from the archive's simple index with
--require-hashes, and `condarchive install` puts the PyPI packages into the prefix after
the conda part (the local `-e .` line named as not installed). A PyPI file the archive
cannot serve fails the whole install and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.archive import blob_path, cli, wait_archive, wait_worker_ready
from tests.support.pypi_world import PyPIWorld, pypi_world
from tests.support.service import Service, wait_for_solve

pytestmark = pytest.mark.process  # condarchive runs as real processes

TARGET = "linux-64"


@dataclass
class Offline:
    """A lock archived while upstream served it; upstream is down now."""

    service: Service
    world: PyPIWorld
    lock: dict[str, Any]
    status: dict[str, Any]

    @property
    def pypi_packages(self) -> list[dict[str, Any]]:
        return self.lock["targets"][TARGET]["pypi_packages"]


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Offline]:
    root = tmp_path_factory.mktemp("pypi-install")
    with pypi_world(root / "world") as world:
        service = start_service(root / "service", world.channels.url, **world.settings())
        try:
            wait_worker_ready(service)
            with httpx.Client(base_url=service.url, timeout=30) as client:
                body = {"environment": world.environment("fast-thing", "-e ."), "targets": [TARGET]}
                response = client.post("/api/v1/solves", json=body)
                assert response.status_code in (200, 202), response.text
                job = wait_for_solve(client, response.json()["id"], timeout=120)
                assert job["status"] == "succeeded", job
                lock = client.get(f"/api/v1/locks/{job['lock_id']}").json()
                status = wait_archive(client, lock["id"])
            # upstream is gone: only the archive can serve the environment now
            world.index.stop()
            world.channels.stop()
            yield Offline(service, world, lock, status)
        finally:
            stop_service(service)


def requirements(packages: list[dict[str, Any]]) -> str:
    return "".join(f"{p['name']}=={p['version']} --hash=sha256:{p['sha256']}\n" for p in packages)


def test_the_lock_and_its_pypi_files_are_archived(offline: Offline) -> None:
    assert offline.status["status"] == "archived", offline.status
    names = {p["name"] for p in offline.pypi_packages}
    assert names == {"fast-thing", "pure-dep"}
    assert offline.status["targets"][TARGET]["pypi"]["archived"] == 2


def test_pip_downloads_the_locked_files_from_the_archive_index(
    offline: Offline, tmp_path: Path
) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(requirements(offline.pypi_packages))
    dest = tmp_path / "downloaded"
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-cache-dir",
            "--no-deps",
            "--require-hashes",
            "--index-url",
            f"{offline.service.url}/pypi/simple/",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--platform",
            "manylinux2014_x86_64",
            "-d",
            str(dest),
            "-r",
            str(reqs),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.iterdir()}
    assert got == {p["filename"]: p["sha256"] for p in offline.pypi_packages}


def test_uv_installs_from_the_archive_index_with_hashes(offline: Offline, tmp_path: Path) -> None:
    from uv import find_uv_bin

    reqs = tmp_path / "requirements.txt"
    reqs.write_text(requirements(offline.pypi_packages))
    target = tmp_path / "site-packages"
    done = subprocess.run(
        [
            find_uv_bin(),
            "pip",
            "install",
            "--no-config",
            "--require-hashes",
            "--no-deps",
            "--index-url",
            f"{offline.service.url}/pypi/simple/",
            "--target",
            str(target),
            "--python",
            sys.executable,
            "--python-version",
            "3.12",
            "--python-platform",
            "x86_64-manylinux_2_17",
            "--cache-dir",
            str(tmp_path / "uv-cache"),
            "-r",
            str(reqs),
        ],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "fast_thing" / "__init__.py").is_file()
    assert (target / "pure_dep" / "__init__.py").is_file()


def test_condarchive_install_adds_the_pypi_part_after_the_conda_part(
    offline: Offline, tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    done = cli(offline.service, "install", offline.lock["id"], "-t", TARGET, "-p", str(prefix))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 PyPI packages" in done.stdout
    assert "not installed: local code: -e ." in done.stderr
    assert any(p.name.startswith("python-3.12.4") for p in (prefix / "conda-meta").iterdir())
    site = prefix / "lib" / "python3.12" / "site-packages"
    for package in offline.pypi_packages:
        module = package["name"].replace("-", "_")
        assert (site / module / "__init__.py").read_text() == (
            f'__version__ = "{package["version"]}"\n'
        )
        assert (site / f"{module}-{package['version']}.dist-info" / "RECORD").is_file()
    assert not (site / ".lock").exists()


def test_a_pypi_file_the_archive_cannot_serve_fails_the_install_and_leaves_nothing(
    offline: Offline, tmp_path: Path
) -> None:
    pure = next(p for p in offline.pypi_packages if p["name"] == "pure-dep")
    blob = blob_path(Path(offline.service.env["CONDARCHIVE_DATA_DIR"]), pure["sha256"])
    aside = blob.with_name(blob.name + ".aside")
    blob.rename(aside)
    try:
        prefix = tmp_path / "env"
        done = cli(offline.service, "install", offline.lock["id"], "-t", TARGET, "-p", str(prefix))
    finally:
        aside.rename(blob)
    assert done.returncode == 1, done.stdout + done.stderr
    assert pure["filename"] in done.stderr
    assert not prefix.exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory left either


def test_verify_covers_the_pypi_files(offline: Offline) -> None:
    done = cli(offline.service, "verify", "--fail-on-drift")
    # upstream is down: unreachable is not drift, and every blob re-hashes
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pypi: 2 archived files, 0 corrupt, 0 missing" in done.stdout
    assert "pypi upstream: 2 files checked, 0 removed, 0 changed, 0 yanked, 2 unreachable" in (
        done.stdout
    )
    assert f"unreachable: {offline.world.index.url}/fast-thing/" in done.stdout
