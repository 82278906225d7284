"""Which queues have a live worker: each worker touches a heartbeat file while it runs.

A worker started on this host's data directory writes ``data_dir/workers/<node>.json``
(its queues and pid) when it is ready, then touches it every few seconds from a thread of
its own, so a worker busy in a long solve still beats, and one that was killed (even with
SIGKILL, which runs no shutdown hook) stops. `/api/v1/health` reads the directory: a
queue nobody has beaten for within CONDARCHIVE_WORKER_STALE_AFTER seconds has no worker.

Why files and not Celery's pidbox ping: a solo-pool worker answers a ping only between
tasks (a long solve would read as dead), the ping costs the health check its timeout
exactly when no worker is up, and the embedded SQLite broker has no broadcast. Files
suit embedded mode, where `serve` and its workers share the data directory; in
distributed mode workers run elsewhere, and an orchestrator checks them (see
docker-compose.yml's `celery inspect ping` healthcheck).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings

#: Files nobody touched for this many stale periods are removed by the next reader.
FORGET_AFTER = 20


def heartbeat_dir(settings: Settings) -> Path:
    return settings.resolved_data_dir / "workers"


def interval(settings: Settings) -> float:
    """Seconds between a worker's touches: a few per stale period, at most every 5 s."""
    return max(min(settings.worker_stale_after / 4, 5.0), 0.2)


class WorkerBeat:
    """Touch this worker's heartbeat file until :meth:`stop` (which removes it)."""

    def __init__(self, settings: Settings, node: str, queues: list[str]) -> None:
        directory = heartbeat_dir(settings)
        directory.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in node)
        self.path = directory / f"{safe}.json"
        self.payload = json.dumps({"node": node, "queues": queues, "pid": os.getpid()})
        self.path.write_text(self.payload)
        self.interval = interval(settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-beat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                os.utime(self.path)
            except FileNotFoundError:  # removed by someone: say again who we are
                self.path.write_text(self.payload)

    def stop(self) -> None:
        self._stop.set()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Liveness:
    """Seconds since each queue last heard from a worker (None: never, or long ago)."""

    queues: dict[str, float | None]
    stale_after: float

    @property
    def missing(self) -> list[str]:
        return [
            queue for queue, age in self.queues.items() if age is None or age > self.stale_after
        ]


def liveness(settings: Settings, queues: list[str]) -> Liveness:
    """The freshest heartbeat of a worker on each of `queues`."""
    now = time.time()
    ages: dict[str, float | None] = dict.fromkeys(queues)
    forget = settings.worker_stale_after * FORGET_AFTER
    directory = heartbeat_dir(settings)
    for path in directory.glob("*.json") if directory.is_dir() else ():
        try:
            age = now - path.stat().st_mtime
            served = json.loads(path.read_text()).get("queues") or []
        except (OSError, ValueError):
            continue  # being written or removed right now
        if age > forget:
            path.unlink(missing_ok=True)
            continue
        for queue in served:
            if queue in ages:
                previous = ages[queue]
                ages[queue] = age if previous is None else min(previous, age)
    return Liveness(ages, settings.worker_stale_after)
