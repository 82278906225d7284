"""A lock archive whose worker died is finished by another worker, with nobody re-asking.

Distributed mode (Postgres + Redis, `serve --no-worker` and real `condarchive worker`
processes): the worker is killed with SIGKILL in the middle of a download, so the run
stays `running` and its message is gone with it (Redis would redeliver it only after its
visibility timeout, minutes later). The API's sweeper must see the run's heartbeat go
silent and re-send it, so a new worker completes the archive; no one POSTs it again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, require_services, start_service, stop_service
from tests.support.archive import (
    drop_postgres,
    fresh_postgres,
    lab_channel,
    lock,
    wait_archive,
    wait_partial_download,
)
from tests.support.channel_server import ChannelServer
from tests.support.faults import ready_worker
from tests.support.packages import PackageSpec

pytestmark = [pytest.mark.process, pytest.mark.distributed]

LEASE = 2.0  # CONDARCHIVE_ARCHIVE_LEASE: a run silent for two leases is re-sent


def test_sweeper_resends_a_running_archive_whose_worker_died(tmp_path: Path) -> None:
    require_services()
    root = tmp_path / "upstream"
    big = [PackageSpec("sweptpkg", "1.0", "0", 0, "noarch", payload_size=6_000_000)]
    lab_channel(root / "sweeplab", [PackageSpec("tinypkg", "1.0", "0", 0, "noarch")], big)
    path = "/sweeplab/noarch/sweptpkg-1.0-0.conda"
    upstream = ChannelServer(root).start()
    upstream.rates[path] = 1_000_000  # six seconds for the whole file
    database = fresh_postgres()
    service = start_service(
        tmp_path / "service",
        upstream.url,
        no_worker=True,
        database_url=database,
        broker_url=REDIS_URL,
        archive_lease=str(LEASE),
        sweep_interval="1",
    )
    try:
        worker = ready_worker(service)
        data_dir = Path(service.env["CONDARCHIVE_DATA_DIR"])
        with httpx.Client(base_url=service.url, timeout=30) as client:
            lock_id = lock(client, upstream.channel_url("sweeplab"), ["sweptpkg", "tinypkg"])
            wait_partial_download(data_dir)
            worker.kill()
            status = client.get(f"/api/v1/locks/{lock_id}/archive").json()
            assert status["status"] == "running", status

            del upstream.rates[path]
            second = ready_worker(service)
            # No POST: the sweeper re-sends the silent run (after two leases, 4 s).
            status = wait_archive(client, lock_id, timeout=60)
            assert status["status"] == "archived", status
            packages = {p["name"]: p for p in status["targets"]["linux-64"]["packages"]}
            swept = packages["sweptpkg"]
            assert swept["state"] == "archived" and swept["attempts"] >= 2, swept
            served = client.get(swept["archive_url"])
            assert hashlib.sha256(served.content).hexdigest() == swept["sha256"]
        assert "archive_lock[" in second.log(), second.log()[-2000:]
        assert "re-sent" in service.server.log() if service.server else False
        assert service.server_errors() == []
    finally:
        stop_service(service)
        import redis

        redis.Redis.from_url(REDIS_URL).delete(
            service.env["CONDARCHIVE_QUEUE"], f"{service.env['CONDARCHIVE_QUEUE']}.archive"
        )
        upstream.stop()
        drop_postgres(database)
