"""One configuration: a TOML file (`condarchive --config FILE` or CONDARCHIVE_CONFIG) read
by `serve`, the workers it starts and every command, with CONDARCHIVE_* variables over it;
and operator commands that find no database say so in one line and create nothing.

As a user runs them: `condarchive` subprocesses, from a directory that is not the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.channel_server import ChannelServer
from tests.support.service import ROOT, Process, free_port

OPERATOR_COMMANDS = (("verify", "--no-upstream"), ("token", "list"), ("token", "revoke", "x"))


def condarchive(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`condarchive ARGS` run from `cwd`, with no CONDARCHIVE_* but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("command", OPERATOR_COMMANDS, ids=" ".join)
def test_no_database_is_said_in_one_line_and_nothing_is_created(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = condarchive(tmp_path, *command)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no database at" in lines[0] and str(tmp_path / "condarchive-data") in lines[0]
    assert "--config" in lines[0] and "CONDARCHIVE_CONFIG" in lines[0]
    assert "CONDARCHIVE_DATA_DIR" in lines[0]
    assert list(tmp_path.iterdir()) == [], "nothing may be created"


def test_config_file_errors_exit_2(tmp_path: Path) -> None:
    missing = condarchive(tmp_path, "--config", "nope.toml", "token", "list")
    assert missing.returncode == 2 and "nope.toml" in missing.stderr
    typo = tmp_path / "typo.toml"
    typo.write_text('dta_dir = "/srv"\n')
    result = condarchive(tmp_path, "--config", str(typo), "token", "list")
    assert result.returncode == 2 and "no setting named dta_dir" in result.stderr
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('port = "eighty"\n')
    result = condarchive(tmp_path, "token", "list", env={"CONDARCHIVE_CONFIG": str(wrong)})
    assert result.returncode == 2 and "port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.process
def test_serve_workers_and_cli_read_one_config_file(
    tmp_path: Path, channel_server: ChannelServer, channel_url: str
) -> None:
    """`serve` from a config file alone: its port, its data directory (relative to the
    file), its allowlist; the workers it starts read the same file (a solve is done, from
    the file's data directory and allowlist), and so does `token` from anywhere else."""
    home = tmp_path / "srv"
    home.mkdir()
    port = free_port()
    config = home / "condarchive.toml"
    config.write_text(
        f'data_dir = "data"\nport = {port}\nallowed_channels = "{channel_server.url}"\n'
        f'queue = "cfg-{uuid.uuid4().hex[:12]}"\nauth = "none"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    serve = Process(
        [sys.executable, "-m", "app.cli", "--config", str(config), "serve"],
        env,
        tmp_path / "serve.log",
        cwd=tmp_path,
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.popen is not None and serve.popen.poll() is None, serve.log()
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, serve.log()
            time.sleep(0.2)
        assert (home / "data" / "condarchive.sqlite").is_file()
        assert not (tmp_path / "condarchive-data").exists()

        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        via_env = {"CONDARCHIVE_CONFIG": str(config)}
        locked = condarchive(
            elsewhere, "lock", "--spec", "timely", "-c", channel_url, "-t", "linux-64",
            "--timeout", "120", env=via_env,
        )  # fmt: skip
        assert locked.returncode == 0, locked.stderr + serve.log()
        assert locked.stdout.splitlines()[1].startswith(url)

        created = condarchive(elsewhere, "token", "create", "--name", "cfg", env=via_env)
        assert created.returncode == 0, created.stderr
        listed = condarchive(elsewhere, "--config", str(config), "token", "list")
        assert listed.returncode == 0 and "cfg" in listed.stdout, listed.stderr
        # Variables still override the file: this data directory has no database.
        other = tmp_path / "other"
        overridden = condarchive(
            elsewhere, "token", "list", env={**via_env, "CONDARCHIVE_DATA_DIR": str(other)}
        )
        assert overridden.returncode == 2 and str(other) in overridden.stderr
        assert not other.exists() and list(elsewhere.iterdir()) == []
    finally:
        serve.stop()
