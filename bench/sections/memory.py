"""Figure 6: peak RSS of a worker that solves against the largest channels.

Each channel gets a freshly started worker, so its peak (``VmHWM`` from /proc) covers
one cold load of that channel and one solve, nothing earlier. Two numbers beside it
separate ours from not ours: the same worker's RSS when idle (Celery, SQLAlchemy and
our imports) and the peak of a fresh process that only imports py-rattler and does the
same solve (``python -m bench.bare``).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

from bench.context import Context
from bench.figures import Figure, Goal, SectionResult
from bench.measure import mb, proc_memory
from bench.paths import ROOT
from bench.stack import unique_target
from bench.static_server import alias
from bench.workload import Case

GOAL = Goal("<=", 500, "MB")
_numbers = itertools.count()


def bare_peak(ctx: Context, case: Case) -> dict[str, int]:
    """Peak RSS of py-rattler alone doing this solve in a fresh process, cold."""
    fresh = [alias(ctx.workload.root, c, f"{c}-mem{next(_numbers)}") for c in case.channels]
    args = [
        sys.executable,
        "-m",
        "bench.bare",
        "--cache-dir",
        str(ctx.workdir / f"mem-bare-{next(_numbers)}"),
    ]
    for url in ctx.workload.urls(tuple(fresh)):
        args += ["--channel", url]
    done = subprocess.run(
        [*args, *case.specs], cwd=ROOT, capture_output=True, text=True, check=True, timeout=600
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(ctx: Context, case: Case, goal: Goal | None) -> Figure:
    ctx.stack.stop_workers()
    worker = ctx.stack.start_worker()
    assert worker.popen is not None
    idle = proc_memory(worker.popen.pid)
    fresh = tuple(alias(ctx.workload.root, c, f"{c}-mem{next(_numbers)}") for c in case.channels)
    cold = Case(case.label, fresh, case.specs, case.satisfiable)
    ctx.solve(cold, [unique_target("linux-64")])
    peak = proc_memory(worker.popen.pid)
    bare = bare_peak(ctx, case)  # the worker stays up (idle) for the next section
    return Figure(
        label=f"{case.label}",
        measured=mb(peak["VmHWM"]),
        baseline=f"bare {mb(bare['VmHWM'])}; idle worker {mb(idle['VmRSS'])}",
        value=peak["VmHWM"] / 2**20,
        unit="MB",
        goal=goal,
        detail={
            "worker_peak_bytes": peak["VmHWM"],
            "worker_idle_bytes": idle["VmRSS"],
            "bare_peak_bytes": bare["VmHWM"],
        },
    )


def run(ctx: Context, result: SectionResult) -> None:
    if ctx.config.smoke:
        result.notes.append("smoke run: the real-data case is left out to keep it short")
    elif ctx.workload.has_realdata:
        result.figures.append(measure(ctx, ctx.workload.heavy_case(), None))
    else:
        result.notes.append("real-data case skipped: ../shared/realdata is absent")
    result.figures.append(measure(ctx, ctx.workload.synthetic_case(), GOAL))
    result.notes.append("the goal (≤ 500 MB) is set for the 100,000-record synthetic channel")
