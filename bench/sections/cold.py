"""Figure 4: the first solve against a channel no worker has seen, against downloading it.

Each measurement uses a channel URL never requested before (a symlinked alias on the
static server), so neither the worker's in-memory Gateway nor its on-disk cache nor
the bare solver's cache has it. The download baseline fetches the same
``repodata.json`` files concurrently with httpx and does nothing else with them; the
bare cold solve (a fresh Gateway in this process) shows what py-rattler itself needs
to fetch, parse and solve.
"""

from __future__ import annotations

import asyncio
import itertools

import httpx

from bench.bare import BareSolver
from bench.context import Context
from bench.figures import Figure, SectionResult
from bench.measure import mb, median, ms, now
from bench.stack import unique_target
from bench.static_server import alias
from bench.workload import Case

_aliases = itertools.count()


def _fresh(ctx: Context, channel: str) -> str:
    return alias(ctx.workload.root, channel, f"{channel}-cold{next(_aliases)}")


async def _download(urls: list[str]) -> int:
    async with httpx.AsyncClient(timeout=120) as client:
        responses = await asyncio.gather(*(client.get(u) for u in urls))
    for response in responses:
        response.raise_for_status()
    return sum(len(r.content) for r in responses)


def _subdir_urls(ctx: Context, channels: tuple[str, ...]) -> list[str]:
    return [
        f"{u}/{s}/repodata.json"
        for u in ctx.workload.urls(channels)
        for s in ("linux-64", "noarch")
    ]


def measure(ctx: Context, case: Case) -> Figure:
    service: list[float] = []
    download: list[float] = []
    bare: list[float] = []
    size = 0
    for _ in range(ctx.config.cold_repeats):
        fresh = tuple(_fresh(ctx, c) for c in case.channels)
        start = now()
        size = asyncio.run(_download(_subdir_urls(ctx, fresh)))
        download.append(now() - start)

        fresh = tuple(_fresh(ctx, c) for c in case.channels)
        cache = ctx.workdir / f"bare-cold-{next(_aliases)}"
        seconds, _ = BareSolver(cache).solve(
            ctx.workload.urls(fresh), list(case.specs), ["linux-64"]
        )
        bare.append(seconds)

        fresh = tuple(_fresh(ctx, c) for c in case.channels)
        cold = Case(case.label, fresh, case.specs, case.satisfiable)
        service.append(ctx.solve(cold, [unique_target("linux-64")]).total)
    first, floor = median(service), median(download)
    return Figure(
        label=f"{case.label} ({mb(size)} repodata)",
        measured=ms(first),
        baseline=f"download {ms(floor)}",
        value=first / floor,
        unit="×",
        detail={
            "service_s": [round(x, 4) for x in service],
            "download_s": [round(x, 4) for x in download],
            "bare_cold_s": [round(x, 4) for x in bare],
            "bare_cold_median_s": round(median(bare), 4),
            "repodata_bytes": size,
        },
    )


def run(ctx: Context, result: SectionResult) -> None:
    ctx.stack.set_workers(1)
    if ctx.workload.has_realdata:
        result.figures.append(measure(ctx, ctx.workload.heavy_case()))
    else:
        result.notes.append("real-data case skipped: ../shared/realdata is absent")
    result.figures.append(measure(ctx, ctx.workload.synthetic_case()))
    result.notes.append(
        "no goal set; value = first solve / plain download. "
        "detail.bare_cold_s is a fresh py-rattler Gateway doing the same first solve."
    )
