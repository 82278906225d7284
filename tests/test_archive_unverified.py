"""Records with no hash are archived as *unverified*, and a record's md5 and size are checked
even when its sha256 names a blob we already hold.

The upstream channel lists `nohashpkg` with no sha256, no md5 and `"size": 0`: it solves
and locks as such, but its archive entry says unverified, shows the hashes computed from
the bytes, and no repodata condarchive serves lists an empty or zero hash for it. A
second channel (`liar`) lists a file we already archived with its true sha256 beside a
wrong md5 and size: neither the worker nor the proxy may take the stored blob for it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

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

NOHASH = "nohashpkg-1.0-0.conda"
TRUE = "truepkg-1.0-0.conda"


def _rewrite(channel_dir: Path, edit: Any) -> None:
    """Edit noarch/repodata.json in place and drop the other forms (.zst, shards)."""
    noarch = channel_dir / "noarch"
    for stale in {*noarch.glob("repodata*.zst"), *noarch.glob("repodata_shards*")}:
        stale.unlink()
    for shards in channel_dir.rglob("shards"):
        shutil.rmtree(shards)
    path = noarch / "repodata.json"
    repodata = json.loads(path.read_text())
    edit(repodata["packages.conda"])
    path.write_text(json.dumps(repodata))


@dataclass
class Lab:
    service: Service
    upstream: ChannelServer
    good_url: str
    liar_url: str
    good_lock: str
    status: dict[str, Any]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("nohash-upstream")
    specs = [
        PackageSpec("nohashpkg", "1.0", "0", 0, "noarch"),
        PackageSpec("truepkg", "1.0", "0", 0, "noarch"),
    ]
    good = lab_channel(root / "good", specs)
    liar = lab_channel(root / "liar", [])  # lists the very same truepkg file, but lies
    shutil.copy(good / "noarch" / TRUE, liar / "noarch" / TRUE)
    reindex(liar)

    def strip(records: dict[str, Any]) -> None:
        record = records[NOHASH]
        del record["sha256"], record["md5"]
        record["size"] = 0

    def lie(records: dict[str, Any]) -> None:
        records[TRUE]["md5"] = "0" * 32
        records[TRUE]["size"] += 1

    _rewrite(good, strip)
    _rewrite(liar, lie)
    with (
        ChannelServer(root) as upstream,
        lab_service(
            tmp_path_factory.mktemp("nohash-service"),
            upstream,
            proxy_channels=f"goodproxy={upstream.channel_url('good')},"
            f"liarproxy={upstream.channel_url('liar')}",
            archive_attempts="1",
        ) as service,
    ):
        good_url = upstream.channel_url("good")
        with httpx.Client(base_url=service.url, timeout=30) as client:
            good_lock = lock(client, good_url, ["nohashpkg", "truepkg"])
            status = wait_archive(client, good_lock)
        yield Lab(service, upstream, good_url, upstream.channel_url("liar"), good_lock, status)


def _packages(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["filename"]: p for p in status["targets"]["linux-64"]["packages"]}


def test_a_record_with_no_hash_is_locked_as_such(lab: Lab) -> None:
    lock_json = httpx.get(f"{lab.service.url}/api/v1/locks/{lab.good_lock}").json()
    package = next(
        p for p in lock_json["targets"]["linux-64"]["packages"] if p["name"] == "nohashpkg"
    )
    assert not package["sha256"] and not package["md5"] and not package["size"]


def test_it_is_archived_unverified_with_the_computed_hashes(lab: Lab) -> None:
    packages = _packages(lab.status)
    nohash, true = packages[NOHASH], packages[TRUE]
    assert nohash["state"] == "archived" and nohash["verified"] is False
    assert true["state"] == "archived" and true["verified"] is True
    served = httpx.get(nohash["archive_url"]).content
    assert nohash["blob_sha256"] == hashlib.sha256(served).hexdigest()
    assert nohash["blob_md5"] == hashlib.md5(served).hexdigest()
    assert nohash["blob_size"] == len(served) > 0
    assert lab.status["summary"]["unverified"] == 1
    assert lab.status["targets"]["linux-64"]["unverified"] == 1
    page = httpx.get(f"{lab.service.url}/l/{lab.good_lock}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "unverified" in page.text


def _listed(url: str) -> dict[str, Any]:
    repodata = httpx.get(url, timeout=30).json()
    return {**repodata["packages"], **repodata["packages.conda"]}


def test_served_repodata_never_lists_empty_hashes(lab: Lab) -> None:
    nohash = _packages(lab.status)[NOHASH]
    channel = archive_channel(lab.status, lab.good_url)
    for url in (
        f"{channel}/noarch/repodata.json",
        nohash["archive_url"].rsplit("/", 1)[0] + "/repodata.json",
    ):
        record = _listed(url)[NOHASH]
        assert record["sha256"] == nohash["blob_sha256"], url
        assert record["md5"] == nohash["blob_md5"], url
        assert record["size"] == nohash["blob_size"], url
    proxied = _listed(f"{lab.service.url}/channels/goodproxy/noarch/repodata.json")[NOHASH]
    for field in ("sha256", "md5", "size"):
        assert proxied.get(field, "absent") not in ("", 0, None), (field, proxied)


def test_proxy_refuses_a_stored_blob_whose_md5_and_size_differ(lab: Lab) -> None:
    response = httpx.get(f"{lab.service.url}/channels/liarproxy/noarch/{TRUE}", timeout=30)
    assert response.status_code == 502, response.text
    assert "md5" in response.json()["detail"]


def test_worker_refuses_a_stored_blob_whose_md5_and_size_differ(lab: Lab) -> None:
    with httpx.Client(base_url=lab.service.url, timeout=30) as client:
        liar_lock = lock(client, lab.liar_url, ["truepkg"])
        status = wait_archive(client, liar_lock)
    package = _packages(status)[TRUE]
    assert package["state"] == "failed", package
    assert "md5" in package["reason"] and "size" in package["reason"]
    assert package["archive_url"] is None
