"""`condarchive beat` sends the periodic verify; a worker runs it and the report is served."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.archive import lab_channel, lock, wait_archive, wait_worker_ready
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec
from tests.support.service import Process

pytestmark = pytest.mark.process  # condarchive runs as real processes


def test_beat_runs_verify_periodically(tmp_path: Path) -> None:
    lab_channel(
        tmp_path / "upstream" / "beatlab", [PackageSpec("beatpkg", "1.0", "0", 0, "noarch")]
    )
    upstream = ChannelServer(tmp_path / "upstream").start()
    service = start_service(tmp_path / "service", upstream.url, verify_interval="2")
    beat: Process | None = None
    try:
        wait_worker_ready(service)
        with httpx.Client(base_url=service.url, timeout=30) as client:
            lock_id = lock(client, upstream.channel_url("beatlab"), ["beatpkg"])
            assert wait_archive(client, lock_id)["status"] == "archived"
            assert client.get("/api/v1/archive/verify").status_code == 404  # never ran yet
            beat = Process(
                [sys.executable, "-m", "app.cli", "beat"], service.env, tmp_path / "beat.log"
            ).start()
            deadline = time.monotonic() + 60
            while (response := client.get("/api/v1/archive/verify")).status_code == 404:
                assert time.monotonic() < deadline, beat.log()
                time.sleep(0.3)
            report = response.json()
            assert report["summary"]["ok"] is True
            assert report["summary"]["blobs_checked"] == 1
            assert report["summary"]["removed_upstream"] == 0
            # It keeps running on its schedule: a newer report follows.
            first = report["id"]
            while client.get("/api/v1/archive/verify").json()["id"] == first:
                assert time.monotonic() < deadline + 30, beat.log()
                time.sleep(0.3)
    finally:
        if beat is not None:
            beat.stop()
        stop_service(service)
        upstream.stop()
