"""`condarchive install`, as a user runs it: by the ref the lock page prints, and without
damaging what is there (issue 14, items 1 and 2).

The page's restore command (`condarchive install <12 hex> --target T --prefix ./env`) is
copied from the rendered HTML and run as is. An ambiguous prefix is refused listing the
candidates, by every command that takes a lock. A target for a platform that cannot run
here is refused unless --platform-mismatch-ok; an existing non-empty prefix is refused
unless --force, and replaced only once the new environment is complete; a failed install
leaves nothing behind.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import rattler

from tests.conftest import start_service, stop_service
from tests.support.archive import (
    cli,
    lab_channel,
    lock,
    prefix_records,
    wait_archive,
    wait_worker_ready,
)
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec
from tests.support.service import ROOT, Service

pytestmark = pytest.mark.process  # condarchive runs as real processes

HERE = str(rattler.Subdir.current())
ELSEWHERE = "win-64" if not HERE.startswith("win") else "linux-64"


@dataclass
class Lab:
    service: Service
    app: str  # labapp + lablib + labdata, for HERE
    small: str  # labdata alone, for HERE
    foreign: str  # labdata alone, for ELSEWHERE


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("install-safety-upstream")
    lab_channel(
        root / "labchan",
        [
            PackageSpec("labapp", "1.0", "h0_0", 0, HERE, depends=["lablib", "labdata"]),
            PackageSpec("lablib", "1.0", "h1_0", 0, HERE, fmt=".tar.bz2"),
            PackageSpec("labdata", "1.0", "0", 0, "noarch", payload_size=10_000),
        ],
    )
    upstream = ChannelServer(root).start()
    service = start_service(tmp_path_factory.mktemp("install-safety-service"), upstream.url)
    wait_worker_ready(service)
    # The CLI's installs share a package cache of their own, not the user's.
    service.env["RATTLER_CACHE_DIR"] = str(root / "rattler-cache")
    try:
        channel = upstream.channel_url("labchan")
        with httpx.Client(base_url=service.url, timeout=30) as client:
            ids = [
                lock(client, channel, ["labapp"], [HERE]),
                lock(client, channel, ["labdata"], [HERE]),
                lock(client, channel, ["labdata"], [ELSEWHERE]),
            ]
            for lock_id in ids:
                assert wait_archive(client, lock_id)["status"] == "archived"
        yield Lab(service, *ids)
    finally:
        stop_service(service)
        upstream.stop()


def install(lab: Lab, ref: str, prefix: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(lab.service, "install", ref, "--prefix", str(prefix), *extra)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its bytes (symlinks as their target)."""
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            files[str(path.relative_to(root))] = os.readlink(path).encode()
        elif path.is_file():
            files[str(path.relative_to(root))] = path.read_bytes()
    return files


def _names(prefix: Path) -> set[str]:
    return set(prefix_records(prefix))


# Item 1: the ref the page prints


