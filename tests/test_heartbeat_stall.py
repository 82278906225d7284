"""No solve waits on its own heartbeat (issue #14, item 4).

On SQLite the job's session holds the write lock from store_lock() until succeed()
commits. A progress UPDATE the heartbeat thread was still sending then waited on that
lock, and the job waited on the thread (Heartbeat.__exit__ joins it for up to 10 s): a
10 s stall, then a false "its lease ran out" warning once the job had ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import InProcessClient, inprocess_service
from tests.support.service import submit_and_wait

TARGETS = [
    "linux-64",
    "osx-arm64",
    "linux-64-cuda12",
    {"name": "gpu", "platform": "linux-64", "virtual_packages": ["__cuda=12.4"]},
    {"name": "old-gpu", "platform": "linux-64", "virtual_packages": ["__cuda=11.8"]},
]


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory, channel_url: str) -> Iterator[InProcessClient]:
    """SQLite, tasks inline, and no dedupe window: every identical request solves again."""
    workdir: Path = tmp_path_factory.mktemp("heartbeat")
    with (
        inprocess_service(workdir, channel_url, dedupe_window="0") as service,
        service.client() as client,
    ):
        yield client


def test_multi_target_solves_never_stall_on_their_heartbeat(
    http: InProcessClient, channel_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"channels": [channel_url], "dependencies": ["torchlike", "fftlike"], "targets": TARGETS}
    submit_and_wait(http, body)  # the repodata is fetched once, before the timed solves
    caplog.set_level(logging.WARNING, logger="app.jobs.heartbeat")
    times = []
    for _ in range(20):
        started = time.monotonic()
        job = submit_and_wait(http, body)
        times.append(time.monotonic() - started)
        assert job["status"] == "succeeded", job
    lost = [r.getMessage() for r in caplog.records if "no longer holds it" in r.getMessage()]
    assert lost == [], lost
    assert max(times) < 5, [f"{t:.2f}" for t in times]
