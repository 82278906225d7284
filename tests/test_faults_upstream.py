"""Upstream channels fail: transient 5xx on repodata are retried, lasting ones are reported.

py-rattler's Gateway, left to its own client, does not retry: one 503 on the repodata
index failed the job. The worker now gives it py-rattler's standard client, which retries
5xx, timeouts and connection resets with backoff (CONDARCHIVE_REPODATA_RETRIES). That
client does not retry a body cut short, so the solver tries such a target again itself.
What still fails is reported as kind ``channel`` with the URL and the status. Package
downloads have their own retries (app/archive/download.py, tests/test_archive_integrity.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.channel_server import ChannelServer
from tests.support.service import submit_and_wait

INDEX = "linux-64/repodata_shards.msgpack.zst"  # the first repodata a solve GETs


@pytest.fixture
def fresh_channel(channel_server: ChannelServer) -> Iterator[str]:
    """An alias of the test channel that no worker has cached yet."""
    name = f"flaky-{uuid.uuid4().hex[:8]}"
    (channel_server.root / name).symlink_to(channel_server.root / "testchan")
    yield name


def body(channel_server: ChannelServer, name: str) -> dict:
    return {
        "channels": [channel_server.channel_url(name)],
        "dependencies": ["numlib"],
        "targets": ["linux-64"],
    }


def gets(channel_server: ChannelServer, path: str) -> int:
    return sum(1 for method, p in channel_server.requests if method == "GET" and p == path)


def test_transient_5xx_on_repodata_is_retried(
    client: httpx.Client, channel_server: ChannelServer, fresh_channel: str
) -> None:
    path = f"/{fresh_channel}/{INDEX}"
    channel_server.flaky[path] = [503, 502]
    job = submit_and_wait(client, body(channel_server, fresh_channel))
    assert job["status"] == "succeeded", job
    assert gets(channel_server, path) == 3  # two failures, then the answer


def test_lasting_5xx_on_repodata_fails_naming_url_and_status(
    client: httpx.Client, channel_server: ChannelServer, fresh_channel: str
) -> None:
    path = f"/{fresh_channel}/{INDEX}"
    channel_server.faults[path] = 503
    try:
        job = submit_and_wait(client, body(channel_server, fresh_channel))
    finally:
        del channel_server.faults[path]
    assert job["status"] == "failed", job
    error = job["error"]
    assert error["kind"] == "channel"
    assert error["detail"]["status"] == 503
    assert error["detail"]["url"] == f"{channel_server.url}{path}"
    assert "503" in error["message"] and fresh_channel in error["message"]
    assert gets(channel_server, path) == 4  # the first try and three retries


def test_truncated_repodata_is_retried(
    client: httpx.Client, channel_server: ChannelServer, fresh_channel: str
) -> None:
    path = f"/{fresh_channel}/{INDEX}"
    channel_server.cutoffs[path] = 10  # the connection drops after 10 bytes, once
    job = submit_and_wait(client, body(channel_server, fresh_channel))
    assert job["status"] == "succeeded", job
    assert gets(channel_server, path) == 2  # cut short once, then whole
