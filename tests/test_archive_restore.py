"""Lock, archive, then upstream deletes the files: the environment still installs, identically.

The upstream channel is this module's own (built in a temp dir, served over HTTP), so the
test can delete packages and re-index it the way a channel admin would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REALDATA, start_service, stop_service
from tests.support.archive import (
    archive_channel,
    blob_path,
    cli,
    lab_channel,
    lock,
    prefix_records,
    reindex,
    solve_and_install,
    wait_archive,
    wait_worker_ready,
)
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec
from tests.support.service import Service

pytestmark = pytest.mark.process  # condarchive runs as real processes

#: Real noarch packages (conda-build's test channel) that py-rattler can link.
REAL_CHANNEL = REALDATA / "conda+conda-build/tests/local-channel/noarch"
REAL_PACKAGES = ("lib-foo-1.0.0-0.conda", "pkg-small-executable-1.0.0-0.conda")
SPECS = ["labapp"]


@dataclass
class Removed:
    """The state after upstream removed the locked packages."""

    service: Service
    upstream: ChannelServer
    channel_url: str
    lock_id: str
    status: dict[str, Any]
    before: dict[str, dict[str, Any]]
    removed: list[str]
    real: bool


def _specs(real: bool) -> list[PackageSpec]:
    app_depends = ["lablib >=2", "labdata"] + (["lib-foo", "pkg-small-executable"] if real else [])
    return [
        PackageSpec("labapp", "1.0", "h0_0", 0, "linux-64", depends=app_depends),
        PackageSpec("lablib", "1.0", "h1_0", 0, "linux-64"),
        PackageSpec("lablib", "2.0", "h1_0", 0, "linux-64", fmt=".tar.bz2"),
        PackageSpec("labdata", "1.0", "0", 0, "noarch", payload_size=300_000),
    ]


@pytest.fixture(scope="module")
def removed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Removed]:
    # Real packages join the lab channel when ../shared/realdata is there; without it the
    # test still runs on built packages only (and test_real_packages_were_used skips).
    real = all((REAL_CHANNEL / name).is_file() for name in REAL_PACKAGES)
    root = tmp_path_factory.mktemp("restore-upstream")
    channel_dir = lab_channel(root / "labchan", _specs(real))
    if real:
        for name in REAL_PACKAGES:
            shutil.copy(REAL_CHANNEL / name, channel_dir / "noarch" / name)
        reindex(channel_dir)
    upstream = ChannelServer(root).start()
    service = start_service(tmp_path_factory.mktemp("restore-service"), upstream.url)
    wait_worker_ready(service)
    work = tmp_path_factory.mktemp("restore-work")
    try:
        channel_url = upstream.channel_url("labchan")
        with httpx.Client(base_url=service.url, timeout=30) as client:
            lock_id = lock(client, channel_url, SPECS)
            status = wait_archive(client, lock_id)
        # The install a user made while upstream still had everything.
        solve_and_install(channel_url, SPECS, work / "before", work / "cache-before")
        before = prefix_records(work / "before")
        # Upstream removes the packages the environment needs, and re-indexes.
        removed = ["linux-64/labapp-1.0-h0_0.conda", "linux-64/lablib-2.0-h1_0.tar.bz2"]
        if real:
            removed += [f"noarch/{name}" for name in REAL_PACKAGES]
        for name in removed:
            (channel_dir / name).unlink()
        reindex(channel_dir)
        yield Removed(service, upstream, channel_url, lock_id, status, before, removed, real)
    finally:
        stop_service(service)
        upstream.stop()


def test_every_locked_package_is_archived(removed: Removed) -> None:
    status = removed.status
    assert status["status"] == "archived", status
    target = status["targets"]["linux-64"]
    assert target["archived"] == target["total"] >= 4
    assert target["bytes_archived"] == target["bytes_total"]
    for package in target["packages"]:
        assert package["state"] == "archived", package
        assert package["blob_sha256"] == package["sha256"]
        assert package["archive_url"].startswith(f"{removed.service.url}/channels/")
    names = {p["name"] for p in target["packages"]}
    assert {"labapp", "lablib", "labdata"} <= names


def test_real_packages_were_used(removed: Removed) -> None:
    if not removed.real:
        pytest.skip(f"real packages not found under {REAL_CHANNEL}")
    names = {p["name"] for p in removed.status["targets"]["linux-64"]["packages"]}
    assert {"lib-foo", "pkg-small-executable"} <= names
    assert {"lib-foo", "pkg-small-executable"} <= set(removed.before)


def _listed(channel: str, subdir: str) -> dict[str, Any]:
    repodata = httpx.get(f"{channel}/{subdir}/repodata.json").json()
    return {**repodata["packages"], **repodata["packages.conda"]}


def test_upstream_really_removed_them(removed: Removed) -> None:
    for path in removed.removed:
        subdir, name = path.split("/")
        assert name not in _listed(removed.channel_url, subdir)
        assert httpx.get(f"{removed.channel_url}/{path}").status_code == 404


def test_condarchive_install_restores_the_environment(removed: Removed, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    result = cli(
        removed.service,
        "install",
        removed.lock_id,
        "--target",
        "linux-64",
        "--prefix",
        str(prefix),
        "--server",
        removed.service.url,
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stderr
    assert "from the archive" in result.stdout
    assert prefix_records(prefix) == removed.before
    # What the solve asked for labels conda-meta, as a conda install would (the lock holds
    # no specs; install reads them from the lock's requests).
    meta = next((prefix / "conda-meta").glob("labapp-*.json"))
    record = json.loads(meta.read_text())
    requested = record.get("requested_spec") or " ".join(record.get("requested_specs") or [])
    assert "labapp" in requested, record


def test_rattler_installs_from_the_archive_channel(removed: Removed, tmp_path: Path) -> None:
    channel = archive_channel(removed.status, removed.channel_url)
    prefix = tmp_path / "env"
    solve_and_install(channel, SPECS, prefix, tmp_path / "cache")
    assert prefix_records(prefix) == removed.before


def test_archive_channel_lists_what_upstream_removed(removed: Removed) -> None:
    channel = archive_channel(removed.status, removed.channel_url)
    listed = {**_listed(channel, "linux-64"), **_listed(channel, "noarch")}
    for path in removed.removed:
        assert path.split("/")[1] in listed
    locked = {p["filename"]: p for p in removed.status["targets"]["linux-64"]["packages"]}
    assert set(listed) == set(locked)
    for name, record in listed.items():
        assert record["sha256"] == locked[name]["sha256"]
        assert record["md5"] == locked[name]["md5"]
        assert record["size"] == locked[name]["size"]


def test_install_refuses_a_target_the_lock_lacks(removed: Removed, tmp_path: Path) -> None:
    result = cli(
        removed.service,
        "install",
        removed.lock_id,
        "--target",
        "win-64",
        "--prefix",
        str(tmp_path / "env"),
        "--server",
        removed.service.url,
    )
    assert result.returncode == 2
    assert "no target 'win-64'" in result.stderr


def test_verify_reports_removed_packages_and_corrupt_blobs(removed: Removed) -> None:
    result = cli(removed.service, "verify", "--fail-on-drift")
    assert result.returncode == 1, result.stdout + result.stderr
    for path in removed.removed:
        line = next(x for x in result.stdout.splitlines() if path in x)
        assert line.startswith("removed upstream:") and removed.lock_id in line
    assert "0 corrupt, 0 missing" in result.stdout
    assert cli(removed.service, "verify").returncode == 0  # drift alone is not corruption

    # Flip one byte of an archived blob: verify re-hashes it and reports it.
    package = next(
        p for p in removed.status["targets"]["linux-64"]["packages"] if p["name"] == "labdata"
    )
    path = blob_path(Path(removed.service.env["CONDARCHIVE_DATA_DIR"]), package["sha256"])
    original = path.read_bytes()
    try:
        path.chmod(0o644)
        path.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])
        result = cli(removed.service, "verify", "--no-upstream")
        assert result.returncode == 1
        assert f"corrupt: {package['sha256']}" in result.stdout
        report = httpx.get(f"{removed.service.url}/api/v1/archive/verify").json()
        assert report["summary"]["corrupt"] == 1
        assert report["blobs"]["corrupt"][0]["sha256"] == package["sha256"]
    finally:
        path.write_bytes(original)
    assert cli(removed.service, "verify", "--no-upstream").returncode == 0
