"""The machine a run was measured on, so a table is never read without it."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any


def _cpuinfo_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _server_versions() -> dict[str, str]:
    """PostgreSQL and Redis versions, best effort (the run needs both anyway)."""
    found: dict[str, str] = {}
    try:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
            row = conn.execute("SHOW server_version").fetchone()
            found["postgresql"] = str(row[0]) if row else "?"
    except Exception:  # noqa: BLE001 - informational only
        found["postgresql"] = "unreachable"
    try:
        import redis

        found["redis"] = str(
            redis.Redis.from_url("redis://127.0.0.1:6379/0").info()["redis_version"]
        )
    except Exception:  # noqa: BLE001 - informational only
        found["redis"] = "unreachable"
    return found


def describe() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu_model": _cpuinfo_model(),
        "memory_bytes": _memory_total(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "py_rattler": version("py-rattler"),
        **_server_versions(),
    }


def one_line(info: dict[str, Any]) -> str:
    memory = info["memory_bytes"] / 2**30
    return (
        f"{info['nproc']} CPUs ({info['cpu_model']}), {memory:.0f} GiB RAM, "
        f"Linux {info['kernel']}, "
        f"Python {info['python']}, py-rattler {info['py_rattler']}, "
        f"PostgreSQL {info['postgresql']}, Redis {info['redis']}"
    )
