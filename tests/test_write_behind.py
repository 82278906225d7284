"""Write-behind for archive downloads (app/archive/write_behind.py): order, hashes, back-pressure.

The archive tests cover it end to end (resume, truncation, mismatch, a killed worker);
these pin what those cannot see: bytes arrive in order whatever the chunking, and a slow
disk holds the socket back instead of queueing the file in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from pathlib import Path

from app.archive.blobs import BlobWriter
from app.archive.write_behind import WriteBehind


def test_bytes_and_hashes_are_those_written_in_order(tmp_path: Path) -> None:
    rng = random.Random(7)
    chunks = [rng.randbytes(rng.choice((1, 17, 4096, 65536, 200_000))) for _ in range(300)]
    whole = b"".join(chunks)

    async def feed() -> BlobWriter:
        writer = BlobWriter(tmp_path / "blob.part")
        sink = WriteBehind(writer, batch=100_000, max_pending=3)
        try:
            for chunk in chunks:
                await sink.write(chunk)
            await sink.flush()
            writer.sync()
            return writer
        finally:
            sink.close()

    writer = asyncio.run(feed())
    info = writer.info()
    writer.close()
    assert (tmp_path / "blob.part").read_bytes() == whole
    assert info.sha256 == hashlib.sha256(whole).hexdigest()
    assert info.md5 == hashlib.md5(whole).hexdigest()
    assert info.size == writer.size == len(whole)


class SlowWriter(BlobWriter):
    """A disk that takes 50 ms per write."""

    def write(self, data: bytes) -> None:
        time.sleep(0.05)
        super().write(data)


def test_a_slow_disk_holds_the_reader_back(tmp_path: Path) -> None:
    """With 2 hand-offs allowed to wait, the 10th write cannot return before the 7th is
    on disk: memory stays bounded by `max_pending` batches."""

    async def feed() -> list[float]:
        writer = SlowWriter(tmp_path / "slow.part")
        sink = WriteBehind(writer, batch=1, max_pending=2)
        returned = []
        start = time.monotonic()
        try:
            for _ in range(10):
                await sink.write(b"x" * 1024)
                returned.append(time.monotonic() - start)
            await sink.flush()
        finally:
            sink.close()
            writer.discard()
        return returned

    returned = asyncio.run(feed())
    assert returned[1] < 0.04  # the first hand-offs do not wait for the disk
    assert returned[-1] >= 6 * 0.05  # later ones do


def test_close_after_a_cancelled_download_leaves_no_write_running(tmp_path: Path) -> None:
    async def feed() -> None:
        writer = SlowWriter(tmp_path / "cancelled.part")
        sink = WriteBehind(writer, batch=1, max_pending=4)

        async def download() -> None:
            while True:
                await sink.write(b"y" * 1024)

        task = asyncio.create_task(download())
        await asyncio.sleep(0.1)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        sink.close()  # waits for the write in progress; queued ones are dropped
        size = writer.size
        time.sleep(0.05)
        assert writer.size == size  # nothing is still writing
        writer.discard()

    asyncio.run(feed())
    assert not (tmp_path / "cancelled.part").exists()
