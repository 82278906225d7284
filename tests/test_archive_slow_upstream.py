"""A slow-loris upstream cannot hold the archive, nor the solves behind it.

`trickle` is sent at 1 byte/s (well within the read timeout, so only a rate or a deadline
can stop it), `steady` at 4 kB/s for ~40 s (fast enough for the minimum rate, too slow
for the per-file deadline). While both trickle, a solve posted to the embedded `serve`
must finish within seconds; then each file fails, naming the setting that stopped it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.archive import lab_channel, lock, wait_archive, wait_worker_ready
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec
from tests.support.service import Service, wait_for_solve

pytestmark = pytest.mark.process  # condarchive runs as real processes

SPECS = [
    PackageSpec("trickle", "1.0", "0", 0, "noarch", payload_size=50_000),
    PackageSpec("steady", "1.0", "0", 0, "noarch", payload_size=160_000),
    PackageSpec("quick", "1.0", "0", 0, "noarch"),
]


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    root = tmp_path_factory.mktemp("slow-upstream")
    lab_channel(root / "slowchan", SPECS)
    upstream = ChannelServer(root).start()
    upstream.rates["/slowchan/noarch/trickle-1.0-0.conda"] = 1
    upstream.rates["/slowchan/noarch/steady-1.0-0.conda"] = 4_000
    service = start_service(
        tmp_path_factory.mktemp("slow-service"),
        upstream.url,
        archive_attempts="1",
        archive_min_rate="1000",
        archive_rate_grace="3",
        archive_file_deadline="8",
    )
    wait_worker_ready(service)
    try:
        yield service, upstream.channel_url("slowchan")
    finally:
        stop_service(service)
        upstream.stop()


def test_slow_archive_neither_hangs_nor_starves_solves(slow: tuple[Service, str]) -> None:
    service, channel = slow
    with httpx.Client(base_url=service.url, timeout=30) as client:
        lock_id = lock(client, channel, ["trickle", "steady"])
        time.sleep(1.0)  # the archive run has started trickling
        assert client.get(f"/api/v1/locks/{lock_id}/archive").json()["status"] in (
            "queued",
            "running",
        )
        started = time.monotonic()
        body = {"channels": [channel], "dependencies": ["quick"], "targets": ["linux-64"]}
        job = client.post("/api/v1/solves", json=body).json()
        done = wait_for_solve(client, job["id"], timeout=30)
        took = time.monotonic() - started
        assert done["status"] == "succeeded", done
        assert took < 8, f"a solve waited {took:.1f}s behind a trickling archive"

        status = wait_archive(client, lock_id, timeout=60)
    packages = {p["name"]: p for p in status["targets"]["linux-64"]["packages"]}
    assert status["status"] == "failed", status
    assert packages["trickle"]["state"] == "failed"
    assert "CONDARCHIVE_ARCHIVE_MIN_RATE=1000" in packages["trickle"]["reason"]
    assert packages["steady"]["state"] == "failed"
    assert "CONDARCHIVE_ARCHIVE_FILE_DEADLINE=8" in packages["steady"]["reason"]
    assert not service.server_errors()
