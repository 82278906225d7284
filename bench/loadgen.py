"""A concurrent HTTP/1.1 load generator bounded in request count and in time.

Latency is measured per request from send to last byte read; throughput is completed
requests over the wall time of the whole run. It runs in the benchmark process on the
same 2 cores as the server, so its own CPU use is part of what the numbers include; the
baseline endpoint is measured the same way, which keeps the comparison fair.

It speaks HTTP/1.1 over keep-alive asyncio streams itself instead of using httpx: an
httpx request costs the client about as much CPU as the server spends answering a cached
read, so with httpx the figure measured the client as much as the service (the load
generator shares the 2 cores). What it parses is what our server sends: a status line,
headers, and a body framed by Content-Length or chunked encoding.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.measure import now, percentile


@dataclass
class LoadResult:
    """Latencies (seconds) of the requests that completed, and how the run went."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    concurrency: int = 1

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def p(self, pct: float) -> float:
        return percentile(self.latencies, pct)

    def summary(self) -> dict[str, float | int | dict[int, int]]:
        return {
            "requests": self.count,
            "concurrency": self.concurrency,
            "seconds": round(self.elapsed, 3),
            "per_second": round(self.per_second, 1),
            "p50_ms": round(self.p(50) * 1000, 2),
            "p99_ms": round(self.p(99) * 1000, 2),
            "statuses": self.statuses,
        }


class Connection:
    """One keep-alive HTTP/1.1 connection that sends one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, head: bytes, body: bytes | None) -> tuple[int, bytes]:
        self.writer.write(head + body if body else head)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked = None, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            return status, await self._chunks()
        return status, await self.reader.readexactly(length or 0)

    async def _chunks(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self.reader.readline()
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()

    def close(self) -> None:
        self.writer.close()


def _head(method: str, url: str, body: bytes | None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Accept: */*"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head


async def _load(
    url: str,
    method: str,
    body: bytes | None,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    result = LoadResult(concurrency=concurrency)
    host, port, head = _head(method, url, body)
    connections = [await Connection.open(host, port) for _ in range(concurrency)]
    try:
        # One request per connection first, so connection set-up is not timed.
        await asyncio.gather(*(c.request(head, body) for c in connections))
        issued = 0
        start = now()
        deadline = start + max_seconds

        async def user(connection: Connection) -> None:
            nonlocal issued
            while issued < max_requests and now() < deadline:
                issued += 1
                sent = now()
                status, _ = await connection.request(head, body)
                result.latencies.append(now() - sent)
                result.statuses[status] = result.statuses.get(status, 0) + 1

        await asyncio.gather(*(user(c) for c in connections))
        result.elapsed = now() - start
    finally:
        for connection in connections:
            connection.close()
    return result


def load(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    concurrency: int = 1,
    max_requests: int = 100,
    max_seconds: float = 10.0,
) -> LoadResult:
    """Send up to `max_requests` requests, `concurrency` at a time, for at most `max_seconds`."""
    return asyncio.run(_load(url, method, body, concurrency, max_requests, max_seconds))
