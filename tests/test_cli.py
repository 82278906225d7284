"""`condarchive lock` as a user runs it: a subprocess against the running service.

Exit codes: 0 done (lock id and link printed, `-o` writes the lock), 1 failed solve or
unreachable server (reason printed), 2 refused (bad arguments, or any 4xx from the server).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.service import ROOT, Service, free_port

pytestmark = pytest.mark.process  # condarchive runs as real processes


@pytest.fixture(scope="module", autouse=True)
def no_server_errors(embedded: Service) -> Iterator[None]:
    before = len(embedded.server_errors())
    yield
    assert embedded.server_errors()[before:] == []


def condarchive(*args: str, stderr: int | None = subprocess.PIPE) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=120,
    )


def write_env(path: Path, channel_url: str, *dependencies: str) -> Path:
    lines = "".join(f"  - {json.dumps(d)}\n" for d in dependencies)
    path.write_text(f"name: cli\nchannels:\n  - {channel_url}\ndependencies:\n{lines}")
    return path


def test_lock_three_targets(
    tmp_path: Path, embedded: Service, client: httpx.Client, channel_url: str
) -> None:
    env = write_env(tmp_path / "environment.yml", channel_url, "torchlike", "numlib>=1.20,<2")
    out = tmp_path / "out.json"
    result = condarchive(
        "lock",
        str(env),
        "--target",
        "linux-64",
        "--target",
        "osx-arm64",
        "--target",
        "linux-64-cuda12",
        "--server",
        embedded.url,
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    lock_id, link = result.stdout.split()
    assert len(lock_id) == 64 and int(lock_id, 16) >= 0
    assert link == f"{embedded.url}/l/{lock_id}"
    written = json.loads(out.read_text())
    assert written == client.get(f"/api/v1/locks/{lock_id}").json()
    assert set(written["targets"]) == {"linux-64", "osx-arm64", "linux-64-cuda12"}
    builds = {
        name: {p["name"]: p["build"] for p in target["packages"]}["torchlike"]
        for name, target in written["targets"].items()
    }
    assert builds == {"linux-64": "cpu_0", "osx-arm64": "cpu_0", "linux-64-cuda12": "cuda124_1"}


def test_named_target_with_virtual_packages(
    tmp_path: Path, embedded: Service, client: httpx.Client, channel_url: str
) -> None:
    env = write_env(tmp_path / "env.yml", channel_url, "torchlike", "fftlike")
    result = condarchive(
        "lock",
        str(env),
        "-t",
        "gpu=linux-64:__cuda=12.4,__glibc=2.28",
        "-t",
        "cpu=linux-64:",
        "--server",
        embedded.url,
    )
    assert result.returncode == 0, result.stderr
    lock = client.get(f"/api/v1/locks/{result.stdout.split()[0]}").json()
    gpu, cpu = lock["targets"]["gpu"], lock["targets"]["cpu"]
    assert gpu["platform"] == cpu["platform"] == "linux-64"
    assert {"__cuda=12.4=0", "__glibc=2.28=0"} <= set(gpu["virtual_packages"])
    assert {p["name"]: p["build"] for p in gpu["packages"]} == {
        "torchlike": "cuda124_1",
        "fftlike": "cuda_0",
        "libfoo": "h0_0",
    }
    assert {p["name"]: p["build"] for p in cpu["packages"]}["torchlike"] == "cpu_0"


def test_lock_from_spec_flags(embedded: Service, channel_url: str) -> None:
    result = condarchive(
        "lock",
        "--spec",
        "numlib=1.26",
        "--spec",
        "pyutil",
        "-c",
        channel_url,
        "-t",
        "osx-arm64",
        "--server",
        embedded.url,
    )
    assert result.returncode == 0, result.stderr


def test_progress_on_a_terminal(tmp_path: Path, embedded: Service, channel_url: str) -> None:
    """On a TTY the CLI shows the stage and how many targets are done."""
    env = write_env(tmp_path / "env.yml", channel_url, "libfoo")
    target = f"p{uuid.uuid4().hex[:8]}=linux-64:"  # a new request, so the CLI has to wait
    controller, terminal = pty.openpty()
    try:
        result = condarchive(
            "lock", str(env), "-t", target, "--server", embedded.url, stderr=terminal
        )
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal side is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    assert result.returncode == 0
    assert b"targets done)" in shown, shown


def test_unsatisfiable_exits_1_with_the_reason(
    tmp_path: Path, embedded: Service, channel_url: str
) -> None:
    env = write_env(tmp_path / "env.yml", channel_url, "conflict-a")
    result = condarchive("lock", str(env), "-t", "linux-64", "--server", embedded.url)
    assert result.returncode == 1
    assert "solve failed (unsatisfiable)" in result.stderr
    assert "conflict-a" in result.stderr and "libfoo <1.0" in result.stderr
    assert result.stdout == ""


def test_unreachable_server_exits_1() -> None:
    result = condarchive("lock", "--spec", "numpy", "--server", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "cannot reach condarchive" in result.stderr


def test_usage_errors_exit_2(tmp_path: Path, embedded: Service, channel_url: str) -> None:
    assert condarchive().returncode == 2
    missing = condarchive("lock", "--server", embedded.url)
    assert missing.returncode == 2 and "environment.yml" in missing.stderr
    unreadable = condarchive("lock", str(tmp_path / "nope.yml"), "--server", embedded.url)
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr
    bad_flag = condarchive("lock", "--channel-priority", "loose")
    assert bad_flag.returncode == 2


def test_refused_input_exits_2_naming_it(
    tmp_path: Path, embedded: Service, channel_url: str
) -> None:
    env = write_env(tmp_path / "env.yml", channel_url, "numlib", "numlib >>1")
    result = condarchive("lock", str(env), "-t", "linux-64", "--server", embedded.url)
    assert result.returncode == 2
    assert "numlib >>1" in result.stderr and "line 6" in result.stderr
    assert "environment.dependencies.1" in result.stderr

    env = write_env(tmp_path / "ok.yml", channel_url, "numlib")
    result = condarchive("lock", str(env), "-t", "linux-32", "--server", embedded.url)
    assert result.returncode == 2 and "unknown platform 'linux-32'" in result.stderr

    result = condarchive(
        "lock", "--spec", "numlib", "-c", "conda-forge-evil", "--server", embedded.url
    )
    assert result.returncode == 2 and "CONDARCHIVE_ALLOWED_CHANNELS" in result.stderr
