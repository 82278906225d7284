"""Small measuring helpers: clocks, percentiles, formatting, and process memory from /proc."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path


def now() -> float:
    """A monotonic clock for durations measured inside this process."""
    return time.perf_counter()


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; p99 of 100 samples is the 99th smallest, not an interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    """Format a duration for the table."""
    if seconds != seconds:  # NaN
        return "n/a"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def mb(num_bytes: float) -> str:
    size = num_bytes / 2**20
    if size >= 10:
        return f"{size:.0f} MB"
    return f"{size:.1f} MB" if size >= 1 else f"{num_bytes / 1024:.0f} KB"


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a live process, in bytes; empty if it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    found: dict[str, int] = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(rest.split()[0]) * 1024
    return found


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used so far.

    Wall time on a shared 2-core machine swings with whatever else runs; CPU time per
    job barely does, so it is what an A/B comparison of our code should look at.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def load_average() -> float:
    """The 1-minute load average: how busy the machine was while a section ran."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")
