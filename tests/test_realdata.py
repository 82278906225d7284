"""Against real data: anaconda's `main` channel as of ~2018-08 (conda's index4.json).

The flat `{filename: record}` snapshot is wrapped into per-subdir repodata.json (see
tests/support/realdata.py for where the 12 records without a subdir go), served over HTTP,
and solved through the API. The answer must be exactly what a bare `rattler.solve` gives
on the same served repodata with the same virtual packages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import rattler.exceptions

from app.core.targets import DEFAULT_VIRTUAL_PACKAGES
from tests.conftest import start_service, stop_service
from tests.support.channel_server import ChannelServer
from tests.support.realdata import INDEX4, WrappedChannel, reference_solve, wrap_flat_index
from tests.support.service import Service, submit_and_wait

pytestmark = [pytest.mark.process, pytest.mark.realdata]


@pytest.fixture(scope="module")
def main_2018(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """(wrapped channel, its HTTP server, its URL)."""
    root = tmp_path_factory.mktemp("realdata")
    wrapped = wrap_flat_index(realdata / INDEX4, root / "main")
    with ChannelServer(root) as server:
        yield wrapped, server, server.channel_url("main")


@pytest.fixture(scope="module")
def service(main_2018: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service that may fetch from the snapshot's server (and archives nothing: the
    snapshot has records, not package files)."""
    _, server, _ = main_2018
    started = start_service(tmp_path_factory.mktemp("realdata-service"), server.url, archive="off")
    yield started
    errors = started.server_errors()
    stop_service(started)
    assert errors == []


@pytest.fixture(scope="module")
def http(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        yield client


def test_wrapping_places_or_drops_records_without_a_subdir(main_2018: Any, realdata: Path) -> None:
    wrapped: WrappedChannel = main_2018[0]
    assert wrapped.dropped == ["cloog-0.18.0-0.tar.bz2", "isl-0.12.2-0.tar.bz2"]
    assert set(wrapped.placed.values()) == {"linux-64"} and len(wrapped.placed) == 10
    assert wrapped.counts == {"linux-64": 5293 + 10, "noarch": 338}
    total = len(json.loads((realdata / INDEX4).read_text()))
    assert sum(wrapped.counts.values()) + len(wrapped.dropped) == total


@pytest.mark.parametrize(
    "specs",
    [["python 3.6.*", "numpy", "scipy"], ["pandas", "python 3.7.*"]],
    ids=["python36-numpy-scipy", "pandas-python37"],
)
def test_api_gives_exactly_what_rattler_gives(
    http: httpx.Client, main_2018: Any, realdata: Path, tmp_path: Path, specs: list[str]
) -> None:
    _, _, url = main_2018
    job = submit_and_wait(
        http, {"channels": [url], "dependencies": specs, "targets": ["linux-64"]}, timeout=120
    )
    assert job["status"] == "succeeded", job
    lock = http.get(f"/api/v1/locks/{job['lock_id']}").json()
    got = {
        (p["name"], p["version"], p["build"], p["url"])
        for p in lock["targets"]["linux-64"]["packages"]
    }

    records = asyncio.run(
        reference_solve(
            url, specs, "linux-64", list(DEFAULT_VIRTUAL_PACKAGES["linux-64"]), tmp_path / "cache"
        )
    )
    expected = {(r.name.normalized, str(r.version), str(r.build), r.url) for r in records}
    assert got == expected
    names = {name for name, *_ in got}
    assert {"python", *(s.split()[0] for s in specs)} <= names

    flat = json.loads((realdata / INDEX4).read_text())
    for package in lock["targets"]["linux-64"]["packages"]:
        record = flat[package["filename"]]
        assert (package["sha256"], package["md5"], package["size"]) == (
            record.get("sha256"),
            record["md5"],
            record["size"],
        )


def test_unsatisfiable_pair(http: httpx.Client, main_2018: Any, tmp_path: Path) -> None:
    _, _, url = main_2018
    specs = ["python 3.6.*", "python 3.7.*"]
    job = submit_and_wait(
        http, {"channels": [url], "dependencies": specs, "targets": ["linux-64"]}, timeout=120
    )
    assert job["status"] == "failed", job
    assert job["error"]["kind"] == "unsatisfiable", job["error"]
    explanation = job["error"]["detail"]["explanation"]
    assert "python 3.6.*" in explanation and "python 3.7.*" in explanation
    with pytest.raises(rattler.exceptions.SolverError):
        asyncio.run(
            reference_solve(
                url, specs, "linux-64", list(DEFAULT_VIRTUAL_PACKAGES["linux-64"]), tmp_path
            )
        )
