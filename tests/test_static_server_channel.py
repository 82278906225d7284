"""A sharded channel served by `python -m http.server`, as many labs serve their own.

That server sends Last-Modified and no ETag, and answers a revalidation with a bare
``304 Not Modified``. py-rattler used to take that 304 for an error on the sharded index
(`repodata_shards.msgpack.zst`), so every solve and import after the cached repodata
needed revalidating failed with kind=channel (issue #14, item 3).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.inprocess import InProcessClient, inprocess_service
from tests.support.packages import PackageSpec, build_channel
from tests.support.service import free_port, wait_for_solve

SHARD_INDEX = "/lab/noarch/repodata_shards.msgpack.zst"


@pytest.fixture(scope="module")
def static_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(channel URL, access log) of a real `python -m http.server` serving a sharded channel."""
    root = tmp_path_factory.mktemp("static")
    build_channel(
        root / "lab",
        [
            PackageSpec("alpha", "1.0", subdir="linux-64"),
            PackageSpec("beta", "2.0", depends=["alpha"]),
            PackageSpec("gamma", "3.0"),
        ],
    )
    assert (root / SHARD_INDEX.lstrip("/")).exists()
    port = free_port()
    log = root.parent / f"{root.name}-http.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}/lab"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/noarch/repodata.json").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def http(
    static_server: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessClient]:
    """The service with no in-memory repodata TTL: every solve revalidates its cache."""
    url, _ = static_server
    with (
        inprocess_service(tmp_path_factory.mktemp("svc"), url, repodata_ttl="0") as service,
        service.client() as client,
    ):
        yield client


def solve(http: httpx.Client, channel: str, dependencies: list[str]) -> dict:
    response = http.post(
        "/api/v1/solves",
        json={"channels": [channel], "dependencies": dependencies, "targets": ["linux-64"]},
    )
    assert response.status_code in (200, 202), response.text
    return wait_for_solve(http, response.json()["id"])


def test_solves_and_import_after_revalidation(
    http: httpx.Client, static_server: tuple[str, Path]
) -> None:
    url, log = static_server
    first = solve(http, url, ["beta"])
    assert first["status"] == "succeeded", first
    # The index's heuristic freshness (a tenth of its age at the first fetch) runs out.
    time.sleep(1.5)
    second = solve(http, url, ["gamma"])
    assert second["status"] == "succeeded", second
    assert f'"GET {SHARD_INDEX} HTTP/1.1" 304' in log.read_text(), "never revalidated"

    explicit = http.get(f"/l/{first['lock_id']}/explicit/linux-64.txt")
    assert explicit.status_code == 200, explicit.text
    urls = [line for line in explicit.text.splitlines() if line.startswith("http")]
    assert len(urls) == 2, explicit.text
    time.sleep(1.5)
    imported = http.post(
        "/api/v1/locks/import",
        json={"content": "# platform: linux-64\n@EXPLICIT\n" + "\n".join(urls) + "\n"},
    )
    assert imported.status_code in (200, 201), imported.text
    assert imported.json()["targets"] == {"linux-64": 2}
