"""Helpers for the archive tests: lab channels the test owns, locking, waiting, installing.

Each archive test builds its own channel in a temp dir and serves it with its own
:class:`ChannelServer`, so it can delete, replace or slow down upstream files without
touching the session-wide test channel other tests rely on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import rattler
import rattler.index

from tests.conftest import start_service, stop_service
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec, build_channel
from tests.support.service import POSTGRES_ADMIN_URL, ROOT, Service, wait_for_solve

#: The conda-meta fields that say *what* was installed (not from where, or when).
RECORD_FIELDS = (
    "name",
    "version",
    "build",
    "build_number",
    "subdir",
    "sha256",
    "md5",
    "size",
    "depends",
    "constrains",
    "license",
    "timestamp",
    "noarch",
    "fn",
)


def wait_worker_ready(service: Service, timeout: float = 60) -> None:
    """Wait for the worker `serve` starts alongside to say it is ready.

    A solve posted while that worker is still declaring its queue on the embedded SQLite
    broker can fail to be sent (it then waits in the database for the next `serve`), so
    tests that post right after start-up wait for this first.
    """
    deadline = time.monotonic() + timeout
    while " ready." not in (service.server.log() if service.server else ""):
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker not ready after {timeout}s:\n{service.logs()}")
        time.sleep(0.1)


@contextmanager
def lab_service(service_dir: Path, upstream: ChannelServer, **settings: str) -> Iterator[Service]:
    """An embedded `condarchive serve` allowed to fetch from `upstream`, its worker ready;
    stopped on the way out."""
    service = start_service(service_dir, upstream.url, **settings)
    wait_worker_ready(service)
    try:
        yield service
    finally:
        stop_service(service)


def reindex(channel_dir: Path) -> None:
    """Re-write the channel's repodata from the files now on disk (as a channel admin would)."""
    for stale in channel_dir.rglob("repodata*"):
        stale.unlink()
    for shards in channel_dir.rglob("shards"):
        shutil.rmtree(shards)
    asyncio.run(rattler.index.index_fs(channel_dir, write_zst=True, write_shards=True, force=True))


def lab_channel(root: Path, specs: list[PackageSpec], big: list[PackageSpec] | None = None) -> Path:
    """Build and index a channel; `big` are the packages with a large payload."""
    return build_channel(root, [*specs, *(big or [])])


def lock(
    client: httpx.Client,
    channel_url: str,
    dependencies: list[str],
    targets: list[str] | None = None,
    timeout: float = 90,
) -> str:
    response = client.post(
        "/api/v1/solves",
        json={
            "channels": [channel_url],
            "dependencies": dependencies,
            "targets": targets or ["linux-64"],
        },
    )
    assert response.status_code in (200, 202), response.text
    job = wait_for_solve(client, response.json()["id"], timeout)
    assert job["status"] == "succeeded", job
    return job["lock_id"]


def wait_archive(
    client: httpx.Client, lock_id: str, timeout: float = 90, until: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Poll the lock's archive until it is done (archived or failed) or in one of `until`."""
    deadline = time.monotonic() + timeout
    done = ("archived", "failed", *until)
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/locks/{lock_id}/archive").json()
        if status.get("status") in done:
            return status
        time.sleep(0.2)
    raise TimeoutError(f"archive of {lock_id} still {status.get('status')}: {status}")


def wait_partial_download(data_dir: Path, over: int = 1_500_000, timeout: float = 60) -> list[Path]:
    """Wait until a worker is well into a download (a `blobs/tmp/*.part` file past `over`
    bytes), so a test can kill it there; returns the partial files seen."""
    deadline = time.monotonic() + timeout
    parts: list[Path] = []
    while not any(p.stat().st_size > over for p in parts if p.exists()):
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.05)
        parts = list((data_dir / "blobs" / "tmp").glob("*.part"))
    return parts


def archive_channel(status: dict[str, Any], upstream_channel: str) -> str:
    return status["channels"][upstream_channel.rstrip("/")]


def cli(service: Service, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`condarchive ARGS` as a user runs it, with the service's settings."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=service.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def _solve_install(
    channel: str, specs: list[str], platform: str, prefix: Path, cache: Path
) -> None:
    gateway = rattler.Gateway(cache_dir=cache / "repodata")
    records = await rattler.solve(
        [channel.rstrip("/") + "/"],
        specs,
        gateway=gateway,
        platforms=[platform, "noarch"],
        virtual_packages=[],
        timestamp_policy="allow-missing",
    )
    await rattler.install(
        records,
        target_prefix=prefix,
        cache_dir=cache / "pkgs",
        platform=rattler.Subdir(platform),
        show_progress=False,
        execute_link_scripts=False,
    )


def solve_and_install(
    channel: str, specs: list[str], prefix: Path, cache: Path, platform: str = "linux-64"
) -> None:
    """py-rattler's own solve + install from a channel URL, with a cache of its own."""
    asyncio.run(_solve_install(channel, specs, platform, prefix, cache))


def prefix_records(prefix: Path) -> dict[str, dict[str, Any]]:
    """name -> the identifying fields of each conda-meta record, and its installed files."""
    records = {}
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        data = json.loads(path.read_text())
        if "name" not in data:
            continue
        record = {field: data.get(field) for field in RECORD_FIELDS}
        record["files"] = sorted(data.get("files") or [])
        records[data["name"]] = record
    return records


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def blob_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "blobs" / "sha256" / sha256[:2] / sha256[2:4] / sha256


def fresh_postgres() -> str:
    """A new empty database (dropped by `drop_postgres`), so tests never share rows."""
    name = f"condarchive_arch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
