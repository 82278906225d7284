"""Figure 7: jobs per second through the queue with one worker, then two (distributed).

A batch of distinct jobs (fresh target names: no dedupe, identical solves) is posted
as fast as one client can, and the rate is jobs over the time from the first POST to
the last ``finished_at``. Workers are warmed first, each with its own Gateway. The
ceiling beside it is the bare solver's rate in one process, one solve at a time.
"""

from __future__ import annotations

from bench.context import Context
from bench.figures import Figure, SectionResult
from bench.measure import median
from bench.stack import JobTiming, unique_target
from bench.workload import Case


def batch(ctx: Context, case: Case, count: int) -> list[JobTiming]:
    posted = [
        ctx.stack.post(ctx.workload.body(case, [unique_target("linux-64")])) for _ in range(count)
    ]
    jobs = [ctx.stack.wait(job_id, at, ctx.config.job_timeout) for job_id, at in posted]
    for job in jobs:
        job.expect(case.satisfiable, case.label)
    return jobs


def rate(jobs: list[JobTiming]) -> float:
    return len(jobs) / (max(j.finished for j in jobs) - min(j.posted for j in jobs))


def run(ctx: Context, result: SectionResult) -> None:
    case = ctx.workload.light_case()
    result.notes += ctx.workload.fallback_notes()
    urls = ctx.workload.urls(case.channels)
    ctx.bare.solve(urls, list(case.specs), ["linux-64"])
    bare = median([ctx.bare.solve(urls, list(case.specs), ["linux-64"])[0] for _ in range(5)])
    rates: dict[int, float] = {}
    for workers in (1, 2):
        ctx.stack.set_workers(workers)
        batch(ctx, case, (1 if ctx.config.smoke else 4) * workers)  # warm every Gateway
        jobs = batch(ctx, case, ctx.config.scale_jobs)
        rates[workers] = rate(jobs)
        result.figures.append(
            Figure(
                label=f"{case.label}: {workers} worker{'s' if workers > 1 else ''}",
                measured=f"{rates[workers]:.1f} jobs/s",
                baseline=(
                    f"bare {1 / bare:.0f} solves/s"
                    if workers == 1
                    else f"1 worker {rates[1]:.1f} jobs/s"
                ),
                value=rates[workers] if workers == 1 else rates[2] / rates[1],
                unit="jobs/s" if workers == 1 else "× 1 worker",
                detail={
                    "jobs": len(jobs),
                    "median_total_ms": round(median([j.total for j in jobs]) * 1000, 1),
                    "median_worker_ms": round(median([j.worker for j in jobs]) * 1000, 1),
                    "median_queue_ms": round(median([j.queued for j in jobs]) * 1000, 1),
                },
            )
        )
    ctx.stack.set_workers(1)
    result.notes.append("no goal set; 2 workers share 2 cores with the API, Postgres and Redis")
