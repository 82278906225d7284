"""Embedded `serve` keeps its workers running, and health says when none is.

The solve worker `serve` started is killed with SIGKILL (what the OOM killer does). A
generous restart backoff leaves a window in which no worker runs: health must say
"degraded" then (still 200, see app/web/routes/health.py), a job posted meanwhile waits,
and once serve has restarted the worker (logged) that job succeeds and health is "ok".
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.service import wait_for_solve

pytestmark = pytest.mark.process  # condarchive runs as real processes

BACKOFF, STALE = 8.0, 1.5


def _children(pid: int) -> dict[int, list[str]]:
    """pid -> argv of each live child of `pid`."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
                found[int(stat.parent.name)] = [a.decode() for a in argv if a]
        except (OSError, IndexError, ValueError):
            continue
    return found


def _solve_worker(serve_pid: int) -> int:
    """The worker that takes solves: `worker -Q solve`, or the only worker there is."""
    workers = {p: a for p, a in _children(serve_pid).items() if "worker" in a}
    solving = [p for p, a in workers.items() if "archive" not in a]
    assert len(solving) == 1, workers
    return solving[0]


def _until(what: str, check: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not {what} after {timeout}s")
        time.sleep(0.1)
    return time.monotonic() - start


def test_killed_worker_is_restarted_and_health_says_degraded_meanwhile(
    tmp_path: Path, channel_url: str
) -> None:
    service = start_service(
        tmp_path,
        channel_url,
        worker_restart_backoff=str(BACKOFF),
        worker_stale_after=str(STALE),
    )
    body = {"channels": [channel_url], "dependencies": ["pyutil"], "targets": ["linux-64"]}
    try:
        with httpx.Client(base_url=service.url, timeout=30) as http:

            def health() -> dict:
                response = http.get("/api/v1/health")
                assert response.status_code == 200, response.text
                return response.json()

            _until("healthy", lambda: health()["status"] == "ok", 60)
            assert service.server and service.server.popen
            serve_pid = service.server.popen.pid
            victim = _solve_worker(serve_pid)
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()

            # No solve worker: health says so (well within the restart backoff)...
            _until("degraded", lambda: health()["status"] == "degraded", BACKOFF - 2)
            assert time.monotonic() - killed < BACKOFF, "the worker came back too early"
            detail = health()["detail"]
            assert service.env["CONDARCHIVE_QUEUE"] in detail and "no worker" in detail, detail
            # ... and a job posted now waits for the restarted worker, then succeeds.
            posted = http.post("/api/v1/solves", json={**body, "dependencies": ["numlib"]})
            assert posted.status_code == 202, posted.text
            job = wait_for_solve(http, posted.json()["id"], timeout=90)
            assert job["status"] == "succeeded", job
            assert time.monotonic() - killed >= BACKOFF - 0.5  # it was the restarted one
            _until("healthy again", lambda: health()["status"] == "ok", 30)

        log = service.logs()
        assert f"worker 'solve' (pid {victim}) was killed by SIGKILL" in log, log[-3000:]
        assert f"restarting it in {BACKOFF:g} s" in log
        assert "worker 'solve' restarted (pid" in log
        assert _solve_worker(serve_pid) != victim
        assert service.server_errors() == []
    finally:
        stop_service(service)
    # serve stopped its workers, the restarted one included.
    assert not [p for p, a in _children(serve_pid).items() if "worker" in a]


def test_sigterm_to_serve_alone_stops_its_workers(tmp_path: Path, channel_url: str) -> None:
    """What systemd or `kill PID` sends: SIGTERM to serve only, not to its process group.
    uvicorn re-raises it after its own shutdown; serve must still stop its workers."""
    service = start_service(tmp_path / "svc", channel_url)
    try:
        serve_pid = service.server.popen.pid
        _until("workers started", lambda: len(_children(serve_pid)) >= 2, 30)
        workers = [p for p, a in _children(serve_pid).items() if "worker" in a]
        assert len(workers) == 2, _children(serve_pid)
        os.kill(serve_pid, signal.SIGTERM)
        service.server.popen.wait(timeout=30)

        def gone() -> bool:
            return not any(Path(f"/proc/{pid}").exists() for pid in workers)

        _until("the workers stopped", gone, 25)
        assert service.server.popen.returncode == 0
    finally:
        stop_service(service)
