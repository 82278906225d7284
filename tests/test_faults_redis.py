"""Redis restarted with jobs queued: the messages are gone, the jobs are not.

The test runs its own `redis-server` without persistence, so a restart empties the queue
as a Redis without a volume does. The API's sweeper sees the database holding queued
jobs that the queue no longer has, and sends them again.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.channel_server import ChannelServer
from tests.support.faults import (
    fault_service,
    finish,
    job_row,
    post,
    ready_worker,
    redis_server,  # noqa: F401 - fixture
    solve_body,
)
from tests.support.redis_server import RedisServer
from tests.support.service import wait_for_solve

pytestmark = [pytest.mark.process, pytest.mark.distributed]


def test_jobs_queued_across_a_redis_restart_all_finish_once(
    tmp_path: Path,
    channel_server: ChannelServer,
    fresh_postgres_url: str,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    service = fault_service(tmp_path, channel_server, fresh_postgres_url, redis_server.url)
    queue = service.env["CONDARCHIVE_QUEUE"]
    channel = channel_server.channel_url("testchan")
    try:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            bodies = [solve_body(channel, dep) for dep in ("numlib", "libfoo", "pyutil")]
            job_ids = [post(http, body) for body in bodies]
            again = http.post("/api/v1/solves", json=bodies[0])  # identical: the same job
            assert again.json()["id"] == job_ids[0]
            assert redis_server.queue_length(queue) == 3
            # No worker yet. The sweeper runs every 0.5 s and the grace is 2 s, but the
            # queue holds a message for every queued job, so nothing is sent twice.
            time.sleep(3)
            assert redis_server.queue_length(queue) == 3

            redis_server.restart()
            assert redis_server.queue_length(queue) == 0

            ready_worker(service)
            jobs = [wait_for_solve(http, job_id, timeout=30) for job_id in job_ids]
        assert [job["status"] for job in jobs] == ["succeeded"] * 3, jobs
        for job_id in job_ids:
            row = job_row(fresh_postgres_url, job_id)
            assert (row["status"], row["attempts"]) == ("succeeded", 1)
        assert "re-sent 3 solves" in service.server.log()  # type: ignore[union-attr]
        assert service.server_errors() == []
    finally:
        finish(service)
