"""The floor under figure 1: what the parts the design requires cost on their own.

Every job takes one HTTP request, one Celery message through Redis and at least three
commits (the job before the 202, the claim, the result). This module times each part
with none of condarchive's code in it, in the same run as the service, so the
benchmark itself shows how much of the solve overhead is the design's and how much
is ours:

* an HTTP round trip to the running API (``GET /api/v1/health``: FastAPI, one query),
  sent with httpx as the service's POSTs are;
* a Celery message from ``send_task`` until a task body starts, on the same Redis,
  to a bare Celery app (no condarchive import) in a ``--pool solo`` worker of its own,
  as the service's worker runs;
* a one-row INSERT and COMMIT on the run's Postgres database.

``python -m celery -A bench.floor worker`` is how the no-op worker is started; it
reads the broker, queue and result key from the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery

from bench.measure import median
from bench.stack import REDIS_URL, Stack

_BROKER = os.environ.get("BENCH_FLOOR_BROKER", REDIS_URL)
_QUEUE = os.environ.get("BENCH_FLOOR_QUEUE", "bench-floor")
_RESULTS = os.environ.get("BENCH_FLOOR_RESULTS", "bench-floor-results")

#: The same options as `app/queue/celery_app.py` where they touch delivery.
app = Celery("bench-floor", broker=_BROKER)
app.conf.update(
    task_default_queue=_QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.floor.noop")
def noop(sent: float) -> None:
    """Report how long the message took to reach a task body (same machine, same clock)."""
    delay = time.time() - sent
    redis.Redis.from_url(_BROKER).rpush(_RESULTS, repr(delay))


@dataclass(frozen=True)
class Floor:
    """Medians, in seconds."""

    http: float
    celery: float
    commit: float

    @property
    def total(self) -> float:
        """One request, one message, three commits: the least a job can cost."""
        return self.http + self.celery + 3 * self.commit


def http_round_trip(stack: Stack, samples: int) -> float:
    stack.http.get("/api/v1/health").raise_for_status()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        stack.http.get("/api/v1/health").raise_for_status()
        times.append(time.perf_counter() - start)
    return median(times)


def postgres_commit(stack: Stack, samples: int) -> float:
    conn = stack.db.conn  # autocommit: each INSERT is its own transaction
    conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id serial PRIMARY KEY, at float8)")
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        conn.execute("INSERT INTO bench_floor (at) VALUES (%s)", (start,))
        times.append(time.perf_counter() - start)
    conn.execute("DROP TABLE bench_floor")
    return median(times)


def celery_message(workdir: Path, samples: int, timeout: float = 60) -> float:
    """Median of send → task start, through a no-op worker started for the purpose."""
    tag = uuid.uuid4().hex[:12]
    env = {
        **os.environ,
        "BENCH_FLOOR_BROKER": REDIS_URL,
        "BENCH_FLOOR_QUEUE": f"bench-floor-{tag}",
        "BENCH_FLOOR_RESULTS": f"bench-floor-results-{tag}",
    }
    client = redis.Redis.from_url(REDIS_URL)
    sender = Celery("bench-floor-sender", broker=REDIS_URL)
    sender.conf.update(task_default_queue=env["BENCH_FLOOR_QUEUE"], task_ignore_result=True)
    log = (workdir / f"floor-worker-{tag}.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.floor", "worker", "--pool", "solo"]
        + ["-Q", env["BENCH_FLOOR_QUEUE"], "--loglevel", "WARNING"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    results = env["BENCH_FLOOR_RESULTS"]
    try:
        # The first message waits for the worker to start; it is not a sample.
        sender.send_task("bench.floor.noop", args=[time.time()])
        if client.blpop([results], timeout=timeout) is None:
            raise RuntimeError(f"the no-op Celery worker did not answer in {timeout}s")
        delays = []
        for _ in range(samples):
            sender.send_task("bench.floor.noop", args=[time.time()])
            answer = client.blpop([results], timeout=10)
            if answer is None:
                raise RuntimeError("the no-op Celery worker stopped answering")
            delays.append(float(answer[1]))
            time.sleep(0.01)  # one message at a time, as jobs arrive in figure 1
        return median(delays)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
        sender.close()
        keys = list(client.scan_iter(f"*bench-floor*{tag}*"))
        if keys:
            client.delete(*keys)


def measure(stack: Stack, workdir: Path, samples: int) -> Floor:
    return Floor(
        http=http_round_trip(stack, samples),
        celery=celery_message(workdir, samples),
        commit=postgres_commit(stack, samples),
    )
