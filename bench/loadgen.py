"""A concurrent HTTP load generator (httpx, asyncio) bounded in request count and in time.

Latency is measured per request from send to last byte read; throughput is completed
requests over the wall time of the whole run. It runs in the benchmark process on the
same 2 cores as the server, so its own CPU use is part of what the numbers include;
the baseline endpoint is measured the same way, which keeps the comparison fair.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

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


async def _load(
    url: str,
    method: str,
    body: bytes | None,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    result = LoadResult(concurrency=concurrency)
    headers = {"content-type": "application/json"} if body is not None else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    issued = 0
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        # One request per connection first, so connection set-up is not timed.
        await asyncio.gather(
            *(
                client.request(method, url, content=body, headers=headers)
                for _ in range(concurrency)
            )
        )
        start = now()
        deadline = start + max_seconds

        async def user() -> None:
            nonlocal issued
            while issued < max_requests and now() < deadline:
                issued += 1
                sent = now()
                response = await client.request(method, url, content=body, headers=headers)
                await response.aread()
                result.latencies.append(now() - sent)
                result.statuses[response.status_code] = (
                    result.statuses.get(response.status_code, 0) + 1
                )

        await asyncio.gather(*(user() for _ in range(concurrency)))
        result.elapsed = now() - start
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
