"""Profile where a missed goal's time goes: ``python -m bench.profile {worker,steps,cold,api}``.

* ``worker``: jobs are queued with no worker running, then this process calls the
  Celery task body (``app.jobs.run.run_solve``) itself under pyinstrument, with the
  worker's settings: the same code path, without Celery's dispatch and without a
  sampler competing for the 2 cores.
* ``steps``: the same task body with a clock around each step instead of a sampler
  (whose own cost inflates many small calls), through its ``step`` parameter: median
  milliseconds per job.
* ``cold``: the same, each job on a channel URL nobody has fetched (figure 4).
* ``post``: the ``POST /api/v1/solves`` route body (figures 1 and 3), in this process.
* ``archive``: ``app.archive.run.run_archive`` on generated 1-100 MB packages
  (figure 5), in this process.
* ``api``: what a lock GET does (figure 3), timed piece by piece and profiled in this
  process with the API's settings, beside the HTTP floor (``GET /api/v1/health``).

Needs the ``bench`` extra (``pip install -e '.[bench]'``: pyinstrument).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.context import SOLVE_SETTINGS
from bench.loadgen import load
from bench.stack import Stack, unique_target
from bench.static_server import alias
from bench.workload import OVERHEAD_CASES, Case, Workload, prepare


def _as_worker(stack: Stack) -> None:
    """Give this process the worker's settings (app.config reads only the environment)."""
    os.environ.update({k: v for k, v in stack.env.items() if k.startswith("CONDARCHIVE_")})
    from app.config import get_settings

    get_settings.cache_clear()


def profile_worker(workload: Workload, stack: Stack, case: Case, jobs: int, cold: bool) -> str:
    from pyinstrument import Profiler

    _as_worker(stack)
    from app.jobs.run import run_solve

    def queued(n: int) -> list[str]:
        ids = []
        for i in range(n):
            channels = case.channels
            if cold:
                channels = tuple(alias(workload.root, c, f"{c}-prof{i}") for c in channels)
            body = workload.body(
                Case(case.label, channels, case.specs), [unique_target("linux-64")]
            )
            ids.append(stack.post(body)[0])
        return ids

    for job_id in queued(1):  # warm: imports, Gateway, connection pool
        run_solve(job_id)
    ids = queued(jobs)
    profiler = Profiler(interval=0.0005)
    start = time.perf_counter()
    with profiler:
        for job_id in ids:
            run_solve(job_id)
    per_job = (time.perf_counter() - start) / jobs
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    return f"{jobs} jobs, {per_job * 1000:.1f} ms per job in run_solve\n\n{text}"


#: The steps run_solve and the Solver name (their ``step`` parameter), as this table shows them.
STEP_LABELS = {
    "claim": "claim: UPDATE … RETURNING, COMMIT",
    "store_lock": "store_lock (committed with succeed)",
    "succeed": "succeed: the job's result, COMMIT",
    "rattler.solve": "rattler.solve",
    "allowlist check": "allowlist check",
    "records converted": "records converted",
}


