"""Figure 2: four targets in one request against one target, on 2 cores.

The worker solves a request's targets concurrently (py-rattler solves off the GIL), so
four should cost well under four times one. The real ``main`` snapshot has one full
platform (linux-64), so the four targets are the ones a user locks for one platform
family: the default, a newer glibc, CUDA 12 and a newer kernel, each a separate solve.
The bare baseline runs the same four ``rattler.solve`` calls with ``asyncio.gather``.
"""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.figures import Figure, Goal, SectionResult
from bench.measure import median, ms
from bench.stack import unique_target

GOAL = Goal("<=", 2.5, "×")
VARIANTS: tuple[list[str], ...] = (
    [],
    ["__glibc=2.28"],
    ["__cuda=12.4"],
    ["__linux=6.1", "__glibc=2.35"],
)


def four_targets() -> list[dict[str, Any]]:
    return [unique_target("linux-64", list(v)) for v in VARIANTS]


def run(ctx: Context, result: SectionResult) -> None:
    ctx.stack.set_workers(1)
    case = ctx.workload.heavy_case()
    result.notes += ctx.workload.fallback_notes()
    urls, specs = ctx.workload.urls(case.channels), list(case.specs)
    bare_targets: list[str | dict[str, Any]] = [
        {"name": f"v{i}", "platform": "linux-64", "virtual_packages": list(v)}
        for i, v in enumerate(VARIANTS)
    ]
    ctx.bare.solve(urls, specs, bare_targets)
    ctx.solve(case, four_targets())
    one: list[float] = []
    four: list[float] = []
    bare_one: list[float] = []
    bare_four: list[float] = []
    for _ in range(ctx.config.repeats):
        bare_one.append(ctx.bare.solve(urls, specs, ["linux-64"])[0])
        bare_four.append(ctx.bare.solve(urls, specs, bare_targets)[0])
        one.append(ctx.solve(case, [unique_target("linux-64")]).total)
        four.append(ctx.solve(case, four_targets()).total)
    ratio = median(four) / median(one)
    bare_ratio = median(bare_four) / median(bare_one)
    result.figures.append(
        Figure(
            label=f"{case.label}: 4 targets / 1 target",
            measured=f"{ms(median(four))} / {ms(median(one))}",
            baseline=f"bare {bare_ratio:.2f}×",
            value=ratio,
            unit="×",
            goal=GOAL,
            detail={
                "one_s": [round(x, 5) for x in one],
                "four_s": [round(x, 5) for x in four],
                "bare_one_s": [round(x, 5) for x in bare_one],
                "bare_four_s": [round(x, 5) for x in bare_four],
                "bare_ratio": round(bare_ratio, 3),
            },
        )
    )
    result.notes.append(f"measured as {ratio:.2f}× (service) against {bare_ratio:.2f}× (bare)")
