"""Download, verify, store: package files from upstream into the blob store.

Downloads stream in chunks straight into a :class:`~app.archive.blobs.BlobWriter` (never a whole
package in memory), several at a time. A 5xx, a dropped connection or a truncated body is
retried with exponential backoff, resuming with a Range request from the bytes already on
disk when the server answers 206. A body whose sha256, md5 or size differs from the record
is never stored; it is retried from scratch (a CDN may have served a bad copy) and, if it
stays wrong, reported with the URL and both hashes.

A slow upstream cannot hold a download forever: silence is bounded by the read timeout
(``CONDARCHIVE_ARCHIVE_TIMEOUT``), a trickle by a minimum average rate once a grace period
has passed (``CONDARCHIVE_ARCHIVE_MIN_RATE``, ``CONDARCHIVE_ARCHIVE_RATE_GRACE``), and the
whole file, every try included, by ``CONDARCHIVE_ARCHIVE_FILE_DEADLINE``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from app.archive.blobs import BlobInfo, BlobMismatch, BlobStore, BlobWriter, Expected
from app.archive.write_behind import WriteBehind
from app.config import Settings
from app.core.egress import FetchRefused, guard_hooks
from app.core.tls import ssl_context

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries in all, including the first
    backoff: float = 0.5  # seconds before the second try; doubles after each
    timeout: float = 60.0  # seconds without a byte before the try is abandoned
    min_rate: float = 0.0  # bytes/s a try must average once `rate_grace` has passed; 0: off
    rate_grace: float = 30.0  # seconds of a try before `min_rate` applies
    deadline: float = 0.0  # seconds for the whole file, every try included; 0: none

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try number `attempt` (counting from 1)."""
        return 0.0 if attempt <= 1 else self.backoff * 2 ** (attempt - 2)


def policy_from(settings: Settings) -> RetryPolicy:
    """The archive's download policy (workers and the pull-through proxy alike)."""
    return RetryPolicy(
        attempts=settings.archive_attempts,
        backoff=settings.archive_backoff,
        timeout=settings.archive_timeout,
        min_rate=settings.archive_min_rate,
        rate_grace=settings.archive_rate_grace,
        deadline=settings.archive_file_deadline,
    )


class FetchError(Exception):
    """A file that could not be archived: the URL, why, and the hashes when they differed."""

    def __init__(
        self,
        url: str,
        reason: str,
        permanent: bool = False,
        expected: Expected | None = None,
        actual: BlobInfo | None = None,
    ) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.permanent = permanent
        self.expected = expected
        self.actual = actual


class _Retry(Exception):
    """This try failed in a way another try may not."""


