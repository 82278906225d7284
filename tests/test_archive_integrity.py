"""Only verified bytes enter the archive: mismatches are refused and reported, flaky upstreams
are retried with backoff, and a truncated download resumes with a Range request."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.archive import (
    archive_channel,
    blob_path,
    cli,
    lab_channel,
    lock,
    wait_archive,
    wait_worker_ready,
)
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec
from tests.support.service import Service, wait_for_solve

pytestmark = pytest.mark.process  # condarchive runs as real processes


def submit(client: httpx.Client, channel_url: str, dependencies: list[str]) -> dict:
    body = {"channels": [channel_url], "dependencies": dependencies, "targets": ["linux-64"]}
    response = client.post("/api/v1/solves", json=body)
    assert response.status_code in (200, 202), response.text
    return response.json()


@dataclass
class Lab:
    service: Service
    upstream: ChannelServer
    channel_dir: Path
    channel_url: str
    client: httpx.Client

    @property
    def data_dir(self) -> Path:
        return Path(self.service.env["CONDARCHIVE_DATA_DIR"])

    def path(self, filename: str) -> str:
        return f"/intlab/noarch/{filename}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("integrity-upstream")
    specs = [
        PackageSpec("goodpkg", "1.0", "0", 0, "noarch"),
        PackageSpec("badpkg", "1.0", "0", 0, "noarch", payload_size=50_000),
        PackageSpec("flakypkg", "1.0", "0", 0, "noarch", payload_size=50_000),
    ]
    big = [PackageSpec("droppkg", "1.0", "0", 0, "noarch", payload_size=500_000)]
    channel_dir = lab_channel(root / "intlab", specs, big)
    upstream = ChannelServer(root).start()
    service = start_service(
        tmp_path_factory.mktemp("integrity-service"),
        upstream.url,
        archive_attempts="4",
        archive_backoff="0.3",
    )
    wait_worker_ready(service)
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            yield Lab(service, upstream, channel_dir, upstream.channel_url("intlab"), client)
    finally:
        stop_service(service)
        upstream.stop()


def test_mismatched_bytes_are_refused_reported_and_never_served(lab: Lab) -> None:
    filename = "badpkg-1.0-0.conda"
    file = lab.channel_dir / "noarch" / filename
    good = file.read_bytes()
    # Upstream now serves other bytes than its repodata (and so the lock) records.
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    file.write_bytes(bad)
    bad_sha256 = hashlib.sha256(bad).hexdigest()
    try:
        lock_id = lock(lab.client, lab.channel_url, ["badpkg", "goodpkg"])
        status = wait_archive(lab.client, lock_id)
    finally:
        file.write_bytes(good)
    assert status["status"] == "failed", status
    packages = {p["name"]: p for p in status["targets"]["linux-64"]["packages"]}
    assert packages["goodpkg"]["state"] == "archived"
    failed = packages["badpkg"]
    assert failed["state"] == "failed" and failed["archive_url"] is None
    reason = failed["reason"]
    assert f"{lab.channel_url}/noarch/{filename}" in reason  # the URL
    assert f"sha256 expected {failed['sha256']} got {bad_sha256}" in reason  # both hashes
    assert "md5 expected" in reason
    assert lab.upstream.count(filename) == 4  # retried per policy (4 attempts)

    channel = archive_channel(status, lab.channel_url)
    listed = httpx.get(f"{channel}/noarch/repodata.json").json()["packages.conda"]
    assert filename not in listed and "goodpkg-1.0-0.conda" in listed
    assert httpx.get(f"{channel}/noarch/{filename}").status_code == 404
    assert not blob_path(lab.data_dir, bad_sha256).exists()
    assert not blob_path(lab.data_dir, failed["sha256"]).exists()
    assert not list((lab.data_dir / "blobs" / "tmp").glob("*.part"))

    # An explicit file of archive URLs is refused while a package is missing from it.
    explicit = lab.client.get(
        f"/l/{lock_id}/explicit/linux-64.txt",
        params={"source": "archive"},
        headers={"Accept": "application/json"},
    )
    assert explicit.status_code == 409 and filename in explicit.json()["detail"]

    # Restoring it from the archive is refused, with the reason.
    result = cli(
        lab.service, "install", lock_id, "--prefix", "/nonexistent", "--server", lab.service.url
    )
    assert result.returncode == 1
    assert f"not archived: {filename}: failed" in result.stderr

    # Upstream is fixed: asking again retries the failed file and completes the archive.
    response = lab.client.post(f"/api/v1/locks/{lock_id}/archive")
    assert response.status_code == 202
    status = wait_archive(lab.client, lock_id)
    assert status["status"] == "archived", status
    served = httpx.get(f"{channel}/noarch/{filename}")
    assert hashlib.sha256(served.content).hexdigest() == failed["sha256"]


def test_server_errors_are_retried_with_backoff(lab: Lab) -> None:
    filename = "flakypkg-1.0-0.conda"
    lab.upstream.faults[lab.path(filename)] = 503
    try:
        job = submit(lab.client, lab.channel_url, ["flakypkg"])
        # Let the archive meet the 503 twice, then let upstream recover.
        deadline = time.monotonic() + 60
        while lab.upstream.count(filename) < 2:
            assert time.monotonic() < deadline, "the archive never tried the file"
            time.sleep(0.05)
    finally:
        del lab.upstream.faults[lab.path(filename)]
    lock_id = wait_for_solve(lab.client, job["id"])["lock_id"]
    status = wait_archive(lab.client, lock_id)
    assert status["status"] == "archived", status
    package = status["targets"]["linux-64"]["packages"][0]
    assert package["attempts"] == 1  # one claim; the retries happened inside it
    assert lab.upstream.count(filename) >= 3


def test_truncated_download_resumes_with_range(lab: Lab) -> None:
    filename = "droppkg-1.0-0.conda"
    lab.upstream.cutoffs[lab.path(filename)] = 200_000
    lock_id = lock(lab.client, lab.channel_url, ["droppkg"])
    status = wait_archive(lab.client, lock_id)
    assert status["status"] == "archived", status
    assert (lab.path(filename), "bytes=200000-") in lab.upstream.ranges
    package = status["targets"]["linux-64"]["packages"][0]
    served = httpx.get(package["archive_url"])
    assert hashlib.sha256(served.content).hexdigest() == package["sha256"]
    assert lab.upstream.count(filename) == 2
