"""`python -m bench.load`: a bounded load test of distributed mode, and an exactly-once check.

It starts the deployed topology on loopback (``condarchive serve --no-worker`` on a
Postgres database and Redis queue of its own, two ``condarchive worker`` processes; see
bench/stack.py), serves the test suite's channel (tests/support/packages.py) on
127.0.0.1, and then sends, `--concurrency` at a time and shuffled together:

* `--distinct` solve submissions that are all different requests (each names its own
  target, so none is deduplicated, though the solves are alike),
* `--identical` submissions spread over `--bodies` identical request bodies, which must
  share one job each (202 for the first, the same job id after),
* `--reads` reads of locks solved beforehand.

It waits (at most `--timeout` seconds) for every accepted job to finish and then asks
the database whether each finished exactly once: every job succeeded, was claimed once
(``attempts = 1``, and one "claimed" line in all worker logs), none is left queued or
running, and identical bodies got one job each. It prints a table and writes JSON
(bench/load-results.json, git-ignored). Exit status 1 when a check fails.

Needs PostgreSQL and Redis on 127.0.0.1, as the distributed tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.machine import describe, one_line
from bench.measure import percentile
from bench.paths import BENCH
from bench.stack import Stack, missing_services

RESULTS = BENCH / "load-results.json"
DEPENDENCIES = (["numlib"], ["pyutil"], ["numlib", "pyutil"], ["torchlike"], ["tzdata-lite"])
PLATFORMS = ("linux-64", "osx-arm64")


@dataclass
class Sample:
    """One request: what it was, how long it took (s), its status, and the job it named."""

    kind: str  # "submit" | "read"
    seconds: float
    status: int
    job_id: str | None = None
    body_key: str | None = None
    sent_at: float = 0.0  # wall clock, to match the database's finished_at


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)


def solve_body(channel: str, index: int, target: str) -> dict[str, Any]:
    platform = PLATFORMS[index % len(PLATFORMS)]
    return {
        "channels": [channel],
        "dependencies": DEPENDENCIES[index % len(DEPENDENCIES)],
        "targets": [{"name": target, "platform": platform}],
    }


def plan(args: argparse.Namespace, channel: str, locks: list[str]) -> list[tuple[str, Any, str]]:
    """The shuffled operations: ("submit", body, key) and ("read", lock id, "")."""
    rng = random.Random(args.seed)
    run = rng.getrandbits(32)
    ops: list[tuple[str, Any, str]] = []
    for i in range(args.distinct):
        key = f"distinct-{i}"
        ops.append(("submit", solve_body(channel, i, f"load-{run:08x}-{i}"), key))
    for i in range(args.identical):
        b = i % args.bodies
        ops.append(("submit", solve_body(channel, b, f"same-{run:08x}-{b}"), f"same-{b}"))
    ops += [("read", locks[i % len(locks)], "") for i in range(args.reads)]
    rng.shuffle(ops)
    return ops


async def drive(url: str, ops: list[tuple[str, Any, str]], concurrency: int) -> Run:
    """Send every operation, `concurrency` at a time, timing each from send to last byte."""
    run = Run()
    queue: asyncio.Queue[tuple[str, Any, str]] = asyncio.Queue()
    for op in ops:
        queue.put_nowait(op)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def user() -> None:
            while not queue.empty():
                kind, payload, key = queue.get_nowait()
                sent_at, started = time.time(), time.perf_counter()
                try:
                    if kind == "submit":
                        response = await client.post("/api/v1/solves", json=payload)
                    else:
                        response = await client.get(f"/api/v1/locks/{payload}")
                    await response.aread()
                except httpx.HTTPError as exc:
                    run.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                    continue
                seconds = time.perf_counter() - started
                job_id = response.json().get("id") if kind == "submit" else None
                if response.status_code >= 300:
                    run.errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
                run.samples.append(
                    Sample(kind, seconds, response.status_code, job_id, key or None, sent_at)
                )

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        run.elapsed = time.perf_counter() - started
    return run


def wait_all(stack: Stack, job_ids: set[str], deadline: float) -> bool:
    """True once no job of the run is queued or running (polling the database)."""
    ids = list(job_ids)
    while time.monotonic() < deadline:
        (active,) = stack.db.conn.execute(
            "SELECT count(*) FROM solve_jobs WHERE id = ANY(%s) AND status IN "
            "('queued', 'running')",
            (ids,),
        ).fetchone()
        if active == 0:
            return True
        time.sleep(0.1)
    return False


def verify(stack: Stack, run: Run) -> tuple[dict[str, Any], list[tuple[str, float]]]:
    """The exactly-once checks, and (job id, seconds from first POST to finished) per job."""
    submits = [s for s in run.samples if s.kind == "submit" and s.job_id]
    ids = {s.job_id for s in submits if s.job_id}
    rows = stack.db.conn.execute(
        "SELECT id, status, attempts, lock_id, finished_at FROM solve_jobs WHERE id = ANY(%s)",
        (list(ids),),
    ).fetchall()
    by_id = {row[0]: row for row in rows}
    statuses = Counter(row[1] for row in rows)
    attempts = Counter(row[2] for row in rows)
    (left,) = stack.db.conn.execute(
        "SELECT count(*) FROM solve_jobs WHERE status IN ('queued', 'running')"
    ).fetchone()
    logs = "".join(worker.log() for worker in stack.workers)
    claims = Counter(
        line.split("job ", 1)[1].split(":", 1)[0]
        for line in logs.splitlines()
        if ": attempt " in line and " claimed" in line
    )
    jobs_per_body: dict[str, set[str]] = {}
    for sample in submits:
        jobs_per_body.setdefault(sample.body_key or "", set()).add(sample.job_id or "")
    first_post: dict[str, float] = {}
    for sample in submits:
        first_post[sample.job_id or ""] = min(
            first_post.get(sample.job_id or "", sample.sent_at), sample.sent_at
        )
    latencies = [
        (job_id, by_id[job_id][4].timestamp() - posted)
        for job_id, posted in first_post.items()
        if job_id in by_id and by_id[job_id][4] is not None
    ]
    checks = {
        "all accepted jobs in the database": len(rows) == len(ids),
        "every job succeeded": statuses == Counter({"succeeded": len(ids)}),
        "every job claimed once (attempts = 1)": attempts == Counter({1: len(ids)}),
        "one claim per job in the worker logs": all(claims[i] == 1 for i in ids),
        "no job left queued or running": left == 0,
        "identical bodies share one job": all(len(j) == 1 for j in jobs_per_body.values()),
        "distinct bodies got distinct jobs": len(ids) == len(jobs_per_body),
        "every submission answered 200/202": all(s.status in (200, 202) for s in submits)
        and not run.errors,
    }
    facts = {
        "jobs": len(ids),
        "statuses": dict(statuses),
        "attempts": {str(k): v for k, v in attempts.items()},
        "left_active": left,
        "errors": run.errors[:20],
    }
    return {"checks": checks, **facts}, latencies


def stats(values: list[float], elapsed: float) -> dict[str, float]:
    return {
        "count": len(values),
        "per_second": round(len(values) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p99_ms": round(percentile(values, 99) * 1000, 1),
        "max_ms": round(max(values, default=float("nan")) * 1000, 1),
    }


def table(rows: dict[str, dict[str, float]], checks: dict[str, bool]) -> str:
    header = ("", "count", "per second", "p50", "p99", "max")
    lines = [header]
    for name, row in rows.items():
        lines.append(
            (
                name,
                str(row["count"]),
                f"{row['per_second']:.1f}",
                f"{row['p50_ms']:.1f} ms",
                f"{row['p99_ms']:.1f} ms",
                f"{row['max_ms']:.1f} ms",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.append("")
    text += [f"{'ok  ' if ok else 'FAIL'}  {name}" for name, ok in checks.items()]
    return "\n".join(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--distinct", type=int, default=200, help="distinct submissions")
    parser.add_argument("--identical", type=int, default=100, help="identical submissions")
    parser.add_argument("--bodies", type=int, default=5, help="bodies the identical ones share")
    parser.add_argument("--reads", type=int, default=300, help="lock reads")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--workers", type=int, default=2, help="condarchive worker processes")
    parser.add_argument("--timeout", type=float, default=180, help="seconds for all jobs to end")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if missing := missing_services():
        print(f"bench.load needs {' and '.join(missing)} on 127.0.0.1", file=sys.stderr)
        return 2
    from tests.support.channel_server import ChannelServer
    from tests.support.packages import build_channel
    from tests.support.testchan import testchan_packages

    workdir = Path(tempfile.mkdtemp(prefix="condarchive-load-"))
    build_channel(workdir / "channels" / "testchan", testchan_packages())
    deadline = time.monotonic() + args.timeout
    with ChannelServer(workdir / "channels") as channels:
        channel = channels.channel_url("testchan")
        stack = Stack(workdir / "stack", channels.url, archive="off").start()
        try:
            stack.set_workers(args.workers)
            seeds = [stack.solve(solve_body(channel, i, f"seed-{i}")) for i in range(3)]
            locks = [s.lock_id for s in seeds if s.lock_id]
            started = time.monotonic()
            run = asyncio.run(drive(stack.url, plan(args, channel, locks), args.concurrency))
            ids = {s.job_id for s in run.samples if s.kind == "submit" and s.job_id}
            drained = wait_all(stack, ids, deadline)
            drain_seconds = time.monotonic() - started
            report, latencies = verify(stack, run)
        finally:
            stack.close()
    report["checks"]["all jobs finished within the timeout"] = drained
    submits = [s.seconds for s in run.samples if s.kind == "submit"]
    reads = [s.seconds for s in run.samples if s.kind == "read"]
    rows = {
        "all requests": stats(submits + reads, run.elapsed),
        "POST /api/v1/solves": stats(submits, run.elapsed),
        "GET /api/v1/locks/{id}": stats(reads, run.elapsed),
        "job: POST -> finished": stats([s for _, s in latencies], drain_seconds),
    }
    machine = describe()
    text = table(rows, report["checks"])
    print(f"machine: {one_line(machine)}")
    print(
        f"{args.distinct} distinct + {args.identical} identical ({args.bodies} bodies) "
        f"submissions, {args.reads} lock reads, {args.concurrency} in flight, "
        f"{args.workers} workers; requests took {run.elapsed:.1f} s, all jobs ended "
        f"{drain_seconds:.1f} s after the first request\n"
    )
    print(text)
    args.output.write_text(
        json.dumps(
            {
                "machine": machine,
                "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "requests_seconds": round(run.elapsed, 3),
                "drain_seconds": round(drain_seconds, 3),
                "figures": rows,
                **report,
                "table": text,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {args.output}")
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept {workdir}")
    return 0 if all(report["checks"].values()) else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # As in bench/__main__.py: py-rattler's threads can crash the interpreter while it
    # finalizes; everything is written and flushed, so leave without finalizing.
    os._exit(code)
