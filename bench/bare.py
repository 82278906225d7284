"""The floor the service is measured against: py-rattler's own solve, with nothing around it.

It is called exactly as ``app/solve/solver.py`` calls it (same channels, platforms,
virtual packages, priority and timestamp policy) with a Gateway kept warm in this
process, so the only difference left is what condarchive adds. Run as
``python -m bench.bare`` it solves once in a fresh process and prints that process's
peak RSS: the memory floor of py-rattler alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import rattler

from app.core.targets import Target, parse_target
from bench.measure import now, proc_memory


def target_of(raw: str | dict[str, Any]) -> Target:
    """The service's own parsing, so both sides solve with identical virtual packages."""
    return parse_target(raw, ["bench"])


class BareSolver:
    """One warm Gateway; each call is one ``rattler.solve`` per target, concurrently."""

    def __init__(self, cache_dir: Path) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.gateway = rattler.Gateway(cache_dir=cache_dir)

    async def _one(self, urls: list[str], specs: list[str], target: Target) -> int:
        records = await rattler.solve(
            [u.rstrip("/") + "/" for u in urls],
            specs,
            gateway=self.gateway,
            platforms=[target.platform, "noarch"],
            virtual_packages=target.rattler_virtual_packages(),
            channel_priority=rattler.ChannelPriority.Strict,
            timestamp_policy="allow-missing",
        )
        return len(records)

    async def _all(self, urls: list[str], specs: list[str], targets: list[Target]) -> list[Any]:
        jobs = (self._one(urls, specs, t) for t in targets)
        return await asyncio.gather(*jobs, return_exceptions=True)

    def solve(
        self, urls: list[str], specs: list[str], targets: list[str | dict[str, Any]]
    ) -> tuple[float, bool]:
        """Seconds for all targets, and whether every target solved."""
        parsed = [target_of(t) for t in targets]
        start = now()
        results = asyncio.run(self._all(urls, specs, parsed))
        return now() - start, all(isinstance(r, int) for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one bare py-rattler solve; prints peak RSS")
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--channel", action="append", required=True)
    parser.add_argument("--platform", default="linux-64")
    parser.add_argument("specs", nargs="+")
    args = parser.parse_args(argv)
    seconds, solved = BareSolver(args.cache_dir).solve(args.channel, args.specs, [args.platform])
    memory = proc_memory(os.getpid())
    print(json.dumps({"seconds": seconds, "solved": solved, **memory}))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # see bench/__main__.py: py-rattler can crash interpreter finalization
