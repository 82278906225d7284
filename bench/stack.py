"""The system under test, run as it is deployed: Postgres, Redis, `serve --no-worker`, workers.

Everything is started the way a user starts it (the ``condarchive`` CLI in subprocesses,
through ``tests.support.service``), on its own database and queue name so it never
meets another run or the test suite. Job times are read from the database, where the
API and the worker stamp them with microsecond precision; polling only tells us *when*
to read them, so the poll interval does not blur the numbers.
"""

from __future__ import annotations

import itertools
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.support.service import (  # noqa: F401 - missing_services: bench.run, bench.load
    POSTGRES_ADMIN_URL,
    REDIS_URL,
    Process,
    Service,
    base_env,
    missing_services,
)

POLL_SECONDS = 0.01


@dataclass(frozen=True)
class JobTiming:
    """One job, with wall-clock instants (seconds since the epoch) from client and database."""

    id: str
    status: str
    lock_id: str | None
    error: dict[str, Any] | None
    posted: float  # just before the client sent the POST
    created: float  # the API committed the job
    started: float  # a worker claimed it
    finished: float  # the worker marked it succeeded or failed

    def expect(self, satisfiable: bool, label: str) -> JobTiming:
        """A job that ended the wrong way would time the wrong thing: fail loudly."""
        expected = "succeeded" if satisfiable else "failed"
        kind = (self.error or {}).get("kind")
        if self.status != expected or (not satisfiable and kind != "unsatisfiable"):
            raise RuntimeError(f"{label}: job {self.id} ended {self.status} ({self.error})")
        return self

    @property
    def total(self) -> float:
        """POST sent to job finished: what a user waits for."""
        return self.finished - self.posted

    @property
    def api(self) -> float:
        return self.created - self.posted

    @property
    def queued(self) -> float:
        return self.started - self.created

    @property
    def worker(self) -> float:
        return self.finished - self.started


class Database:
    """A Postgres database of our own for one stack, dropped on close."""

    def __init__(self) -> None:
        self.name = f"condarchive_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}"
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            dsn = f"postgresql://postgres@127.0.0.1:5432/{self.name}"
            self._conn = psycopg.connect(dsn, autocommit=True)
        return self._conn

    def job_row(self, job_id: str) -> tuple[Any, ...] | None:
        return self.conn.execute(
            "SELECT status, lock_id, error, created_at, started_at, finished_at"
            " FROM solve_jobs WHERE id = %s",
            (job_id,),
        ).fetchone()

    def archive_finished(self, lock_id: str) -> float:
        """When the lock's archive run last finished, in seconds since the epoch."""
        row = self.conn.execute(
            "SELECT finished_at FROM lock_archives WHERE lock_id = %s", (lock_id,)
        ).fetchone()
        return _epoch(row[0] if row else None)

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _epoch(value: datetime | None) -> float:
    return value.timestamp() if value is not None else float("nan")


class Stack:
    """`condarchive serve --no-worker` on Postgres + Redis, and workers started on demand."""

    def __init__(self, workdir: Path, allowed_channels: str, **settings: str) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.db = Database()
        settings = {"database_url": self.db.url, "broker_url": REDIS_URL, **settings}
        self.env = base_env(workdir / "data", allowed_channels, **settings)
        self.env["CONDARCHIVE_QUEUE"] = f"bench-{uuid.uuid4().hex[:12]}"
        self.service = Service(self.env, workdir, no_worker=True)
        self.workers: list[Process] = []
        self._log_numbers = itertools.count()
        self._http: httpx.Client | None = None

    def start(self) -> Stack:
        self.service.start()
        return self

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=60)
        return self._http

    @property
    def server_pid(self) -> int:
        assert self.service.server is not None and self.service.server.popen is not None
        return self.service.server.popen.pid

    @property
    def worker_pids(self) -> list[int]:
        return [w.popen.pid for w in self.workers if w.popen is not None]

    # --- workers -------------------------------------------------------------------------

    def start_worker(self, timeout: float = 60) -> Process:
        """Start one `condarchive worker` and return once Celery says it is ready."""
        log = self.workdir / f"worker-{next(self._log_numbers)}.log"
        args = [sys.executable, "-m", "app.cli", "worker", "--loglevel", "INFO"]
        worker = Process(args, self.env, log).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.popen is not None and worker.popen.poll() is not None:
                raise RuntimeError(f"condarchive worker exited:\n{worker.log()[-4000:]}")
            if " ready." in worker.log():
                self.workers.append(worker)
                return worker
            time.sleep(0.05)
        worker.stop()
        raise RuntimeError(f"condarchive worker not ready after {timeout}s:\n{worker.log()}")

    def set_workers(self, count: int) -> list[Process]:
        """Run exactly `count` workers, keeping (warm) ones already running."""
        while len(self.workers) > count:
            self.workers.pop().stop()
        while len(self.workers) < count:
            self.start_worker()
        return list(self.workers)

    def stop_workers(self) -> None:
        self.set_workers(0)

    # --- jobs ----------------------------------------------------------------------------

    def post(self, body: dict[str, Any]) -> tuple[str, float]:
        """POST a solve; return its job id and the wall-clock instant just before sending."""
        posted = time.time()
        response = self.http.post("/api/v1/solves", json=body)
        if response.status_code not in (200, 202):
            raise RuntimeError(
                f"POST /api/v1/solves answered {response.status_code}: {response.text}"
            )
        return response.json()["id"], posted

    def wait(self, job_id: str, posted: float, timeout: float = 600) -> JobTiming:
        """Wait until the job has finished and return its timings from the database."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.db.job_row(job_id)
            if row is not None and row[0] in ("succeeded", "failed"):
                status, lock_id, error, created, started, finished = row
                return JobTiming(
                    job_id,
                    status,
                    lock_id,
                    error,
                    posted,
                    _epoch(created),
                    _epoch(started),
                    _epoch(finished),
                )
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"job {job_id} not finished after {timeout}s:\n{self.logs()[-4000:]}")

    def solve(self, body: dict[str, Any], timeout: float = 600) -> JobTiming:
        job_id, posted = self.post(body)
        return self.wait(job_id, posted, timeout)

    def logs(self) -> str:
        return "\n----\n".join([self.service.logs(), *(w.log() for w in self.workers)])

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self.stop_workers()
        self.service.stop()
        self.db.drop()
        import redis

        # The queue and kombu's bindings for it (`_kombu.binding.<queue>`, ...).
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"*{self.env['CONDARCHIVE_QUEUE']}*"))
        if keys:
            client.delete(*keys)


_target_numbers = itertools.count()


def unique_target(platform: str, virtual_packages: list[str] | None = None) -> dict[str, Any]:
    """A target with a fresh name: a new request hash (so no dedupe), the same solve."""
    target: dict[str, Any] = {"name": f"{platform}-b{next(_target_numbers)}", "platform": platform}
    if virtual_packages:
        target["virtual_packages"] = virtual_packages
    return target
