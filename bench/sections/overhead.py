"""Figure 1: what the queue, database and serialisation add to a solve (warm repodata).

Each case is solved once on both sides to warm them, then alternately by the bare
solver in this process and through the service (POST to the job's finished_at), so
both see the same machine noise. Every service job has a fresh target name: the
request hash differs (no dedupe), the solve is the same.
"""

from __future__ import annotations

import time

from bench import floor as design_floor
from bench.context import Context
from bench.figures import Figure, Goal, SectionResult
from bench.measure import median, ms, proc_cpu
from bench.stack import JobTiming, unique_target
from bench.workload import OVERHEAD_CASES, Case

GOAL = Goal("<=", 1.3, "×")


def measure_case(ctx: Context, case: Case) -> Figure:
    urls = ctx.workload.urls(case.channels)
    specs = list(case.specs)
    ctx.bare.solve(urls, specs, ["linux-64"])
    ctx.solve(case, [unique_target("linux-64")])
    bare: list[float] = []
    jobs: list[JobTiming] = []
    pids = {"api": ctx.stack.server_pid, "worker": ctx.stack.worker_pids[0]}
    cpu = {name: -proc_cpu(pid) for name, pid in pids.items()}
    cpu["bare"] = 0.0
    for _ in range(ctx.config.repeats):
        cpu_start = time.process_time()
        seconds, solved = ctx.bare.solve(urls, specs, ["linux-64"])
        cpu["bare"] += time.process_time() - cpu_start
        if solved != case.satisfiable:
            raise RuntimeError(f"{case.label}: bare solve solved={solved}")
        bare.append(seconds)
        jobs.append(ctx.solve(case, [unique_target("linux-64")]))
    for name, pid in pids.items():
        cpu[name] += proc_cpu(pid)
    service = median([j.total for j in jobs])
    floor = median(bare)
    return Figure(
        label=case.label,
        measured=ms(service),
        baseline=ms(floor),
        value=service / floor,
        unit="×",
        goal=GOAL,
        detail={
            "service_s": [round(j.total, 5) for j in jobs],
            "bare_s": [round(b, 5) for b in bare],
            "added_ms": round((service - floor) * 1000, 1),
            "median_api_ms": round(median([j.api for j in jobs]) * 1000, 2),
            "median_queue_ms": round(median([j.queued for j in jobs]) * 1000, 2),
            "median_worker_ms": round(median([j.worker for j in jobs]) * 1000, 2),
            **{f"{k}_cpu_ms_per_job": round(v / len(jobs) * 1000, 1) for k, v in cpu.items()},
        },
    )


def floor_figures(ctx: Context, cases: list[Figure]) -> list[Figure]:
    """The design's floor (bench/floor.py), and for each case the best ratio it allows."""
    found = design_floor.measure(ctx.stack, ctx.workdir, min(ctx.config.latency_requests, 100))
    parts = [
        ("floor: HTTP round trip to the API (GET /api/v1/health)", found.http),
        ("floor: Celery message via Redis to a solo worker (send → task starts)", found.celery),
        ("floor: Postgres INSERT + COMMIT of one row", found.commit),
    ]
    figures = [Figure(label, ms(seconds), "", seconds * 1000, "ms") for label, seconds in parts]
    for figure in cases:
        bare = median(figure.detail["bare_s"])
        figure.detail["floor_ms"] = round(found.total * 1000, 2)
        figure.detail["best_ratio_at_floor"] = round((bare + found.total) / bare, 2)
        figure.baseline += f" (floor allows {figure.detail['best_ratio_at_floor']:.2f}×)"
    total = "floor in all: 1 request + 1 message + 3 commits (job, claim, result)"
    figures.append(Figure(total, ms(found.total), "", found.total * 1000, "ms"))
    return figures


def run(ctx: Context, result: SectionResult) -> None:
    ctx.stack.set_workers(1)
    if ctx.workload.has_realdata:
        for case in OVERHEAD_CASES:
            result.figures.append(measure_case(ctx, case))
    else:
        result.notes.append("real-data cases skipped: ../shared/realdata is absent")
    result.figures.append(measure_case(ctx, ctx.workload.synthetic_case()))
    try:
        result.figures += floor_figures(ctx, list(result.figures))
    except Exception as exc:  # noqa: BLE001 - the cases above stand without it
        result.notes.append(f"floor not measured: {type(exc).__name__}: {exc}")
    else:
        ratios = ", ".join(
            f"{f.label}: {f.detail['best_ratio_at_floor']:.2f}×"
            for f in result.figures
            if "bare_s" in f.detail
        )
        result.notes.append(
            "floor: what the parts the design requires cost alone, with none of our code "
            "(bench/floor.py); a job needs at least one request, one message and three "
            f"commits. With our own code at zero cost the ratios would be: {ratios}."
        )
    result.notes.append(
        "value = median(POST → finished_at) / median(bare rattler.solve); "
        "detail splits the service time into api (POST → committed), queue "
        "(committed → claimed) and worker (claimed → finished), and gives CPU ms per job "
        "of the API and worker processes and of the bare solve (robust to a busy machine)."
    )
