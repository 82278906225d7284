"""How `condarchive` commands take a request and say how it went: flags combined with an
environment file as conda-lock combines them, one meaning per exit code, an unsatisfiable
explanation printed once and in full, and `list` / `search` of the locks the service holds.

All as a user runs them: `condarchive` subprocesses against the running service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.support.service import ROOT, Service
from tests.support.solving import solve_lock

pytestmark = pytest.mark.process  # condarchive runs as real processes

EXPLANATION_HEAD = "Cannot solve the request because of"


@pytest.fixture(scope="module")
def http(embedded: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=embedded.url, timeout=60) as client:
        yield client


def condarchive(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


@contextmanager
def serve_status(status: int) -> Iterator[str]:
    """A server that answers every request with `status` and a JSON `detail`."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = json.dumps({"detail": f"answered {status}"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def write_env(path: Path, channel: str, *dependencies: str) -> Path:
    lines = "".join(f"  - {json.dumps(d)}\n" for d in dependencies)
    path.write_text(f"name: flags\nchannels:\n  - {channel}\ndependencies:\n{lines}")
    return path


# --- item 6: flags and an environment file ------------------------------------------------


def test_channel_flag_replaces_the_files_channels(
    tmp_path: Path, embedded: Service, http: httpx.Client, channel_url: str
) -> None:
    # The file names a channel that does not exist; -c names the one that does. Before,
    # -c was dropped silently and the solve failed on the file's channel.
    env = write_env(tmp_path / "env.yml", f"{channel_url}-gone", "timely")
    result = condarchive(
        "lock", str(env), "-c", channel_url, "-t", "linux-64", "--server", embedded.url
    )
    assert result.returncode == 0, result.stderr
    assert f"channels from -c replace the file's: {channel_url}" in result.stderr
    lock = http.get(f"/api/v1/locks/{result.stdout.split()[0]}").json()
    assert lock["spec"]["channels"] == [channel_url.rstrip("/")]


def test_spec_flag_with_a_file_is_refused(tmp_path: Path, embedded: Service) -> None:
    env = write_env(tmp_path / "env.yml", "conda-forge", "timely")
    result = condarchive("lock", str(env), "--spec", "numlib", "--server", embedded.url)
    assert result.returncode == 2
    assert "not both" in result.stderr and "--spec" in result.stderr
    assert result.stdout == ""


# --- item 7: one explanation, exit codes --------------------------------------------------


def test_unsatisfiable_explanation_printed_once_in_full(
    tmp_path: Path, embedded: Service, http: httpx.Client, channel_url: str
) -> None:
    env = write_env(tmp_path / "env.yml", channel_url, "conflict-a")
    result = condarchive("lock", str(env), "-t", "linux-64", "--server", embedded.url)
    assert result.returncode == 1
    assert result.stderr.count(EXPLANATION_HEAD) == 1, result.stderr
    assert "solve failed (unsatisfiable): target linux-64:" in result.stderr
    assert "libfoo <1.0" in result.stderr
    # The API's message is the whole explanation, not its first line.
    body = {"channels": [channel_url], "dependencies": ["conflict-a"], "targets": ["linux-64"]}
    job = http.post("/api/v1/solves", json=body).json()
    while job["status"] in ("queued", "running"):
        job = http.get(f"/api/v1/solves/{job['id']}").json()
    message = job["error"]["message"]
    assert "\n" in message and "libfoo <1.0" in message
    assert job["error"]["detail"]["explanation"] in message


def test_refusals_exit_2_failures_exit_1(embedded: Service, http: httpx.Client) -> None:
    server = ["--server", embedded.url]
    unknown = condarchive("show", "0" * 64, *server)
    assert unknown.returncode == 2 and "no lock" in unknown.stderr
    bad_version = condarchive("search", "numlib", ">>>1", *server)
    assert bad_version.returncode == 2, bad_version.stderr
    bad_limit = condarchive("list", "--limit", "0", *server)
    assert bad_limit.returncode == 2, bad_limit.stderr


def test_http_refusals_exit_2(tmp_path: Path, channel_url: str) -> None:
    """401, 403, 413 and 429 from the server are refusals (2), 5xx a failure (1)."""
    for status, code in ((401, 2), (403, 2), (413, 2), (429, 2), (500, 1), (503, 1)):
        with serve_status(status) as url:
            result = condarchive("lock", "--spec", "timely", "-c", channel_url, "--server", url)
            assert result.returncode == code, (status, result.stderr)
            assert f"HTTP {status}" in result.stderr, result.stderr
            listed = condarchive("list", "--server", url)
            assert listed.returncode == code, (status, listed.stderr)
            installed = condarchive(
                "install", "0" * 64, "--prefix", str(tmp_path / "env"), "--server", url
            )
            assert installed.returncode == code, (status, installed.stderr)
            assert f"answered {status}" in installed.stderr, installed.stderr
            assert not (tmp_path / "env").exists()


# --- item 8: list and search --------------------------------------------------------------


def test_list_and_search(embedded: Service, http: httpx.Client, channel_url: str) -> None:
    old = solve_lock(http, channel_url, ["numlib<1.26", "timely"], ["linux-64"])
    new = solve_lock(http, channel_url, ["numlib>=1.26", "pyutil"], ["linux-64", "osx-arm64"])
    server = ["--server", embedded.url]

    listed = condarchive("list", "--limit", "200", *server)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["lock", "created", "name", "targets", "channels"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert old[:12] in rows and new[:12] in rows
    assert "linux-64,osx-arm64" in rows[new[:12]] and channel_url.rstrip("/") in rows[new[:12]]
    page = json.loads(condarchive("list", "--json", "--limit", "200", *server).stdout)
    assert [line.split()[0] for line in lines[1:]] == [item["id"][:12] for item in page["items"]]
    created = [item["created_at"] for item in page["items"]]
    assert created == sorted(created, reverse=True), "newest first"

    as_json = json.loads(condarchive("list", "--json", "--limit", "1", *server).stdout)
    assert as_json["limit"] == 1 and len(as_json["items"]) == 1 and as_json["total"] >= 2

    found = condarchive("search", "numlib", ">=1.26", "--limit", "200", *server)
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines()[0].split()[-1] == "matches"
    found_ids = {line.split()[0] for line in found.stdout.splitlines()[1:]}
    assert new[:12] in found_ids and old[:12] not in found_ids
    page = json.loads(condarchive("search", "numlib", "<1.26", "--json", *server).stdout)
    assert old in {item["id"] for item in page["items"]}
    assert all(m["name"] == "numlib" for item in page["items"] for m in item["matches"])

    none = condarchive("search", "no-such-package-anywhere", *server)
    assert none.returncode == 0 and none.stdout == "" and "no locks found" in none.stderr