def time_steps(workload: Workload, stack: Stack, case: Case, jobs: int) -> str:
    """Time each step of the worker's task body with clocks around it (no sampler, whose
    own cost inflates many small calls): median per job, in this process."""
    import statistics
    from collections.abc import Iterator
    from contextlib import contextmanager

    _as_worker(stack)
    from app.jobs.run import run_solve

    spent: dict[str, float] = {}

    @contextmanager
    def clock(step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            label = STEP_LABELS.get(step, step)
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - started

    per_job: dict[str, list[float]] = {}
    for i in range(jobs + 1):
        body = workload.body(case, [unique_target("linux-64")])
        job_id = stack.post(body)[0]
        spent.clear()
        started = time.perf_counter()
        run_solve(job_id, step=clock)
        total = time.perf_counter() - started
        if i == 0:
            continue  # warm-up: imports, Gateway, connection pool
        steps = {**spent, "whole task body": total}
        steps["the rest (session, heartbeat thread, asyncio, provenance)"] = total - sum(
            spent.values()
        )
        for step, seconds in steps.items():
            per_job.setdefault(step, []).append(seconds)
    lines = [f"{case.label}: median of {jobs} jobs, ms", ""]
    for step, values in per_job.items():
        lines.append(f"{statistics.median(values) * 1000:8.2f}  {step}")
    return "\n".join(lines)


def profile_api(workload: Workload, stack: Stack, case: Case, reads: int) -> str:
    """Time the pieces of a lock GET in this process, and profile the endpoint body.

    Sampling the server under load is no use on 2 cores (the sampler takes a core the
    server needs), so this calls what the route calls, with the API's settings.
    """
    from fastapi.encoders import jsonable_encoder  # noqa: F401 - imported as the app does
    from pydantic import TypeAdapter
    from pyinstrument import Profiler

    stack.set_workers(1)
    job = stack.solve(workload.body(case, ["linux-64"]))
    stack.stop_workers()
    _as_worker(stack)
    from app.db.session import session_scope
    from app.locks.store import find_lock, lock_view
    from app.web.schemas import LockView

    adapter = TypeAdapter(LockView)
    timings: dict[str, list[float]] = {"find_lock + lock_view": [], "validate + dump_json": []}

    def read() -> bytes:
        start = time.perf_counter()
        with session_scope() as session:
            lock = find_lock(session, job.lock_id or "")
            assert lock is not None
            view = lock_view(session, lock)
        middle = time.perf_counter()
        body = adapter.dump_json(adapter.validate_python(view))
        timings["find_lock + lock_view"].append(middle - start)
        timings["validate + dump_json"].append(time.perf_counter() - middle)
        return body

    for _ in range(reads):  # timed without the profiler
        body = read()
    profiler = Profiler(interval=0.0005)
    with profiler:
        for _ in range(reads // 3):
            read()
    lines = [f"lock {job.lock_id} ({len(body):,} bytes), {reads} reads in this process:"]
    for name, values in timings.items():
        values = values[:reads]
        lines.append(f"  {name}: median {sorted(values)[len(values) // 2] * 1000:.2f} ms")
    health = load(f"{stack.url}/api/v1/health", max_requests=300)
    lines.append(
        f"  GET /api/v1/health over HTTP (framework + SELECT 1): p50 {health.p(50) * 1000:.2f} ms"
    )
    return "\n".join(lines) + "\n\n" + profiler.output_text(unicode=True, color=False)


def profile_post(workload: Workload, stack: Stack, case: Case, posts: int) -> str:
    """Profile the POST /api/v1/solves route body in this process (new jobs, queued to Redis)."""
    from fastapi import Response
    from pyinstrument import Profiler

    _as_worker(stack)
    from app.config import get_settings
    from app.db.session import session_scope
    from app.web.auth import ANONYMOUS
    from app.web.routes.solves import create_solve
    from app.web.schemas import SolveBody

    def post() -> None:
        body = SolveBody.model_validate(workload.body(case, [unique_target("linux-64")]))
        with session_scope() as session:
            create_solve(body, Response(), session, get_settings(), ANONYMOUS)

    post()  # warm: engine, broker connection, compiled statements
    start = time.perf_counter()
    for _ in range(posts):
        post()
    per_post = (time.perf_counter() - start) / posts
    profiler = Profiler(interval=0.0005)
    with profiler:
        for _ in range(posts):
            post()
    head = f"{posts} POSTs (route body only), {per_post * 1000:.2f} ms each without the profiler"
    return f"{head}\n\n{profiler.output_text(unicode=True, color=False)}"


def profile_archive(workload: Workload, stack: Stack, sizes: tuple[int, ...]) -> str:
    """Lock generated large packages, then run the archive task body here under pyinstrument."""
    from pyinstrument import Profiler

    from bench.packages import archive_channel

    specs = archive_channel(workload.root / "archivechan", sizes, None)
    case = Case("archive", ("archivechan",), tuple(specs))
    stack.set_workers(1)
    job = stack.solve(workload.body(case, [unique_target("linux-64")]))
    stack.stop_workers()
    _as_worker(stack)
    from app.archive.run import run_archive

    profiler = Profiler(interval=0.001, async_mode="disabled")
    start = time.perf_counter()
    with profiler:
        run_archive(job.lock_id or "")
    seconds = time.perf_counter() - start
    total = sum(sizes)
    head = (
        f"archived {total / 2**20:.0f} MB in {seconds:.2f} s ({total / seconds / 2**20:.0f} MB/s)"
    )
    return f"{head}\n\n{profiler.output_text(unicode=True, color=False)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("what", choices=["worker", "steps", "cold", "api", "post", "archive"])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--synthetic-records", type=int, default=2_000)
    labels = [c.label for c in OVERHEAD_CASES]
    parser.add_argument(
        "--case",
        choices=[*labels, "synthetic"],
        metavar="LABEL",
        help="the figure-1 case to profile (default: the heavy real one); "
        f"one of: {', '.join(labels)}, synthetic",
    )
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="condarchive-profile-"))
    workload = prepare(root, args.synthetic_records, use_realdata=True)
    stack = Stack(root / "stack", workload.server.url, **SOLVE_SETTINGS).start()
    case = workload.heavy_case()
    if args.case == "synthetic":
        case = workload.synthetic_case()
    elif args.case:
        case = next(c for c in OVERHEAD_CASES if c.label == args.case)
    try:
        if args.what == "api":
            print(profile_api(workload, stack, case, args.reads))
        elif args.what == "archive":
            print(profile_archive(workload, stack, (1 << 20, 10 << 20, 50 << 20, 100 << 20)))
        elif args.what == "post":
            print(profile_post(workload, stack, case, args.jobs))
        elif args.what == "steps":
            print(time_steps(workload, stack, case, args.jobs))
        else:
            print(profile_worker(workload, stack, case, args.jobs, cold=args.what == "cold"))
    finally:
        stack.close()
        workload.server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # see bench/__main__.py: py-rattler can crash interpreter finalization
