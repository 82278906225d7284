"""Figure 3: the answers that need no solve: an identical POST (dedupe) and a lock GET.

Latency (p50, p99) is measured one request at a time, throughput with
``load_concurrency`` requests in flight. ``GET /api/v1/health`` (FastAPI plus one
``SELECT 1``) is measured the same way as the floor of the web stack, so what the lock
read adds on top of it is ours and the rest is not.
"""

from __future__ import annotations

import json

from bench.context import Context
from bench.figures import Figure, Goal, SectionResult
from bench.loadgen import LoadResult, load
from bench.measure import ms

P50_GOAL = Goal("<=", 10, "ms")
RATE_GOAL = Goal(">=", 500, "req/s")


def _latency(ctx: Context, url: str, method: str = "GET", body: bytes | None = None) -> LoadResult:
    cfg = ctx.config
    return load(url, method, body, 1, cfg.latency_requests, cfg.load_seconds)


def _throughput(
    ctx: Context, url: str, method: str = "GET", body: bytes | None = None
) -> LoadResult:
    cfg = ctx.config
    return load(url, method, body, cfg.load_concurrency, cfg.load_requests, cfg.load_seconds)


def _ok(result: LoadResult, expected: int, what: str) -> None:
    bad = {s: n for s, n in result.statuses.items() if s != expected}
    if bad:
        raise RuntimeError(f"{what}: unexpected statuses {bad}")


def run(ctx: Context, result: SectionResult) -> None:
    ctx.stack.set_workers(1)
    case = ctx.workload.heavy_case()
    result.notes += ctx.workload.fallback_notes()
    body = ctx.workload.body(case, ["linux-64"])
    job = ctx.solve(case, ["linux-64"])
    base = ctx.stack.url
    post_url, lock_url, health_url = (
        f"{base}/api/v1/solves",
        f"{base}/api/v1/locks/{job.lock_id}",
        f"{base}/api/v1/health",
    )
    raw = json.dumps(body).encode()
    lock_bytes = len(ctx.stack.http.get(lock_url).content)
    c = ctx.config.load_concurrency
    runs = {
        "health_latency": _latency(ctx, health_url),
        "post_latency": _latency(ctx, post_url, "POST", raw),
        "lock_latency": _latency(ctx, lock_url),
        "health_load": _throughput(ctx, health_url),
        "post_load": _throughput(ctx, post_url, "POST", raw),
        "lock_load": _throughput(ctx, lock_url),
    }
    for name, run_ in runs.items():
        _ok(run_, 200, name)
    detail = {name: r.summary() for name, r in runs.items()}
    health_lat, health_load = runs["health_latency"], runs["health_load"]
    for what, lat in (("identical POST", runs["post_latency"]), ("lock GET", runs["lock_latency"])):
        result.figures.append(
            Figure(
                label=f"{what} p50 (p99), 1 at a time",
                measured=f"{ms(lat.p(50))} ({ms(lat.p(99))})",
                baseline=f"health {ms(health_lat.p(50))} ({ms(health_lat.p(99))})",
                value=lat.p(50) * 1000,
                unit="ms",
                goal=P50_GOAL,
                detail=detail if what == "lock GET" else {},
            )
        )
    for what, rate, goal in (
        ("identical POST", runs["post_load"], None),
        ("lock GET", runs["lock_load"], RATE_GOAL),
    ):
        result.figures.append(
            Figure(
                label=f"{what} req/s, {c} in flight (p50 {ms(rate.p(50))})",
                measured=f"{rate.per_second:.0f} req/s",
                baseline=f"health {health_load.per_second:.0f} req/s",
                value=rate.per_second,
                unit="req/s",
                goal=goal,
            )
        )
    result.notes.append(
        f"lock {job.lock_id[:12]}… of {case.label}: {lock_bytes:,} bytes of JSON; "
        "the load generator shares the 2 cores with the server"
    )
