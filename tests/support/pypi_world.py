"""A conda channel with Python and a PyPI index beside it, both served on 127.0.0.1: what
every test of the `pip:` part of an environment locks against.

The conda channel ``pychan`` has python 3.12.4 for linux-64, osx-arm64 and win-64, and
``msgpack-python`` (whose PyPI name is ``msgpack``: the name map is exercised). The index
has a package with platform wheels for each of those targets, pure wheels old and new (for
exclude_newer), a package that depends on ``msgpack`` (held to conda's version), an
sdist-only package, and a package no Python can install (unsatisfiable).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec, backdate_index, build_channel
from tests.support.pypi_index import PyPIIndex
from tests.support.service import wait_for_solve

OLD = datetime(2024, 1, 1, tzinfo=UTC)
NEW = datetime(2025, 1, 1, tzinfo=UTC)
#: Between OLD and NEW: as of then, pure-dep 1.0 is the newest.
BETWEEN = datetime(2024, 6, 1, tzinfo=UTC)

PLATFORM_TAGS = {
    "linux-64": "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "osx-arm64": "cp312-cp312-macosx_11_0_arm64",
    "win-64": "cp312-cp312-win_amd64",
}


#: conda packages are from 2020, so exclude_newer (which applies to both) keeps them.
TS_2020 = 1_590_000_000_000


def pychan_packages() -> list[PackageSpec]:
    specs = []
    for subdir in PLATFORM_TAGS:
        specs.append(
            PackageSpec("python", "3.12.4", "h0_0_cpython", 0, subdir, timestamp_ms=TS_2020)
        )
        specs.append(PackageSpec("zlib-lite", "1.3", "h0", 0, subdir, timestamp_ms=TS_2020))
    specs.append(
        PackageSpec(
            "msgpack-python",
            "1.0.0",
            "pyh_0",
            0,
            "noarch",
            depends=["python"],
            timestamp_ms=TS_2020,
        )
    )
    return specs


def build_index(index: PyPIIndex) -> None:
    for tag in PLATFORM_TAGS.values():
        index.add_wheel("fast-thing", "1.0", tag=tag, requires=["pure-dep>=1"])
    index.add_wheel("pure-dep", "1.0", upload_time=OLD, requires_python=">=3.8")
    index.add_wheel("pure-dep", "2.0", upload_time=NEW)
    index.add_wheel("uses-msgpack", "1.0", upload_time=OLD, requires=["msgpack>=1"])
    index.add_wheel("msgpack", "1.0.0", upload_time=OLD)
    index.add_wheel("msgpack", "2.0.0", upload_time=NEW, requires=["not-from-conda"])
    index.add_wheel("not-from-conda", "1.0", upload_time=OLD)
    index.add_sdist("sdist-only", "1.0", upload_time=OLD, requires=["pure-dep<2"])
    index.add_wheel("future-only", "1.0", upload_time=OLD, requires_python=">=3.99")


@dataclass
class PyPIWorld:
    channels: ChannelServer
    index: PyPIIndex

    @property
    def channel_url(self) -> str:
        return self.channels.channel_url("pychan")

    def settings(self) -> dict[str, str]:
        """The service settings that allow this channel and index (keys without prefix)."""
        return {"allowed_pypi_indexes": self.index.base_url, "default_pypi_index": self.index.url}

    def environment(self, *pip: str, conda: tuple[str, ...] = ("python=3.12",)) -> str:
        lines = [f"channels:\n  - {self.channel_url}\n", "dependencies:\n"]
        lines += [f"  - {spec}\n" for spec in conda]
        if pip:
            lines.append("  - pip:\n")
            lines += [f"    - {line}\n" for line in pip]
        return "".join(lines)


@contextmanager
def pypi_world(root: Path) -> Iterator[PyPIWorld]:
    """Build and serve the channel and the index until the block ends."""
    backdate_index(build_channel(root / "channels" / "pychan", pychan_packages()))
    index = PyPIIndex(root / "pypi")
    build_index(index)
    with ChannelServer(root / "channels") as channels, index.serving():
        yield PyPIWorld(channels, index)


def solve_job(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """POST a solve and wait for its job to end (succeeded or failed)."""
    response = api.post("/api/v1/solves", json=body)
    assert response.status_code in (200, 202), response.text
    return wait_for_solve(api, response.json()["id"])


def lock_of(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """Solve, and return the lock's JSON (the job must succeed)."""
    job = solve_job(api, body)
    assert job["status"] == "succeeded", job.get("error")
    response = api.get(f"/api/v1/locks/{job['lock_id']}")
    assert response.status_code == 200
    return response.json()
