"""The archive as a conda channel: HTTP semantics, and py-rattler reading and solving from it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import rattler
import zstandard

from tests.conftest import REALDATA
from tests.support.archive import (
    archive_channel,
    lab_channel,
    lab_service,
    lock,
    reindex,
    wait_archive,
)
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec
from tests.support.service import Service

pytestmark = pytest.mark.process  # condarchive runs as real processes

REAL_REPO = REALDATA / "conda+conda/tests/data/conda_format_repo"
REAL_ZLIB = {
    "linux-64": REAL_REPO / "linux-64/zlib-1.2.11-h7b6447c_3.conda",
    "osx-64": REAL_REPO / "osx-64/zlib-1.2.11-h1de35cc_3.tar.bz2",
}


@dataclass
class Lab:
    service: Service
    upstream: ChannelServer
    channel_url: str
    lock_id: str
    status: dict[str, Any]
    channel: str  # the archive channel URL
    real_lock: str | None
    real_status: dict[str, Any] | None

    def packages(self) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.status["targets"]["linux-64"]["packages"]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    real = all(path.is_file() for path in REAL_ZLIB.values())
    root = tmp_path_factory.mktemp("channels-upstream")
    specs = [
        PackageSpec("chanpkg", "1.0", "0", 0, "noarch", payload_size=1_000_000),
        PackageSpec("chanold", "1.0", "0", 0, "linux-64", fmt=".tar.bz2"),
        PackageSpec("libgcc-ng", "9.3.0", "h0_0", 0, "linux-64"),  # what the real zlib needs
    ]
    channel_dir = lab_channel(root / "chanlab", specs)
    if real:
        for subdir, path in REAL_ZLIB.items():
            (channel_dir / subdir).mkdir(exist_ok=True)
            shutil.copy(path, channel_dir / subdir / path.name)
        reindex(channel_dir)
    with (
        ChannelServer(root) as upstream,
        lab_service(tmp_path_factory.mktemp("channels-service"), upstream) as service,
    ):
        channel_url = upstream.channel_url("chanlab")
        with httpx.Client(base_url=service.url, timeout=30) as client:
            lock_id = lock(client, channel_url, ["chanpkg", "chanold"])
            status = wait_archive(client, lock_id)
            real_lock = real_status = None
            if real:
                real_lock = lock(client, channel_url, ["zlib"], ["linux-64", "osx-64"])
                real_status = wait_archive(client, real_lock)
        channel = archive_channel(status, channel_url)
        yield Lab(service, upstream, channel_url, lock_id, status, channel, real_lock, real_status)


def test_archive_status_shape(lab: Lab) -> None:
    assert lab.status["status"] == "archived", lab.status
    assert lab.status["summary"]["archived"] == lab.status["summary"]["total"] == 2
    assert lab.channel.startswith(f"{lab.service.url}/channels/chanlab-")
    target = lab.status["targets"]["linux-64"]
    assert target["platform"] == "linux-64" and target["status"] == "archived"
    missing = httpx.get(f"{lab.service.url}/api/v1/locks/{'0' * 64}/archive")
    assert missing.status_code == 404


def test_archive_channels_are_listed(lab: Lab) -> None:
    channels = httpx.get(f"{lab.service.url}/api/v1/archive/channels").json()
    mine = next(c for c in channels if c["upstream"] == lab.channel_url)
    assert mine["url"] == lab.channel
    assert mine["packages"] == 2 + (3 if lab.real_status else 0)  # zlib x2 and libgcc-ng


def test_package_file_headers_range_and_etag(lab: Lab) -> None:
    package = lab.packages()["chanpkg"]
    url = package["archive_url"]
    response = httpx.get(url)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == package["size"] == len(response.content)
    assert hashlib.sha256(response.content).hexdigest() == package["sha256"]
    assert hashlib.md5(response.content).hexdigest() == package["md5"]
    assert response.headers["etag"] == f'"{package["sha256"]}"'
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["accept-ranges"] == "bytes"

    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(package["size"])

    part = httpx.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 1000-1999/{package['size']}"
    assert part.content == response.content[1000:2000]
    tail = httpx.get(url, headers={"Range": f"bytes={package['size'] - 10}-"})
    assert tail.status_code == 206 and tail.content == response.content[-10:]
    beyond = httpx.get(url, headers={"Range": f"bytes={package['size'] + 5}-"})
    assert beyond.status_code == 416

    again = httpx.get(url, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""

    assert httpx.get(f"{lab.channel}/noarch/nothing-1.0-0.conda").status_code == 404


def test_repodata_short_cache_and_conditional_get(lab: Lab) -> None:
    response = httpx.get(f"{lab.channel}/linux-64/repodata.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "public, max-age=60"
    etag = response.headers["etag"]
    assert etag == '"' + hashlib.sha256(response.content).hexdigest() + '"'
    repodata = response.json()
    assert repodata["info"]["subdir"] == "linux-64"
    assert set(repodata["packages"]) == {"chanold-1.0-0.tar.bz2"}
    record = repodata["packages"]["chanold-1.0-0.tar.bz2"]
    assert record["sha256"] == lab.packages()["chanold"]["sha256"]
    assert not {"url", "channel", "fn"} & set(record)

    cached = httpx.get(f"{lab.channel}/linux-64/repodata.json", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.headers["etag"] == etag

    zst = httpx.get(f"{lab.channel}/linux-64/repodata.json.zst")
    assert zst.status_code == 200 and zst.headers["etag"] != etag
    assert zstandard.ZstdDecompressor().decompress(zst.content) == response.content
    again = httpx.get(
        f"{lab.channel}/linux-64/repodata.json.zst", headers={"If-None-Match": zst.headers["etag"]}
    )
    assert again.status_code == 304
    assert httpx.head(f"{lab.channel}/linux-64/repodata.json.zst").status_code == 200

    noarch = httpx.get(f"{lab.channel}/noarch/repodata.json").json()
    assert set(noarch["packages.conda"]) == {"chanpkg-1.0-0.conda"}
    assert httpx.get(f"{lab.channel}/osx-arm64/repodata.json").json()["packages"] == {}
    unknown = httpx.get(f"{lab.service.url}/channels/no-such-channel/noarch/repodata.json")
    assert unknown.status_code == 404


def test_archive_repodata_loads_in_rattler_and_solves(lab: Lab, tmp_path: Any) -> None:
    path = tmp_path / "repodata.json"
    path.write_bytes(httpx.get(f"{lab.channel}/noarch/repodata.json").content)
    loaded = rattler.RepoData.from_path(path).into_repo_data(rattler.Channel(lab.channel))
    assert [r.name.normalized for r in loaded] == ["chanpkg"]

    records = asyncio.run(
        rattler.solve(
            [lab.channel + "/"],
            ["chanpkg", "chanold"],
            gateway=rattler.Gateway(cache_dir=tmp_path / "cache"),
            platforms=["linux-64", "noarch"],
            virtual_packages=[],
            timestamp_policy="allow-missing",
        )
    )
    solved = {r.name.normalized: r for r in records}
    assert set(solved) == {"chanpkg", "chanold"}
    for name, record in solved.items():
        assert record.url.startswith(lab.channel + "/")
        assert record.sha256.hex() == lab.packages()[name]["sha256"]


def test_post_archive_again_is_a_no_op(lab: Lab) -> None:
    downloads = lab.upstream.count("chanpkg-1.0-0.conda")
    response = httpx.post(f"{lab.service.url}/api/v1/locks/{lab.lock_id}/archive")
    assert response.status_code == 200
    assert response.json()["status"] == "archived"
    assert lab.upstream.count("chanpkg-1.0-0.conda") == downloads == 1
    assert httpx.post(f"{lab.service.url}/api/v1/locks/{'0' * 64}/archive").status_code == 404


def test_real_zlib_archived_byte_for_byte(lab: Lab, tmp_path: Any) -> None:
    if lab.real_status is None:
        pytest.skip(f"real zlib packages not found under {REAL_REPO}")
    assert lab.real_status["status"] == "archived", lab.real_status
    for subdir, path in REAL_ZLIB.items():
        packages = {p["name"]: p for p in lab.real_status["targets"][subdir]["packages"]}
        zlib = packages["zlib"]
        assert zlib["filename"] == path.name
        served = httpx.get(zlib["archive_url"])
        assert served.content == path.read_bytes()
    # The osx-64 .tar.bz2 solves from the archive channel like from upstream.
    records = asyncio.run(
        rattler.solve(
            [lab.channel + "/"],
            ["zlib"],
            gateway=rattler.Gateway(cache_dir=tmp_path / "cache"),
            platforms=["osx-64", "noarch"],
            virtual_packages=[],
            timestamp_policy="allow-missing",
        )
    )
    assert [r.file_name for r in records] == [REAL_ZLIB["osx-64"].name]
    listing = json.loads(httpx.get(f"{lab.channel}/osx-64/repodata.json").content)
    assert set(listing["packages"]) == {REAL_ZLIB["osx-64"].name}


def test_lock_page_and_lock_json_show_the_archive(lab: Lab) -> None:
    api = httpx.get(f"{lab.service.url}/api/v1/locks/{lab.lock_id}").json()
    assert api["archive"]["links"]["status"].endswith(f"/api/v1/locks/{lab.lock_id}/archive")
    assert api["archive"]["channels"] == {lab.channel_url: lab.channel}

    page = httpx.get(f"{lab.service.url}/l/{lab.lock_id}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    html = page.text
    assert "Archive status" in html and 'data-status="archived"' in html
    assert "2 of 2 archived" in html
    for package in lab.packages().values():
        assert package["archive_url"] in html
    assert f"/l/{lab.lock_id}/explicit/linux-64.txt?source=archive" in html


def test_explicit_file_pointing_at_the_archive(lab: Lab) -> None:
    url = f"{lab.service.url}/l/{lab.lock_id}/explicit/linux-64.txt"
    upstream, archived = httpx.get(url), httpx.get(url, params={"source": "archive"})
    assert upstream.status_code == archived.status_code == 200
    assert "max-age=300" in archived.headers["cache-control"]
    lines = [line for line in archived.text.splitlines() if line.startswith("http")]
    assert len(lines) == 2
    packages = {p["archive_url"]: p for p in lab.packages().values()}
    for line in lines:
        file_url, md5 = line.split("#")
        assert file_url in packages and md5 == packages[file_url]["md5"]
        assert hashlib.md5(httpx.get(file_url).content).hexdigest() == md5
    # Everything but the URLs is the upstream rendering.
    strip = [x for x in upstream.text.splitlines() if not x.startswith("http")]
    assert [x for x in archived.text.splitlines() if not x.startswith("http")] == strip
    missing = httpx.get(
        f"{lab.service.url}/l/{lab.lock_id}/explicit/win-64.txt",
        params={"source": "archive"},
        headers={"Accept": "application/json"},
    )
    assert missing.status_code == 404  # a target the lock lacks, as without ?source
