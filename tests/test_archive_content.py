"""Upstream replaces a file under the same URL: every lock still gets exactly its own bytes.

Lock A is made and archived, then upstream rebuilds the package under the same filename
(new bytes, new sha256) and lock B is made and archived. Each lock's `?source=archive`
explicit file must install with py-rattler from bytes that hash to that lock's sha256,
`condarchive install` must work for both, and no repodata condarchive serves (the
archive channel, the pull-through proxy) may list a hash other than what its URL serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import rattler

from tests.support.archive import (
    archive_channel,
    cli,
    lab_channel,
    lab_service,
    lock,
    reindex,
    wait_archive,
)
from tests.support.channel_server import ChannelServer
from tests.support.explicit import explicit_records
from tests.support.packages import PackageSpec, build_package
from tests.support.service import Service

pytestmark = pytest.mark.process  # condarchive runs as real processes

FILENAME = "replpkg-1.0-0.conda"


def _spec(payload: int) -> PackageSpec:
    return PackageSpec("replpkg", "1.0", "0", 0, "noarch", payload_size=payload)


@dataclass
class Replaced:
    service: Service
    upstream: ChannelServer
    channel_url: str
    locks: dict[str, str]  # "A" / "B" -> lock id
    sha256: dict[str, str]  # "A" / "B" -> the locked sha256 of replpkg
    status: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def replaced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replaced]:
    root = tmp_path_factory.mktemp("replace-upstream")
    channel_dir = lab_channel(root / "replchan", [_spec(1000)])
    with (
        ChannelServer(root) as upstream,
        lab_service(
            tmp_path_factory.mktemp("replace-service"),
            upstream,
            dedupe_window="0",  # the second, identical request must solve again
            repodata_ttl="0",
            proxy_channels=f"up={upstream.channel_url('replchan')}",
            proxy_repodata_ttl="0",
        ) as service,
    ):
        # The rebuild below may come within a tenth of the first repodata's age since it
        # was written: without this, a client may keep it (heuristic freshness, RFC 9111)
        upstream.cache_control = "no-cache"
        channel_url = upstream.channel_url("replchan")
        locks, shas, statuses = {}, {}, {}
        with httpx.Client(base_url=service.url, timeout=30) as client:
            for name, payload in (("A", 1000), ("B", 2000)):
                if name == "B":  # upstream rebuilds the file under the same name
                    (channel_dir / "noarch" / FILENAME).unlink()
                    build_package(_spec(payload), channel_dir)
                    reindex(channel_dir)
                locks[name] = lock(client, channel_url, ["replpkg"])
                statuses[name] = wait_archive(client, locks[name])
                assert statuses[name]["status"] == "archived", statuses[name]
                package = statuses[name]["targets"]["linux-64"]["packages"][0]
                shas[name] = package["sha256"]
        assert locks["A"] != locks["B"] and shas["A"] != shas["B"]
        yield Replaced(service, upstream, channel_url, locks, shas, statuses)


@pytest.mark.parametrize("which", ["A", "B"])
def test_explicit_archive_file_installs_each_locks_own_bytes(
    replaced: Replaced, which: str, tmp_path: Path
) -> None:
    base = replaced.service.url
    lock_id = replaced.locks[which]
    text = httpx.get(f"{base}/l/{lock_id}/explicit/linux-64.txt", params={"source": "archive"})
    assert text.status_code == 200, text.text
    urls = [line.split("#")[0] for line in text.text.splitlines() if line.startswith("http")]
    assert len(urls) == 1
    served = httpx.get(urls[0])
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == replaced.sha256[which]
    package = replaced.status[which]["targets"]["linux-64"]["packages"][0]
    assert package["archive_url"] == urls[0]

    prefix = tmp_path / "env"
    asyncio.run(
        rattler.install(
            explicit_records(text.text),
            prefix,
            cache_dir=tmp_path / "pkgs",
            platform=rattler.Subdir("linux-64"),
            show_progress=False,
        )
    )
    meta = json.loads((prefix / "conda-meta" / "replpkg-1.0-0.json").read_text())
    assert meta["sha256"] == replaced.sha256[which]


@pytest.mark.parametrize("which", ["A", "B"])
def test_condarchive_install_of_each_lock(replaced: Replaced, which: str, tmp_path: Path) -> None:
    result = cli(
        replaced.service,
        "install",
        replaced.locks[which],
        "--prefix",
        str(tmp_path / "env"),
        "--server",
        replaced.service.url,
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    meta = json.loads((tmp_path / "env" / "conda-meta" / "replpkg-1.0-0.json").read_text())
    assert meta["sha256"] == replaced.sha256[which]


def _check_listing(channel: str, subdir: str) -> int:
    """Every file the listing names is served with exactly the listed sha256, md5, size."""
    repodata = httpx.get(f"{channel}/{subdir}/repodata.json", timeout=30).json()
    listed = {**repodata["packages"], **repodata["packages.conda"]}
    for filename, record in listed.items():
        served = httpx.get(f"{channel}/{subdir}/{filename}", timeout=30)
        assert served.status_code == 200, (filename, served.text)
        assert hashlib.sha256(served.content).hexdigest() == record["sha256"], filename
        assert hashlib.md5(served.content).hexdigest() == record["md5"], filename
        assert len(served.content) == record["size"], filename
    return len(listed)


def test_archive_channel_serves_what_it_lists(replaced: Replaced) -> None:
    channel = archive_channel(replaced.status["A"], replaced.channel_url)
    assert _check_listing(channel, "noarch") == 1


def test_content_urls_of_both_versions_stay_reachable(replaced: Replaced) -> None:
    for which in ("A", "B"):
        package = replaced.status[which]["targets"]["linux-64"]["packages"][0]
        assert replaced.sha256[which] in package["archive_url"]
        channel_subdir = package["archive_url"].rsplit("/", 1)[0]
        repodata = httpx.get(f"{channel_subdir}/repodata.json").json()
        assert repodata["packages.conda"][FILENAME]["sha256"] == replaced.sha256[which]
    unknown = replaced.status["A"]["targets"]["linux-64"]["packages"][0]["archive_url"].replace(
        replaced.sha256["A"], "0" * 64
    )
    assert httpx.get(unknown).status_code == 404


def test_proxy_serves_what_it_lists(replaced: Replaced) -> None:
    proxy = f"{replaced.service.url}/channels/up"
    listed = httpx.get(f"{proxy}/noarch/repodata.json", timeout=30).json()["packages.conda"]
    assert listed[FILENAME]["sha256"] == replaced.sha256["B"]  # upstream's current file
    assert _check_listing(proxy, "noarch") == 1
