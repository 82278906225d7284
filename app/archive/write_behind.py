"""Write-behind for downloads: each download's disk writes and hashing on a thread of its own.

Every concurrent download's socket is read on one event loop. If that loop also hashed
each chunk (sha256 and md5, md5 the larger part) and fsynced each finished blob, the
downloads would take turns waiting on each other's hashing. hashlib and file I/O release
the GIL, so a thread per download lets that work run on another core while the loop keeps
reading.

Chunks are batched into 1 MiB hand-offs (a thread hop per 64 KiB socket read would cost
more than it saves), and at most `max_pending` hand-offs wait for the thread: a slow disk
then holds back the socket instead of filling memory. One thread per download keeps the
writes in order without locking.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Writes(Protocol):
    def write(self, data: bytes, /) -> object: ...


W = TypeVar("W", bound=Writes)

BATCH = 1 << 20


class WriteBehind(Generic[W]):
    """Feeds a writer (an :class:`app.archive.blobs.BlobWriter`, or any file) from the event
    loop; the writing happens on its thread.

    What the writer reports (a BlobWriter's `size` and `info()`) is only current after
    :meth:`flush`.
    """

    def __init__(self, writer: W, batch: int = BATCH, max_pending: int = 8) -> None:
        self.writer = writer
        self.batch = batch
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-writer")
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending: deque[asyncio.Future[None]] = deque()

    async def write(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= self.batch:
            await self._hand_off()

    async def _hand_off(self) -> None:
        if not self._buffer:
            return
        data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        loop = asyncio.get_running_loop()
        self._pending.append(loop.run_in_executor(self._executor, self.writer.write, data))
        while len(self._pending) > self.max_pending:
            await self._pending.popleft()

    async def flush(self) -> None:
        """Wait until every byte given to :meth:`write` is on disk and hashed."""
        await self._hand_off()
        while self._pending:
            await self._pending.popleft()

    async def call(self, function: Callable[..., T], *args: object) -> T:
        """Run `function` on the writer's thread once the pending writes are done (the
        verify-fsync-rename of a finished blob, so it does not stall the loop either)."""
        await self.flush()
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        """Stop the thread, letting a write already handed to it finish first (a cancelled
        download must not have its file closed under a write)."""
        self._buffer.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