def test_the_restore_command_on_the_lock_page_installs(lab: Lab, tmp_path: Path) -> None:
    page = httpx.get(
        f"{lab.service.url}/l/{lab.app}", headers={"Accept": "text/html"}, follow_redirects=True
    )
    assert page.status_code == 200, page.text
    found = re.search(r"<code>(condarchive install [^<]+)</code>", page.text)
    assert found, "the lock page prints no restore command"
    command = shlex.split(html.unescape(found.group(1)))
    assert command[3:] == ["--target", HERE, "--prefix", "./env"], command
    assert command[2] == lab.app[:12], command
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *command[1:]],
        env={
            **lab.service.env,
            "PYTHONPATH": str(ROOT),
            "RATTLER_CACHE_DIR": str(tmp_path / "cache"),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert _names(tmp_path / "env") == {"labapp", "lablib", "labdata"}, (
        result.stdout + result.stderr + str(sorted(tmp_path.rglob("*")))
    )
    # Linked in a staging directory, but every file names the prefix, not the staging one.
    for name, content in _tree(tmp_path / "env").items():
        assert b"condarchive-new" not in content, name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_ambiguous_prefix_is_refused_listing_the_candidates(lab: Lab, tmp_path: Path) -> None:
    ref = lab.small[:8]
    twin = lab.small[:10] + ("0" if lab.small[10] != "0" else "1") * 54
    database = Path(lab.service.env["CONDARCHIVE_DATA_DIR"]) / "condarchive.sqlite"
    with sqlite3.connect(database) as db:
        db.execute(
            "INSERT INTO locks (id, created_at, spec, spec_hash, provenance) "
            "VALUES (?, '2024-01-01 00:00:00.000000', '{\"channels\": []}', ?, '{}')",
            (twin, "0" * 64),
        )
    server = ("--server", lab.service.url)
    for args in (
        ("install", ref, "--prefix", str(tmp_path / "env"), *server),
        ("show", ref, *server),
        ("export", ref, "--format", "conda-lock", *server),
        ("diff", ref, lab.app, *server),
    ):
        result = cli(lab.service, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "ambiguous" in result.stderr.lower() or "start with" in result.stderr, args
        assert lab.small in result.stderr and twin in result.stderr, (args, result.stderr)
    assert not (tmp_path / "env").exists()
    # A longer prefix is unique again.
    result = install(lab, lab.small[:12], tmp_path / "env", "--server", lab.service.url)
    assert result.returncode == 0, result.stderr


# Item 2: install does not damage what is there


def test_a_target_that_cannot_run_here_is_refused(lab: Lab, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    result = install(lab, lab.foreign, prefix)
    assert result.returncode == 2, result.stderr
    assert f"is for {ELSEWHERE}, which cannot run on this machine ({HERE})" in result.stderr
    assert "--platform-mismatch-ok" in result.stderr
    assert not prefix.exists()
    # Preparing a prefix for another machine, on purpose.
    result = install(lab, lab.foreign, prefix, "--platform-mismatch-ok")
    assert result.returncode == 0, result.stderr
    assert _names(prefix) == {"labdata"}


def test_an_existing_prefix_is_refused_without_force(lab: Lab, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    assert install(lab, lab.app, prefix).returncode == 0
    before = _tree(prefix)
    result = install(lab, lab.small, prefix)
    assert result.returncode == 2, result.stderr
    assert "exists and is not empty; pass --force" in result.stderr
    assert _tree(prefix) == before
    # A non-empty directory that is not an environment is not replaced even with --force.
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("years of work\n")
    result = install(lab, lab.small, notes, "--force")
    assert result.returncode == 2, result.stderr
    assert "not a conda environment" in result.stderr
    assert (notes / "thesis.tex").read_text() == "years of work\n"
    # An empty directory is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert install(lab, lab.small, empty).returncode == 0
    assert _names(empty) == {"labdata"}


def test_force_replaces_the_environment_with_the_new_one(lab: Lab, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    assert install(lab, lab.app, prefix).returncode == 0
    result = install(lab, lab.small, prefix, "--force")
    assert result.returncode == 0, result.stderr
    # The new environment, not a mix of old and new.
    assert _names(prefix) == {"labdata"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env"]


def test_a_failed_install_leaves_nothing_behind(lab: Lab, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "cache-is-a-file"
    not_a_dir.write_text("")
    # A new prefix (and the directories made for it) is gone again.
    fresh = tmp_path / "made" / "for" / "env"
    result = install(lab, lab.app, fresh, "--cache-dir", str(not_a_dir))
    assert result.returncode == 1, result.stderr
    assert not (tmp_path / "made").exists()
    assert "left as it was" in result.stderr
    # An existing environment, with --force, is untouched.
    prefix = tmp_path / "env"
    assert install(lab, lab.small, prefix).returncode == 0
    before = _tree(prefix)
    result = install(lab, lab.app, prefix, "--force", "--cache-dir", str(not_a_dir))
    assert result.returncode == 1, result.stderr
    assert _tree(prefix) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache-is-a-file", "env"]


def test_conda_meta_records_name_no_staging_directory(lab: Lab, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    assert install(lab, lab.app, prefix).returncode == 0
    for meta in (prefix / "conda-meta").glob("*.json"):
        assert ".condarchive-new-" not in json.dumps(json.loads(meta.read_text())), meta