class _RateCheck:
    """Fails a try whose body trickles in below ``policy.min_rate`` after the grace period."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = asyncio.get_running_loop().time()
        self.received = 0

    def add(self, count: int) -> None:
        self.received += count
        if self.policy.min_rate <= 0:
            return
        elapsed = asyncio.get_running_loop().time() - self.started
        if elapsed > self.policy.rate_grace and self.received < self.policy.min_rate * elapsed:
            raise _Retry(
                f"too slow: {self.received} bytes in {elapsed:.1f}s is under "
                f"CONDARCHIVE_ARCHIVE_MIN_RATE={self.policy.min_rate:g} bytes/s"
            )


#: Bytes asked of the socket per read while downloading (httpcore ships 64 KiB).
READ_BYTES = 1 << 20


def read_large_chunks(read_bytes: int = READ_BYTES) -> None:
    """Let httpcore read up to `read_bytes` from a socket at once, in this process.

    httpcore reads 64 KiB at a time, and each read travels through h11, anyio and
    httpx's stream in Python: on a fast mirror of large packages those trips take a large
    share of an archive run. A read returns what the socket holds and never waits for
    more, so a larger limit only means fewer trips when data is plentiful. httpcore has no
    per-client setting, so this sets its class attribute (public, and process-wide: the
    archive worker and the pull-through proxy call it as they make the client that
    fetches package files; any other httpx request in those processes reads the same
    way, which changes how many trips it takes, not what it gets).
    """
    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = read_bytes


def make_client(policy: RetryPolicy, concurrency: int) -> httpx.AsyncClient:
    """Requests and redirects stay inside the allowlist (app/core/egress.py)."""
    read_large_chunks()
    limits = httpx.Limits(max_connections=max(concurrency, 1) * 2)
    timeout = httpx.Timeout(policy.timeout, connect=min(policy.timeout, 15.0))
    return httpx.AsyncClient(
        timeout=timeout,
        limits=limits,
        follow_redirects=True,
        event_hooks=guard_hooks(),
        verify=ssl_context(),
    )


async def _download_once(
    client: httpx.AsyncClient,
    url: str,
    sink: WriteBehind[BlobWriter],
    size: int | None,
    policy: RetryPolicy | None = None,
) -> None:
    """One GET into `sink`, resuming from what it already holds where the server allows.

    Every byte received is flushed to the writer before this returns or raises, so the
    writer's size is the offset a retry resumes from.
    """
    try:
        await _stream_once(client, url, sink, size, _RateCheck(policy or RetryPolicy()))
    finally:
        await sink.flush()
    if size is not None and sink.writer.size < size:
        raise _Retry(f"truncated: got {sink.writer.size} of {size} bytes")


async def _stream_once(
    client: httpx.AsyncClient,
    url: str,
    sink: WriteBehind[BlobWriter],
    size: int | None,
    rate: _RateCheck,
) -> None:
    writer = sink.writer
    headers = {"Accept-Encoding": "identity"}
    offset = writer.size
    if offset and (size is None or offset < size):
        headers["Range"] = f"bytes={offset}-"
    elif offset:
        return  # already have every byte; the caller verifies them
    async with client.stream("GET", url, headers=headers) as response:
        status = response.status_code
        if status == 206 and offset:
            content_range = response.headers.get("content-range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                writer.restart()
                raise _Retry(f"server answered Range {headers['Range']} with {content_range!r}")
        elif status == 200:
            if offset:
                writer.restart()  # the server ignored Range: start over
        elif status in RETRY_STATUSES:
            raise _Retry(f"upstream answered HTTP {status}")
        else:
            raise FetchError(url, f"upstream answered HTTP {status}", permanent=True)
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        chunks = response.aiter_bytes() if encoded else response.aiter_raw()
        async for chunk in chunks:
            await sink.write(chunk)
            rate.add(len(chunk))
        await sink.flush()
        if encoded and writer.size != size:
            writer.restart()  # an encoded body cannot be resumed by byte offset


async def fetch_to_store(
    client: httpx.AsyncClient,
    url: str,
    expected: Expected,
    store: BlobStore,
    policy: RetryPolicy,
) -> tuple[BlobInfo, bool]:
    """Download `url` into `store` if its bytes match `expected`; return (info, created).

    Raises :class:`FetchError` when every try failed; nothing is stored then.
    """
    with store.writer(expected) as writer:
        sink = WriteBehind(writer)
        try:
            return await _fetch_tries(client, url, expected, store, policy, sink)
        finally:
            sink.close()


async def _fetch_tries(
    client: httpx.AsyncClient,
    url: str,
    expected: Expected,
    store: BlobStore,
    policy: RetryPolicy,
    sink: WriteBehind[BlobWriter],
) -> tuple[BlobInfo, bool]:
    """Try, back off, resume: the retry loop of :func:`fetch_to_store`."""
    reason = "no attempt made"
    mismatch: BlobMismatch | None = None
    writer = sink.writer
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.deadline if policy.deadline > 0 else None
    for attempt in range(1, max(policy.attempts, 1) + 1):
        await asyncio.sleep(policy.delay(attempt))
        try:
            async with asyncio.timeout_at(deadline):
                await _download_once(client, url, sink, expected.size, policy)
        except TimeoutError as exc:
            raise FetchError(
                url,
                f"not done within CONDARCHIVE_ARCHIVE_FILE_DEADLINE={policy.deadline:g}s "
                f"(try {attempt}; {writer.size} bytes received)",
                permanent=True,
            ) from exc
        except _Retry as exc:
            reason = str(exc)
            log.info("%s: try %d failed (%s)", url, attempt, reason)
            continue
        except FetchRefused as exc:
            raise FetchError(url, str(exc), permanent=True) from exc
        except httpx.TransportError as exc:
            reason = f"{type(exc).__name__}: {exc or 'connection failed'}"
            log.info("%s: try %d failed (%s)", url, attempt, reason)
            continue
        try:
            return await sink.call(store.put_from_tempfile, writer, expected)
        except BlobMismatch as exc:
            mismatch = exc
            reason = str(BlobMismatch(exc.expected, exc.actual))
            log.warning("%s: try %d: %s", url, attempt, reason)
            writer.restart()
    if mismatch is not None and reason.startswith("hash mismatch"):
        raise FetchError(url, reason, True, mismatch.expected, mismatch.actual)
    raise FetchError(url, f"gave up after {policy.attempts} tries: {reason}")


@dataclass(frozen=True)
class Download:
    """One file to archive; `key` is the caller's handle for it (a package id)."""

    key: Any
    url: str
    expected: Expected


@dataclass(frozen=True)
class Outcome:
    download: Download
    info: BlobInfo | None = None
    created: bool = False
    error: FetchError | None = None


async def mirror(
    downloads: Sequence[Download],
    store: BlobStore,
    policy: RetryPolicy,
    concurrency: int,
    on_done: Callable[[Outcome], Awaitable[None] | None] | None = None,
    client: httpx.AsyncClient | None = None,
) -> list[Outcome]:
    """Fetch every download, `concurrency` at a time; report each as it finishes."""
    semaphore = asyncio.Semaphore(max(concurrency, 1))
    own_client = client is None
    http = client or make_client(policy, concurrency)

    async def one(download: Download) -> Outcome:
        async with semaphore:
            try:
                info, created = await fetch_to_store(
                    http, download.url, download.expected, store, policy
                )
                outcome = Outcome(download, info, created)
            except FetchError as exc:
                outcome = Outcome(download, error=exc)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest
                log.exception("archiving %s failed unexpectedly", download.url)
                outcome = Outcome(download, error=FetchError(download.url, repr(exc)))
        if on_done is not None:
            result = on_done(outcome)
            if asyncio.iscoroutine(result):
                await result
        return outcome

    try:
        return list(await asyncio.gather(*(one(d) for d in downloads)))
    finally:
        if own_client:
            await http.aclose()
