"""Figure 5: archiving a lock's packages against a plain concurrent download of the same files.

The lock covers generated packages of 1 MB to 100 MB (random, incompressible bytes) and
the real package archives from ../shared/realdata, served on 127.0.0.1. The service
downloads, verifies (sha256, md5, size) and stores each file; the baseline downloads
the same URLs with httpx, as many at a time as the archive does, straight to disk with
no verification. Throughput is bytes over wall time, from the POST to the archive
reporting ``archived``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from bench.context import Context
from bench.figures import Figure, Goal, SectionResult, Skip
from bench.measure import mb, median, now
from bench.packages import archive_channel
from bench.paths import REALDATA
from bench.stack import unique_target
from bench.workload import Case

GOAL = Goal(">=", 0.8, "× plain")
ARCHIVE_PATH = "/api/v1/locks/{lock_id}/archive"
CONCURRENCY = 4  # the archive's default CONDARCHIVE_ARCHIVE_CONCURRENCY, pinned in context.py


def api_available(ctx: Context) -> bool:
    paths = ctx.stack.http.get("/openapi.json").json().get("paths", {})
    return "post" in paths.get(ARCHIVE_PATH, {}) and "get" in paths.get(ARCHIVE_PATH, {})


async def _plain(urls: list[str], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(client: httpx.AsyncClient, url: str) -> int:
        async with gate, client.stream("GET", url) as response:
            response.raise_for_status()
            written = 0
            with (out / url.rsplit("/", 1)[-1]).open("wb") as file:
                async for chunk in response.aiter_raw(1 << 20):
                    written += file.write(chunk)
            return written

    async with httpx.AsyncClient(timeout=120) as client:
        return sum(await asyncio.gather(*(one(client, u) for u in urls)))


def plain_download(ctx: Context, urls: list[str], n: int) -> tuple[float, int]:
    start = now()
    size = asyncio.run(_plain(urls, ctx.workdir / f"plain-{n}"))
    return now() - start, size


def archive(ctx: Context, lock_id: str) -> tuple[float, dict[str, Any]]:
    path = ARCHIVE_PATH.format(lock_id=lock_id)
    start = now()
    response = ctx.stack.http.post(path)
    if response.status_code not in (200, 202):
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text}")
    deadline = time.monotonic() + ctx.config.job_timeout
    while time.monotonic() < deadline:
        view = ctx.stack.http.get(path).json()
        if view["status"] in ("archived", "failed"):
            return now() - start, view
        time.sleep(0.02)
    raise TimeoutError(f"archive of {lock_id} not done after {ctx.config.job_timeout}s")


def run(ctx: Context, result: SectionResult) -> None:
    ctx.stack.set_workers(1)
    if not api_available(ctx):
        raise Skip("archive API not available (no POST/GET /api/v1/locks/{id}/archive)")
    real = REALDATA if ctx.workload.has_realdata else None
    if real is None:
        result.notes.append("real package archives skipped: ../shared/realdata is absent")
    sizes = ctx.config.archive_sizes
    specs = archive_channel(ctx.workload.root / "archivechan", sizes, real)
    case = Case("archive", ("archivechan",), tuple(specs))
    job = ctx.solve(case, [unique_target("linux-64")])
    lock = ctx.stack.http.get(f"/api/v1/locks/{job.lock_id}").json()
    urls = [p["url"] for t in lock["targets"].values() for p in t["packages"]]
    plain = [plain_download(ctx, urls, 0)]
    seconds, view = archive(ctx, job.lock_id)
    plain.append(plain_download(ctx, urls, 1))
    if view["status"] != "archived":
        raise RuntimeError(f"archive ended {view['status']}: {view.get('summary')}")
    size = plain[0][1]
    service_rate = size / seconds
    plain_rate = size / median([p[0] for p in plain])
    result.figures.append(
        Figure(
            label=(
                f"{len(urls)} packages, {mb(size)}: generated {mb(min(sizes))} to "
                f"{mb(max(sizes))}{' + real' if real else ''}"
            ),
            measured=f"{service_rate / 2**20:.0f} MB/s",
            baseline=f"plain {plain_rate / 2**20:.0f} MB/s",
            value=service_rate / plain_rate,
            unit="× plain",
            goal=GOAL,
            detail={
                "bytes": size,
                "archive_s": round(seconds, 3),
                "plain_s": [round(p[0], 3) for p in plain],
                "summary": view.get("summary"),
            },
        )
    )
    result.notes.append(f"both sides fetch {CONCURRENCY} files at a time")
