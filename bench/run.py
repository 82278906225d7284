"""Run the selected sections against one stack and write the table and results.json.

Sections share one running system (channels on a loopback static server, Postgres,
Redis, `serve --no-worker`, workers) and one bare solver, so every figure of a run is
measured on the same machine state, side by side with its baseline.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import machine, report
from bench.bare import BareSolver
from bench.config import FULL, SMOKE
from bench.context import SOLVE_SETTINGS, Context
from bench.figures import SectionResult, Skip
from bench.measure import load_average, now
from bench.paths import RESULTS
from bench.sections import SECTIONS
from bench.stack import Stack, missing_services
from bench.workload import prepare


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="condarchive benchmarks")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny inputs: a fast check, not a measurement"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        default=[],
        help="run only these sections",
    )
    parser.add_argument(
        "--skip", action="append", choices=list(SECTIONS), default=[], help="leave these out"
    )
    parser.add_argument(
        "--no-realdata", action="store_true", help="behave as if ../shared/realdata were absent"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch directory (logs, channels)"
    )
    return parser.parse_args(argv)


def run_section(ctx: Context, name: str) -> SectionResult:
    title, section = SECTIONS[name]
    result = SectionResult(name, title)
    start, load_before = now(), load_average()
    print(f"… {title}", file=sys.stderr, flush=True)
    try:
        section(ctx, result)
    except Skip as skip:
        result.status, result.reason = "skipped", str(skip)
    except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
        result.status, result.reason = "error", f"{type(exc).__name__}: {exc}"[:2000]
        traceback.print_exc()
    result.seconds = now() - start
    result.load = (load_before, load_average())
    print(
        f"  {result.status} in {result.seconds:.1f}s (load {result.load[0]:.1f} → "
        f"{result.load[1]:.1f})",
        file=sys.stderr,
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = SMOKE if args.smoke else FULL
    names = [n for n in (args.only or SECTIONS) if n not in args.skip]
    missing = missing_services()
    if missing:
        print(f"error: {' and '.join(missing)} not running on 127.0.0.1", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="condarchive-bench-"))
    started = datetime.now(UTC)
    start = now()
    results: list[SectionResult] = []
    workload = prepare(workdir, config.synthetic_records, use_realdata=not args.no_realdata)
    stack = None
    try:
        stack = Stack(workdir / "stack", workload.server.url, **SOLVE_SETTINGS).start()
        ctx = Context(config, workload, stack, BareSolver(workdir / "bare-cache"), workdir)
        for name in names:
            results.append(run_section(ctx, name))
    finally:
        if stack is not None:
            stack.close()
        workload.server.stop()
        if args.keep:
            print(f"scratch directory kept: {workdir}", file=sys.stderr)
        else:
            time.sleep(0.1)
            shutil.rmtree(workdir, ignore_errors=True)
    info = machine.describe()
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": round(now() - start, 1),
        "smoke": config.smoke,
        "realdata": workload.has_realdata,
        "synthetic": {
            "records": workload.synthetic.records,
            "names": workload.synthetic.names,
            "subdirs": workload.synthetic.subdir_records,
            "specs": list(workload.synthetic.specs),
        },
        "machine": info,
    }
    markdown = report.render_markdown(results, machine.one_line(info))
    report.write_json(args.output, results, {**meta, "table_markdown": markdown})
    print(markdown if args.markdown else report.render_text(results, machine.one_line(info)))
    print(f"\nresults: {args.output}", file=sys.stderr)
    return 1 if any(r.status == "error" for r in results) else 0
