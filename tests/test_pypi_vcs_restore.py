"""The promise of archiving a `git+` requirement: once archived, the environment installs
with the repository, the PyPI index and the conda channel all gone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.archive import wait_archive
from tests.support.git_server import GitServer, make_project_repo
from tests.support.pypi_world import pypi_world
from tests.support.service import wait_for_solve

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(server URL, lock id, commit of v1.0), with the git server, the index and the
    channel stopped once the lock is archived."""
    root = tmp_path_factory.mktemp("vcs-restore")
    _, tags = make_project_repo(root / "git", "gitpkg", [("1.0", "v1.0")], requires=["pure-dep"])
    with pypi_world(root / "world") as world, GitServer(root / "git").serving() as git:
        service = start_service(
            root / "service", world.channels.url, **world.settings(), allowed_vcs=git.host
        )
        try:
            environment = world.environment(f"git+{git.repo_url('gitpkg')}@v1.0#egg=gitpkg")
            with httpx.Client(base_url=service.url, timeout=30) as http:
                body = {"environment": environment, "targets": ["linux-64"]}
                job = http.post("/api/v1/solves", json=body).json()
                job = wait_for_solve(http, job["id"], timeout=120)
                assert job["status"] == "succeeded", job.get("error")
                assert wait_archive(http, job["lock_id"])["status"] == "archived"
            git.stop()
            world.index.stop()
            world.channels.stop()
            yield service.url, job["lock_id"], tags["v1.0"]
        finally:
            stop_service(service)


def test_git_requirement_installs_after_the_repository_is_gone(
    archived: tuple[str, str, str], tmp_path: Path
) -> None:
    server, lock_id, commit = archived
    lock = httpx.get(f"{server}/api/v1/locks/{lock_id}").json()
    gitpkg = {p["name"]: p for p in lock["targets"]["linux-64"]["pypi_packages"]}["gitpkg"]
    assert gitpkg["kind"] == "vcs" and gitpkg["vcs"]["commit"] == commit
    prefix = tmp_path / "env"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "install", lock_id[:12], "--target", "linux-64",
         "--prefix", str(prefix), "--server", server],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    site = prefix / "lib" / "python3.12" / "site-packages"
    # built from the archived source archive by its in-tree backend, nothing fetched
    assert (site / "gitpkg" / "__init__.py").is_file()
    assert "Version: 1.0" in (site / "gitpkg-1.0.dist-info" / "METADATA").read_text()
    assert any(site.glob("pure_dep-*.dist-info"))
