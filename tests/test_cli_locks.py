"""`condarchive show | export | import | diff`, run as a user runs them: subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.service import ROOT, Service
from tests.support.solving import solve_lock

pytestmark = pytest.mark.process  # condarchive runs as real processes


@pytest.fixture(scope="module")
def http(embedded: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=embedded.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def locks(http: httpx.Client, channel_url: str) -> tuple[str, str]:
    a = solve_lock(http, channel_url, ["numlib<1.26", "timely"], ["linux-64", "osx-arm64"])
    b = solve_lock(http, channel_url, ["numlib>=1.26", "pyutil"], ["linux-64", "osx-arm64"])
    return a, b


def condarchive(
    embedded: Service, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args, "--server", embedded.url],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        input=stdin,
        timeout=120,
    )


def test_show(embedded: Service, http: httpx.Client, locks: tuple[str, str]) -> None:
    lock_id = locks[0]
    result = condarchive(embedded, "show", lock_id[:10])
    assert result.returncode == 0, result.stderr
    assert f"lock      {lock_id}" in result.stdout
    assert f"permalink {embedded.url}/l/{lock_id}" in result.stdout
    assert "target linux-64 (linux-64), 3 packages" in result.stdout
    assert "numlib" in result.stdout and "1.20.0" in result.stdout
    as_json = condarchive(embedded, "show", lock_id, "--json")
    assert as_json.returncode == 0
    assert as_json.stdout.strip().startswith("{") and f'"id": "{lock_id}"' in as_json.stdout
    unknown = condarchive(embedded, "show", "0" * 64)
    assert unknown.returncode == 2 and "no lock" in unknown.stderr


@pytest.mark.parametrize(
    ("fmt", "target", "path"),
    [
        ("conda-lock", None, "/conda-lock.yml"),
        ("pixi", None, "/pixi.lock"),
        ("explicit", "osx-arm64", "/explicit/osx-arm64.txt"),
        ("env", "linux-64", "/environment.yml?target=linux-64"),
        ("sbom", "linux-64", "/sbom/linux-64.cdx.json"),
        ("dockerfile", "linux-64", "/Dockerfile?target=linux-64"),
        ("requirements", "linux-64", "/requirements/linux-64.txt"),
        ("pylock", "osx-arm64", "/pylock/osx-arm64.toml"),
    ],
)
def test_export_writes_the_permalink_bytes(
    embedded: Service,
    http: httpx.Client,
    locks: tuple[str, str],
    tmp_path: Path,
    fmt: str,
    target: str | None,
    path: str,
) -> None:
    lock_id = locks[1]
    out = tmp_path / "out"
    args = ["export", lock_id, "--format", fmt] + (["--target", target] if target else [])
    result = condarchive(embedded, *args, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == http.get(f"/l/{lock_id}{path}").content
    to_stdout = condarchive(embedded, *args)
    assert to_stdout.stdout.encode() == out.read_bytes()


def test_export_errors(embedded: Service, locks: tuple[str, str], channel_url: str) -> None:
    no_target = condarchive(embedded, "export", locks[0], "--format", "explicit")
    assert no_target.returncode == 2 and "--target" in no_target.stderr
    several = condarchive(embedded, "export", locks[0], "--format", "env")
    assert several.returncode == 2 and "osx-arm64" in several.stderr
    wrong = condarchive(embedded, "export", locks[0], "-f", "explicit", "-t", "win-64")
    assert wrong.returncode == 2 and "no target 'win-64'" in wrong.stderr
    sbom = condarchive(embedded, "export", locks[0], "-f", "sbom")
    assert sbom.returncode == 2 and "--target" in sbom.stderr
    upstream_only = condarchive(embedded, "export", locks[0], "-f", "pixi", "--source", "archive")
    assert upstream_only.returncode == 2 and "--source archive" in upstream_only.stderr


def test_import_from_file_and_stdin(
    embedded: Service, http: httpx.Client, locks: tuple[str, str], tmp_path: Path
) -> None:
    text = http.get(f"/l/{locks[0]}/conda-lock.yml").text
    path = tmp_path / "conda-lock.yml"
    path.write_text(text)
    result = condarchive(embedded, "import", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [locks[0], f"{embedded.url}/l/{locks[0]}"]

    explicit = http.get(f"/l/{locks[0]}/explicit/linux-64.txt").text
    tampered = explicit.replace(explicit.split("#")[-1].strip(), "0" * 32)
    refused = condarchive(embedded, "import", "-", stdin=tampered)
    assert refused.returncode == 2
    assert "error: line" in refused.stderr and "md5 of" in refused.stderr

    missing = condarchive(embedded, "import", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_diff(embedded: Service, locks: tuple[str, str]) -> None:
    a, b = locks
    result = condarchive(embedded, "diff", a[:8], b[:8])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{a[:12]} -> {b[:12]}: 2 added, 2 removed, 2 changed"
    assert "  + pyutil 1.0 pyh_0" in lines
    assert "  - timely 2.0 0" in lines
    assert "  ~ numlib 1.20.0 h1_0 -> 2.0.0 h1_0" in lines
    as_json = condarchive(embedded, "diff", a, b, "--json")
    assert '"identical": false' in as_json.stdout


def test_unreachable_server_fails_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "show", "0" * 64, "--server", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1 and "cannot reach condarchive" in result.stderr
