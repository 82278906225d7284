"""The pull-through mirror (`CONDARCHIVE_PROXY_CHANNELS`): fetched once, then served locally."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REALDATA, start_service, stop_service
from tests.support.archive import (
    blob_path,
    lab_channel,
    prefix_records,
    reindex,
    solve_and_install,
)
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec, build_package
from tests.support.service import Service

pytestmark = pytest.mark.process  # condarchive runs as real processes

REAL_ZLIB = (
    REALDATA / "conda+conda/tests/data/conda_format_repo/linux-64/zlib-1.2.11-h7b6447c_3.conda"
)


@dataclass
class Mirror:
    service: Service
    upstream: ChannelServer
    channel_dir: Path
    real_zlib: bool

    @property
    def proxy(self) -> str:
        return f"{self.service.url}/channels/up"

    @property
    def upstream_url(self) -> str:
        return self.upstream.channel_url("upchan")

    def listed(self, subdir: str) -> dict:
        repodata = httpx.get(f"{self.proxy}/{subdir}/repodata.json", timeout=30).json()
        return {**repodata["packages"], **repodata["packages.conda"]}

    def upstream_record(self, subdir: str, filename: str) -> dict:
        repodata = httpx.get(f"{self.upstream_url}/{subdir}/repodata.json").json()
        return {**repodata["packages"], **repodata["packages.conda"]}[filename]


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    real_zlib = REAL_ZLIB.is_file()
    specs = [
        PackageSpec("proxpkg", "1.0", "0", 0, "noarch", depends=["proxdep"]),
        PackageSpec("proxdep", "1.0", "0", 0, "noarch", fmt=".tar.bz2"),
        PackageSpec("libgcc-ng", "9.3.0", "h0_0", 0, "linux-64"),
    ]
    channel_dir = lab_channel(tmp_path / "upstream" / "upchan", specs)
    if real_zlib:
        shutil.copy(REAL_ZLIB, channel_dir / "linux-64" / REAL_ZLIB.name)
        reindex(channel_dir)
    upstream = ChannelServer(tmp_path / "upstream").start()
    service = start_service(
        tmp_path / "service",
        upstream.url,
        proxy_channels=f"up={upstream.channel_url('upchan')}",
        proxy_repodata_ttl="1",
        archive_attempts="2",
        archive_backoff="0.1",
    )
    try:
        yield Mirror(service, upstream, channel_dir, real_zlib)
    finally:
        stop_service(service)
        upstream.stop()


def test_first_request_fetches_upstream_second_is_served_locally(mirror: Mirror) -> None:
    listed = mirror.listed("noarch")
    assert {"proxpkg-1.0-0.conda", "proxdep-1.0-0.tar.bz2"} <= set(listed)
    assert mirror.upstream.count("/upchan/noarch/repodata.json") == 1

    url = f"{mirror.proxy}/noarch/proxpkg-1.0-0.conda"
    first = httpx.get(url)
    assert first.status_code == 200
    record = mirror.upstream_record("noarch", "proxpkg-1.0-0.conda")
    assert hashlib.sha256(first.content).hexdigest() == record["sha256"]
    assert first.headers["etag"] == f'"{record["sha256"]}"'
    assert "immutable" in first.headers["cache-control"]
    assert mirror.upstream.count("proxpkg-1.0-0.conda") == 1

    second = httpx.get(url)
    assert second.content == first.content
    assert mirror.upstream.count("proxpkg-1.0-0.conda") == 1  # from the archive now

    mirror.upstream.stop()
    third = httpx.get(url)
    assert third.status_code == 200 and third.content == first.content
    assert httpx.get(url, headers={"Range": "bytes=0-9"}).content == first.content[:10]
    assert set(mirror.listed("noarch")) == set(listed)  # the cached copy, upstream or not
    # (The test server keeps already-open connections alive after stop(), so the count,
    # not a connection error, is what shows nothing more was asked of upstream.)
    assert mirror.upstream.count("proxpkg-1.0-0.conda") == 1


def test_real_package_through_the_proxy(mirror: Mirror) -> None:
    if not mirror.real_zlib:
        pytest.skip(f"real zlib not found at {REAL_ZLIB}")
    served = httpx.get(f"{mirror.proxy}/linux-64/{REAL_ZLIB.name}")
    assert served.status_code == 200
    assert served.content == REAL_ZLIB.read_bytes()
    assert mirror.upstream.count(REAL_ZLIB.name) == 1


def test_stale_repodata_is_served_at_once_while_a_refresh_runs(mirror: Mirror) -> None:
    assert "newpkg-1.0-0.conda" not in mirror.listed("noarch")
    build_package(PackageSpec("newpkg", "1.0", "0", 0, "noarch"), mirror.channel_dir)
    reindex(mirror.channel_dir)
    mirror.upstream.delays["/upchan/noarch/repodata.json"] = 4.0  # upstream is now slow
    time.sleep(1.5)  # the cached copy is older than the 1 s TTL

    requests_before = mirror.upstream.count("/upchan/noarch/repodata.json")
    started = time.monotonic()
    stale = mirror.listed("noarch")
    again = mirror.listed("noarch")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"a stale copy should come at once, took {elapsed:.1f}s"
    assert "newpkg-1.0-0.conda" not in stale and stale == again
    time.sleep(0.5)
    assert mirror.upstream.count("/upchan/noarch/repodata.json") == requests_before + 1

    deadline = time.monotonic() + 20
    while "newpkg-1.0-0.conda" not in mirror.listed("noarch"):
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.3)


def test_packages_upstream_removed_stay_listed_and_installable(
    mirror: Mirror, tmp_path: Path
) -> None:
    solve_and_install(mirror.proxy, ["proxpkg"], tmp_path / "before", tmp_path / "cache-1")
    before = prefix_records(tmp_path / "before")
    assert set(before) == {"proxpkg", "proxdep"}

    # Upstream drops both packages (and gains one, so we can tell the refresh landed).
    for name in ("proxpkg-1.0-0.conda", "proxdep-1.0-0.tar.bz2"):
        (mirror.channel_dir / "noarch" / name).unlink()
    build_package(PackageSpec("marker", "1.0", "0", 0, "noarch"), mirror.channel_dir)
    reindex(mirror.channel_dir)
    deadline = time.monotonic() + 20
    while "marker-1.0-0.conda" not in mirror.listed("noarch"):
        assert time.monotonic() < deadline, "the refresh never landed"
        time.sleep(0.3)
    upstream = httpx.get(f"{mirror.upstream_url}/noarch/repodata.json").json()
    assert "proxpkg-1.0-0.conda" not in upstream["packages.conda"]

    listed = mirror.listed("noarch")
    assert {"proxpkg-1.0-0.conda", "proxdep-1.0-0.tar.bz2", "marker-1.0-0.conda"} <= set(listed)
    solve_and_install(mirror.proxy, ["proxpkg"], tmp_path / "after", tmp_path / "cache-2")
    assert prefix_records(tmp_path / "after") == before


def test_proxy_refuses_bytes_that_do_not_match_upstream_repodata(mirror: Mirror) -> None:
    filename = "proxdep-1.0-0.tar.bz2"
    file = mirror.channel_dir / "noarch" / filename
    record = mirror.upstream_record("noarch", filename)
    bad = file.read_bytes() + b"tampered"
    file.write_bytes(bad)  # not re-indexed: repodata still names the original bytes
    response = httpx.get(f"{mirror.proxy}/noarch/{filename}")
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert f"{mirror.upstream_url}/noarch/{filename}" in detail
    assert record["sha256"] in detail and hashlib.sha256(bad).hexdigest() in detail
    data_dir = Path(mirror.service.env["CONDARCHIVE_DATA_DIR"])
    assert not blob_path(data_dir, hashlib.sha256(bad).hexdigest()).exists()
    assert not blob_path(data_dir, record["sha256"]).exists()
    assert httpx.get(f"{mirror.proxy}/noarch/{filename}").status_code == 502  # still refused
