"""Archiving with real, separate workers: killed halfway, and two at once.

Both behaviours rest on the database (leases on archive entries) and the blob store (write
once, by rename after verification), so they run on SQLite with the embedded broker and on
Postgres with Redis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, require_services, start_service, stop_service
from tests.support.archive import (
    archive_channel,
    blob_path,
    drop_postgres,
    fresh_postgres,
    lab_channel,
    lock,
    wait_archive,
    wait_partial_download,
    wait_worker_ready,
)
from tests.support.channel_server import ChannelServer
from tests.support.faults import ready_worker
from tests.support.packages import PackageSpec
from tests.support.service import Service

pytestmark = pytest.mark.process  # condarchive runs as real processes


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    require_services()
    url = fresh_postgres()
    try:
        yield {"database_url": url, "broker_url": REDIS_URL}
    finally:
        drop_postgres(url)


def _service(
    tmp_path: Path, upstream: ChannelServer, backend: dict[str, str], **extra: str
) -> Service:
    return start_service(tmp_path / "service", upstream.url, no_worker=True, **backend, **extra)


def _cleanup(service: Service, backend: dict[str, str]) -> None:
    stop_service(service)
    if backend.get("broker_url", "").startswith("redis://"):
        import redis

        redis.Redis.from_url(REDIS_URL).delete(service.env["CONDARCHIVE_QUEUE"])


def test_worker_killed_mid_archive_then_rerun_completes(
    tmp_path: Path, backend: dict[str, str]
) -> None:
    root = tmp_path / "upstream"
    big = [PackageSpec("bigpkg", "1.0", "0", 0, "noarch", payload_size=6_000_000)]
    lab_channel(root / "killlab", [PackageSpec("smallpkg", "1.0", "0", 0, "noarch")], big)
    path = "/killlab/noarch/bigpkg-1.0-0.conda"
    upstream = ChannelServer(root).start()
    upstream.rates[path] = 1_000_000  # six seconds for the whole file
    service = _service(tmp_path, upstream, backend, archive_lease="3")
    try:
        worker = ready_worker(service)
        channel_url = upstream.channel_url("killlab")
        data_dir = Path(service.env["CONDARCHIVE_DATA_DIR"])
        with httpx.Client(base_url=service.url, timeout=30) as client:
            lock_id = lock(client, channel_url, ["bigpkg", "smallpkg"])
            # Wait until the worker is well into the big download, then SIGKILL it.
            parts = wait_partial_download(data_dir)
            worker.kill()

            status = client.get(f"/api/v1/locks/{lock_id}/archive").json()
            packages = {p["name"]: p for p in status["targets"]["linux-64"]["packages"]}
            bigpkg = packages["bigpkg"]
            assert bigpkg["state"] == "pending" and bigpkg["archive_url"] is None
            assert status["status"] in ("running", "queued", "pending")
            # Nothing half-written is served: no blob, not listed, not downloadable.
            assert any(p.exists() for p in parts)  # the partial temp file is all there is
            assert not blob_path(data_dir, bigpkg["sha256"]).exists()
            channel = archive_channel(status, channel_url)
            listing = client.get(f"{channel}/noarch/repodata.json")
            assert listing.status_code in (200, 404)
            if listing.status_code == 200:
                assert "bigpkg-1.0-0.conda" not in listing.json()["packages.conda"]
            assert client.get(f"{channel}/noarch/bigpkg-1.0-0.conda").status_code == 404

            # A new worker and a rerun: the dead worker's lease runs out, the file is fetched
            # again from scratch, and the archive completes.
            del upstream.rates[path]
            ready_worker(service)
            assert client.post(f"/api/v1/locks/{lock_id}/archive").status_code == 202
            status = wait_archive(client, lock_id, timeout=120)
            assert status["status"] == "archived", status
            packages = {p["name"]: p for p in status["targets"]["linux-64"]["packages"]}
            assert packages["bigpkg"]["attempts"] >= 2
            served = client.get(packages["bigpkg"]["archive_url"])
            assert served.status_code == 200
            assert int(served.headers["content-length"]) == bigpkg["size"]
            assert hashlib.sha256(served.content).hexdigest() == bigpkg["sha256"]
            assert upstream.count("bigpkg-1.0-0.conda") >= 2
    finally:
        _cleanup(service, backend)
        upstream.stop()


def test_two_workers_store_a_shared_package_once(tmp_path: Path, backend: dict[str, str]) -> None:
    root = tmp_path / "upstream"
    big = [PackageSpec("sharedpkg", "1.0", "0", 0, "noarch", payload_size=3_000_000)]
    small = [PackageSpec(name, "1.0", "0", 0, "noarch") for name in ("onlya", "onlyb")]
    lab_channel(root / "twolab", small, big)
    path = "/twolab/noarch/sharedpkg-1.0-0.conda"
    upstream = ChannelServer(root).start()
    upstream.rates[path] = 1_500_000  # two seconds: both workers are busy at once
    service = _service(tmp_path, upstream, backend, archive="off")
    try:
        workers = [ready_worker(service), ready_worker(service)]
        channel_url = upstream.channel_url("twolab")
        with httpx.Client(base_url=service.url, timeout=30) as client:
            first = lock(client, channel_url, ["sharedpkg", "onlya"])
            second = lock(client, channel_url, ["sharedpkg", "onlyb"])
            assert client.get(f"/api/v1/locks/{first}/archive").json()["status"] == "not_requested"
            for lock_id in (first, second):
                assert client.post(f"/api/v1/locks/{lock_id}/archive").status_code == 202
            statuses = [wait_archive(client, lock_id, timeout=120) for lock_id in (first, second)]
        for status in statuses:
            assert status["status"] == "archived", status
        assert upstream.count("sharedpkg-1.0-0.conda") == 1  # downloaded and stored once
        # Each worker took one of the two archive tasks, so they really ran side by side.
        for worker in workers:
            assert "condarchive.archive_lock[" in worker.log()
        shared = [
            next(p for p in s["targets"]["linux-64"]["packages"] if p["name"] == "sharedpkg")
            for s in statuses
        ]
        assert shared[0]["blob_sha256"] == shared[1]["blob_sha256"] == shared[0]["sha256"]
        data_dir = Path(service.env["CONDARCHIVE_DATA_DIR"])
        assert blob_path(data_dir, shared[0]["sha256"]).is_file()
        assert not list((data_dir / "blobs" / "tmp").glob("*.part"))
    finally:
        _cleanup(service, backend)
        upstream.stop()


def test_embedded_serve_killed_mid_archive_resumes_on_restart(tmp_path: Path) -> None:
    """The one-command deployment: `serve` (and its worker) SIGKILLed, then started again."""
    root = tmp_path / "upstream"
    big = [PackageSpec("restartpkg", "1.0", "0", 0, "noarch", payload_size=4_000_000)]
    lab_channel(root / "restartlab", [], big)
    path = "/restartlab/noarch/restartpkg-1.0-0.conda"
    upstream = ChannelServer(root).start()
    upstream.rates[path] = 800_000
    service = start_service(tmp_path / "service", upstream.url)
    try:
        wait_worker_ready(service)
        data_dir = Path(service.env["CONDARCHIVE_DATA_DIR"])
        with httpx.Client(base_url=service.url, timeout=30) as client:
            lock_id = lock(client, upstream.channel_url("restartlab"), ["restartpkg"])
            package = next(iter(lock_packages(client, lock_id)))
            wait_partial_download(data_dir, over=1_000_000)
            assert service.server is not None
            service.server.kill()  # the whole process group: API and its worker
            assert not blob_path(data_dir, package["sha256"]).exists()

            del upstream.rates[path]
            service.start()  # no POST: serve re-sends the unfinished archive itself
            status = wait_archive(client, lock_id, timeout=60)
            assert status["status"] == "archived", status
            served = client.get(status["targets"]["linux-64"]["packages"][0]["archive_url"])
            assert hashlib.sha256(served.content).hexdigest() == package["sha256"]
    finally:
        stop_service(service)
        upstream.stop()


def lock_packages(client: httpx.Client, lock_id: str) -> list[dict]:
    lock = client.get(f"/api/v1/locks/{lock_id}").json()
    return [p for target in lock["targets"].values() for p in target["packages"]]
