"""Workers die or stall mid-solve: the job is taken back, finished once, or failed with its reason.

Real `condarchive worker` subprocesses on Postgres and a Redis of the test's own, killed
with SIGKILL (no chance to clean up) or frozen with SIGSTOP. The job lease is 3 s and
the API's sweeper runs every 0.5 s, so a dead worker's job moves on within seconds.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.channel_server import ChannelServer
from tests.support.faults import (
    fault_service,
    finish,
    job_row,
    pause,
    post,
    ready_worker,
    redis_server,  # noqa: F401 - fixture
    resume,
    running_on,
    slow_channel,
    solve_body,
    wait_for,
)
from tests.support.redis_server import RedisServer
from tests.support.service import Process, Service, wait_for_solve

pytestmark = [pytest.mark.process, pytest.mark.distributed]


def wait_running(http: httpx.Client, service: Service, job_id: str, attempt: int) -> Process:
    """Wait until a live worker has claimed `attempt` of the job; return that worker."""

    def claimed() -> Process | None:
        job = http.get(f"/api/v1/solves/{job_id}").json()
        if job["status"] != "running":
            return None
        worker = running_on(service, job_id)
        if worker is None or f"attempt {attempt} of" not in worker.log():
            return None
        return worker

    return wait_for(f"attempt {attempt} of job {job_id} running", claimed, timeout=30)


def test_worker_killed_mid_solve_another_finishes_it_once(
    tmp_path: Path,
    channel_server: ChannelServer,
    fresh_postgres_url: str,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    service = fault_service(
        tmp_path, channel_server, fresh_postgres_url, redis_server.url, workers=2
    )
    try:
        with (
            httpx.Client(base_url=service.url, timeout=30) as http,
            slow_channel(channel_server, delay=3.0) as (channel, delay),
        ):
            job_id = post(http, solve_body(channel))
            victim = wait_running(http, service, job_id, attempt=1)
            victim.kill()  # SIGKILL mid-fetch: no goodbye, the lease just stops being renewed
            del channel_server.delays[delay]
            job = wait_for_solve(http, job_id, timeout=40)
            assert job["status"] == "succeeded", job
            (survivor,) = [w for w in service.workers if w is not victim]
            assert f"job {job_id}: attempt 2 of 3 claimed" in survivor.log()
        row = job_row(fresh_postgres_url, job_id)
        assert (row["status"], row["attempts"], row["lock_id"]) == ("succeeded", 2, job["lock_id"])
        assert [line for line in service.server_errors() if '" 503 ' not in line] == []
    finally:
        finish(service)


def test_job_that_keeps_killing_its_worker_ends_failed_with_its_reason(
    tmp_path: Path,
    channel_server: ChannelServer,
    fresh_postgres_url: str,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Every attempt's worker dies: after CONDARCHIVE_MAX_ATTEMPTS the job is failed, not
    left running, and not given to anyone again."""
    service = fault_service(
        tmp_path, channel_server, fresh_postgres_url, redis_server.url, max_attempts="2"
    )
    try:
        with (
            httpx.Client(base_url=service.url, timeout=30) as http,
            slow_channel(channel_server, delay=60.0) as (channel, _),
        ):
            job_id = post(http, solve_body(channel))
            for attempt in (1, 2):
                worker = ready_worker(service)
                wait_running(http, service, job_id, attempt).kill()
                assert worker.popen is not None and worker.popen.poll() is not None
            job = wait_for_solve(http, job_id, timeout=20)
            survivor = ready_worker(service)  # a worker that lives finds nothing to take
        assert job["status"] == "failed", job
        assert job["error"]["kind"] == "attempts"
        assert "gave up after 2 attempts" in job["error"]["message"]
        assert job["error"]["detail"] == {"attempts": 2, "max_attempts": 2}
        row = job_row(fresh_postgres_url, job_id)
        assert (row["status"], row["attempts"]) == ("failed", 2)
        assert "claimed" not in survivor.log()
    finally:
        finish(service)


def test_stalled_worker_cannot_overwrite_the_job_it_lost(
    tmp_path: Path,
    channel_server: ChannelServer,
    fresh_postgres_url: str,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """A worker frozen past its lease (SIGSTOP) loses the job to another; when it wakes it
    finishes its own solve, but the job keeps the other worker's result: it succeeds once."""
    service = fault_service(
        tmp_path, channel_server, fresh_postgres_url, redis_server.url, workers=2
    )
    try:
        with (
            httpx.Client(base_url=service.url, timeout=30) as http,
            slow_channel(channel_server, delay=2.0) as (channel, delay),
        ):
            job_id = post(http, solve_body(channel))
            frozen = wait_running(http, service, job_id, attempt=1)
            pause(frozen)
            try:
                del channel_server.delays[delay]
                job = wait_for_solve(http, job_id, timeout=40)
                assert job["status"] == "succeeded", job
                first = job_row(fresh_postgres_url, job_id)
            finally:
                resume(frozen)
            wait_for(
                "the woken worker noticing it lost the job",
                lambda: "no longer holds it" in frozen.log() or "lost the job" in frozen.log(),
                timeout=20,
            )
            wait_for(
                "the woken worker finishing its task",
                lambda: frozen.log().count("succeeded in") >= 1,
                timeout=20,
            )
        after = job_row(fresh_postgres_url, job_id)
        assert first["attempts"] == 2
        assert after == first  # same status, attempts, lock, finished_at: written once
    finally:
        finish(service)


def test_duplicate_messages_solve_a_job_once(
    tmp_path: Path,
    channel_server: ChannelServer,
    fresh_postgres_url: str,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """The same job id delivered many times (re-sent by a sweeper, redelivered by Redis)
    is claimed once: the other deliveries find it running or done and do nothing."""
    service = fault_service(
        tmp_path, channel_server, fresh_postgres_url, redis_server.url, workers=2
    )
    try:
        from celery import Celery

        sender = Celery("test-sender", broker=redis_server.url)
        with httpx.Client(base_url=service.url, timeout=30) as http:
            job_id = post(http, solve_body(channel_server.channel_url("testchan")))
            for _ in range(5):
                sender.send_task(
                    "condarchive.solve", args=[job_id], queue=service.env["CONDARCHIVE_QUEUE"]
                )
            assert wait_for_solve(http, job_id)["status"] == "succeeded"
            wait_for(
                "all six deliveries handled",
                lambda: sum(w.log().count("condarchive.solve[") for w in service.workers) >= 12,
            )
        assert job_row(fresh_postgres_url, job_id)["attempts"] == 1
        claims = sum(w.log().count(f"job {job_id}: attempt") for w in service.workers)
        assert claims == 1
    finally:
        finish(service)
