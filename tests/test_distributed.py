"""Distributed mode end to end: `serve --no-worker` on Postgres + Redis, with real
`condarchive worker` subprocesses taking jobs from the Redis queue.

Uses the session's `distributed` service (its own Postgres database and Celery queue).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.channel_server import ChannelServer
from tests.support.service import Process, Service, submit_and_wait, wait_for_solve

pytestmark = [pytest.mark.process, pytest.mark.distributed]


@pytest.fixture(scope="module")
def http(distributed: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=distributed.url, timeout=30) as client:
        yield client
    assert distributed.server_errors() == []


def pg(postgres_url: str) -> Any:
    import psycopg

    return psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://"))


def test_health_says_distributed(http: httpx.Client) -> None:
    assert http.get("/api/v1/health").json() == {"status": "ok", "mode": "distributed"}


@pytest.mark.parametrize("odd", ["x" * 300, "%00", "a%00b", "%F0%9F%90%8D", "..%2Fx"])
def test_odd_ids_are_404_not_500(http: httpx.Client, odd: str) -> None:
    for kind in ("solves", "locks"):
        response = http.get(f"/api/v1/{kind}/{odd}")
        assert response.status_code == 404, (kind, odd, response.text)
        assert "detail" in response.json()


def test_multi_target_solve_stored_in_postgres(
    http: httpx.Client, channel_url: str, postgres_url: str
) -> None:
    job = submit_and_wait(
        http,
        {
            "channels": [channel_url],
            "dependencies": ["numlib>=1.20,<2", "pyutil", "tzdata-lite"],
            "targets": ["linux-64", "osx-arm64", "linux-64-cuda12"],
        },
    )
    assert job["status"] == "succeeded", job
    lock = http.get(f"/api/v1/locks/{job['lock_id']}").json()
    assert set(lock["targets"]) == {"linux-64", "osx-arm64", "linux-64-cuda12"}
    from_api = {
        (name, p["url"], p["sha256"], p["md5"], p["size"])
        for name, target in lock["targets"].items()
        for p in target["packages"]
    }
    with pg(postgres_url) as db:
        assert db.execute(
            "SELECT status, lock_id, attempts FROM solve_jobs WHERE id = %s", (job["id"],)
        ).fetchall() == [("succeeded", lock["id"], 1)]
        # What was asked is kept with the request, not with the lock.
        assert db.execute(
            "SELECT spec_hash, kind FROM lock_requests WHERE lock_id = %s AND job_id = %s",
            (lock["id"], job["id"]),
        ).fetchall() == [(job["spec_hash"], "solve")]
        targets = db.execute(
            "SELECT name, platform FROM lock_targets WHERE lock_id = %s", (lock["id"],)
        ).fetchall()
        assert set(targets) == {
            ("linux-64", "linux-64"),
            ("osx-arm64", "osx-arm64"),
            ("linux-64-cuda12", "linux-64"),
        }
        rows = db.execute(
            "SELECT lp.target, p.url, p.sha256, p.md5, p.size FROM lock_packages lp "
            "JOIN packages p ON p.id = lp.package_id WHERE lp.lock_id = %s",
            (lock["id"],),
        ).fetchall()
        assert set(rows) == from_api and len(rows) == len(from_api)
        # One row per distinct package file: the noarch packages that all three targets
        # hold are stored once.
        noarch = {p["url"] for p in lock["targets"]["linux-64"]["packages"] if "noarch" in p["url"]}
        assert len(noarch) == 2
        for url in noarch:
            assert db.execute(
                "SELECT count(*) FROM packages WHERE url = %s", (url,)
            ).fetchone() == (1,)


def test_cuda_rule(http: httpx.Client, channel_url: str) -> None:
    job = submit_and_wait(
        http,
        {
            "channels": [channel_url],
            "dependencies": ["torchlike", "fftlike"],
            "targets": ["linux-64", "linux-64-cuda12"],
        },
    )
    lock = http.get(f"/api/v1/locks/{job['lock_id']}").json()
    builds = {
        name: {p["name"]: p["build"] for p in target["packages"]}
        for name, target in lock["targets"].items()
    }
    assert builds["linux-64-cuda12"] == {
        "torchlike": "cuda124_1",
        "fftlike": "cuda_0",
        "libfoo": "h0_0",
    }
    assert builds["linux-64"] == {"torchlike": "cpu_0", "fftlike": "cpu_0", "libfoo": "h0_0"}


def test_concurrent_identical_posts_make_one_job(
    distributed: Service, http: httpx.Client, channel_url: str, postgres_url: str
) -> None:
    body = {
        "channels": [channel_url],
        "dependencies": ["numlib", "pyutil"],
        "targets": [{"name": f"d-{uuid.uuid4().hex[:8]}", "platform": "osx-arm64"}],
    }
    barrier = threading.Barrier(8)
    responses: list[Any] = [None] * 8

    def post(i: int) -> None:
        with httpx.Client(base_url=distributed.url, timeout=30) as client:
            barrier.wait()
            responses[i] = client.post("/api/v1/solves", json=body)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {r.status_code for r in responses} <= {200, 202}, [r.text for r in responses]
    (job_id,) = {r.json()["id"] for r in responses}
    job = wait_for_solve(http, job_id)
    assert job["status"] == "succeeded"
    with pg(postgres_url) as db:
        assert db.execute(
            "SELECT id, attempts FROM solve_jobs WHERE request_hash = %s", (job["request_hash"],)
        ).fetchall() == [(job_id, 1)]
    again = http.post("/api/v1/solves", json=body)
    assert again.status_code == 200 and again.json()["id"] == job_id


def solves_done(worker: Process) -> int:
    return len(re.findall(r"Task condarchive\.solve\[[^\]]+\] succeeded", worker.log()))


def test_two_workers_both_finish_jobs(
    distributed: Service, http: httpx.Client, channel_server: ChannelServer
) -> None:
    """With each solve held up by a slow channel, two workers must share the jobs."""
    second = distributed.add_worker()
    for worker in distributed.workers:
        distributed.wait_for_log(worker, " ready.")
    before = [solves_done(worker) for worker in distributed.workers]

    name = f"slow-{uuid.uuid4().hex[:8]}"
    (channel_server.root / name).symlink_to(channel_server.root / "testchan")
    channel_server.delays[f"/{name}/"] = 1.0
    try:
        job_ids = [
            http.post(
                "/api/v1/solves",
                json={
                    "channels": [channel_server.channel_url(name)],
                    "dependencies": [dependency],
                    "targets": ["linux-64"],
                },
            ).json()["id"]
            for dependency in ("numlib", "libfoo", "pyutil", "tzdata-lite")
        ]
        jobs = [wait_for_solve(http, job_id, timeout=120) for job_id in job_ids]
    finally:
        del channel_server.delays[f"/{name}/"]
    assert [job["status"] for job in jobs] == ["succeeded"] * 4, jobs
    after = [solves_done(worker) for worker in distributed.workers]
    assert second in distributed.workers
    for worker, n_before, n_after in zip(distributed.workers, before, after, strict=True):
        assert n_after > n_before, worker.log()[-3000:]
