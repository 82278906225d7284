"""`condarchive install` never writes outside `--prefix`, whatever a package's paths.json says.

A hostile channel serves packages whose `info/paths.json` lists a path that climbs out of
the prefix. Extraction drops such tar members, but the link step copies each listed path
from the package's cache entry to the same path under the prefix; a path that climbs out
of the prefix and back into the package's own cache entry (`../<name>-<ver>-<build>/…`)
finds a real source file, so a linker that trusts paths.json writes it outside.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.archive import cli, lab_channel, lock, wait_archive, wait_worker_ready
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec
from tests.support.service import Service

pytestmark = pytest.mark.process  # condarchive runs as real processes

#: name -> (format, the hostile paths.json entry)
HOSTILE = {
    "climbconda": (".conda", "../climbconda-1.0-0/info/index.json"),
    "climbbz": (".tar.bz2", "../climbbz-1.0-0/info/index.json"),
    "absconda": (".conda", "/tmp/condarchive-escape-absconda.txt"),
}


@dataclass
class Lab:
    service: Service
    channel_url: str


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("containment-upstream")
    specs = [
        PackageSpec(name, "1.0", "0", 0, "noarch", fmt=fmt, extra_paths={path: b"escaped\n"})
        for name, (fmt, path) in HOSTILE.items()
    ]
    lab_channel(root / "hostile", specs)
    upstream = ChannelServer(root).start()
    service = start_service(tmp_path_factory.mktemp("containment-service"), upstream.url)
    wait_worker_ready(service)
    try:
        yield Lab(service, upstream.channel_url("hostile"))
    finally:
        stop_service(service)
        upstream.stop()


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.exists() else set()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_install_refuses_a_package_whose_paths_climb_out(
    lab: Lab, tmp_path: Path, name: str
) -> None:
    fmt, hostile_path = HOSTILE[name]
    with httpx.Client(base_url=lab.service.url, timeout=30) as client:
        lock_id = lock(client, lab.channel_url, [name])
        status = wait_archive(client, lock_id)
    assert status["status"] == "archived", status
    work = tmp_path / "work"
    work.mkdir()
    prefix, cache = work / "env", tmp_path / "cache"
    absolute = Path(hostile_path) if hostile_path.startswith("/") else None
    if absolute:
        absolute.unlink(missing_ok=True)
    result = cli(
        lab.service,
        "install",
        lock_id,
        "--prefix",
        str(prefix),
        "--server",
        lab.service.url,
        "--cache-dir",
        str(cache),
    )
    # Nothing beside the prefix: the climbing path would have landed in work/<pkg>/...
    outside = _files(work) - _files(prefix) - {prefix}
    assert not outside, f"install wrote outside the prefix: {sorted(outside)}"
    if absolute:
        assert not absolute.exists(), f"install wrote {absolute}"
        absolute.unlink(missing_ok=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{name}-1.0-0{fmt}" in result.stderr and hostile_path in result.stderr, result.stderr
    assert "outside the prefix" in result.stderr, result.stderr
    # Refused before anything was linked: no package files, no conda-meta record.
    assert not list(prefix.glob("conda-meta/*.json")), _files(prefix)
    assert not (prefix / "share").exists(), _files(prefix)
