"""Package downloads with large socket reads: whole files, resumed where a server cut them.

The archive lets httpcore read up to 1 MiB per socket read (app/archive/download.py). The
test channels' packages are a few KB, so this serves multi-MiB files over real HTTP and
cuts one mid-body, which a read larger than httpcore's 64 KiB must survive as well.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import httpcore
import pytest

from app.archive.blobs import Expected, FilesystemStore
from app.archive.download import READ_BYTES, Download, RetryPolicy, mirror
from app.config import get_settings
from tests.support.channel_server import ChannelServer

SIZE = 5 * READ_BYTES + 12_345


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChannelServer]:
    server = ChannelServer(tmp_path / "upstream").start()
    # Put httpcore's read size back afterwards: it is process-wide.
    read = httpcore.AsyncHTTP11Connection.READ_NUM_BYTES
    monkeypatch.setattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES", read)
    monkeypatch.setenv("CONDARCHIVE_ALLOWED_CHANNELS", server.url)
    get_settings.cache_clear()
    try:
        yield server
    finally:
        server.stop()
        monkeypatch.undo()
        get_settings.cache_clear()


def package(server: ChannelServer, name: str, seed: int) -> tuple[str, bytes]:
    data = random.Random(seed).randbytes(SIZE)
    path = server.root / "chan" / "noarch" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"{server.url}/chan/noarch/{name}", data


def expected(data: bytes) -> Expected:
    return Expected(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), len(data))


def test_large_files_arrive_whole_and_a_cut_one_resumes(
    server: ChannelServer, tmp_path: Path
) -> None:
    whole_url, whole = package(server, "whole-1.0-0.conda", 1)
    cut_url, cut = package(server, "cut-1.0-0.conda", 2)
    server.cutoffs["/chan/noarch/cut-1.0-0.conda"] = SIZE // 2 + 1
    store = FilesystemStore(tmp_path / "store")
    downloads = [Download(1, whole_url, expected(whole)), Download(2, cut_url, expected(cut))]

    outcomes = asyncio.run(mirror(downloads, store, RetryPolicy(backoff=0.01), 2))

    assert httpcore.AsyncHTTP11Connection.READ_NUM_BYTES == READ_BYTES
    for outcome, data in zip(outcomes, (whole, cut), strict=True):
        assert outcome.error is None and outcome.info is not None
        assert outcome.info.sha256 == hashlib.sha256(data).hexdigest()
        assert store.hash_blob(outcome.info.sha256) == outcome.info  # the bytes on disk
    assert [path for path, _ in server.ranges] == ["/chan/noarch/cut-1.0-0.conda"]
