"""The install users get: the project as the Dockerfile installs it, with no test extras.

The rest of the suite runs from `.[test]`, whose extras pull in packages (such as
`packaging`, which kombu's Redis transport imports) that a production install would lack.
These tests build the Dockerfile's context (its COPY lines) in a temp dir, run its
`pip install` into a fresh virtual environment, and run the topology docker-compose.yml
describes from that environment: `db upgrade`, `token create`, `serve --no-worker` and
two `worker` processes on the real PostgreSQL and Redis; then the embedded `serve`.
Nothing of this checkout is importable from there (the processes run from a temp dir).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import REDIS_URL, require_services
from tests.support.archive import wait_archive
from tests.support.channel_server import ChannelServer
from tests.support.service import ROOT, Service, base_env, submit_and_wait

pytestmark = [pytest.mark.process, pytest.mark.distributed, pytest.mark.install]

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"


def dockerfile_copies() -> list[tuple[list[str], str]]:
    """The Dockerfile's `COPY SRC... DEST` lines."""
    copies = []
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            copies.append((words[1:-1], words[-1]))
    return copies


def dockerfile_pip_install() -> list[str]:
    """The arguments of the Dockerfile's `pip install` (the install users get)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    match = re.search(r"RUN\s+pip install ([^&\n]+)", text)
    assert match, "the Dockerfile installs the project with `pip install`"
    return shlex.split(match.group(1))


def compose_commands() -> dict[str, list[str]]:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    return {name: service["command"] for name, service in services.items() if "command" in service}


def worker_healthcheck() -> list[str]:
    """The compose worker healthcheck's `celery ... -d` command, without the node name."""
    test = yaml.safe_load(COMPOSE.read_text())["services"]["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL", test
    words = shlex.split(test[1])
    assert words[0] == "celery" and words[-2] == "-d", words
    return words[:-1]


def test_dockerfile_and_compose_run_what_this_test_runs() -> None:
    """The image installs with `pip install .` and compose starts the two entry points."""
    args = dockerfile_pip_install()
    assert [a for a in args if a != "--no-cache-dir"] == ["."], args
    commands = compose_commands()
    assert commands["api"][:2] == ["condarchive", "serve"] and "--no-worker" in commands["api"]
    assert commands["worker"] == ["condarchive", "worker"]
    image_cmd = re.search(r"^CMD (.+)$", DOCKERFILE.read_text(), re.M)
    assert image_cmd and json.loads(image_cmd.group(1))[:2] == ["condarchive", "serve"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding `pip install .` of the Dockerfile's build context; its bin dir."""
    context = tmp_path_factory.mktemp("image-context")
    for sources, dest in dockerfile_copies():
        for source in sources:
            src = ROOT / source
            target = context / dest / src.name if dest.endswith("/") else context / dest
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
    venv = tmp_path_factory.mktemp("venv") / "prod"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip_args = [a for a in dockerfile_pip_install() if a != "--no-cache-dir"]
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *pip_args],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"pip install . failed:\n{done.stdout}\n{done.stderr}"
    return venv / "bin"


def run(bin_dir: Path, env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [str(bin_dir / "condarchive"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"condarchive {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_install_holds_no_test_only_packages(installed: Path) -> None:
    """The fresh venv really is the production one: no pytest, so no `packaging` through it."""
    probe = "import importlib.util as u; print(u.find_spec('pytest'))"
    found = subprocess.run([str(installed / "python"), "-c", probe], capture_output=True, text=True)
    assert found.stdout.strip() == "None", found.stdout


@pytest.fixture
def prod_env(
    tmp_path: Path, channel_server: ChannelServer, postgres_url: str
) -> Iterator[dict[str, str]]:
    require_services()
    env = base_env(tmp_path / "data", channel_server.url)
    # Strip what the dev venv put on the environment, so only the fresh install is seen.
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    env.pop("CONDARCHIVE_AUTH")  # distributed mode's default: writes need a token
    env.update(CONDARCHIVE_DATABASE_URL=postgres_url, CONDARCHIVE_BROKER_URL=REDIS_URL)
    yield env
    import redis

    redis.Redis.from_url(REDIS_URL).delete(env["CONDARCHIVE_QUEUE"])


def test_distributed_mode_runs_from_the_production_install(
    installed: Path, prod_env: dict[str, str], tmp_path: Path, channel_url: str
) -> None:
    run(installed, prod_env, tmp_path, "db", "upgrade")
    token = run(installed, prod_env, tmp_path, "token", "create", "--name", "operator").strip()

    service = Service(
        prod_env, tmp_path, no_worker=True, command=[str(installed / "condarchive")]
    ).start()
    try:
        workers = [service.add_worker(), service.add_worker()]
        for worker in workers:
            service.wait_for_log(worker, " ready.")
        # The compose worker healthcheck's own command works from this install too, with
        # the two workers' node names for the container's.
        names = ",".join(f"condarchive-{w.popen.pid}@{socket.gethostname()}" for w in workers)
        ping = subprocess.run(
            [str(installed / "celery"), *worker_healthcheck()[1:], names],
            env=prod_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ping.returncode == 0 and ping.stdout.count("pong") == 2, ping.stdout + ping.stderr

        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=service.url, timeout=30, headers=headers) as http:
            assert http.get("/api/v1/health").json()["mode"] == "distributed"
            body = {
                "channels": [channel_url],
                "dependencies": ["numlib>=1.20,<2", "pyutil"],
                "targets": ["linux-64", "osx-arm64"],
            }
            job = submit_and_wait(http, body, timeout=120)
            assert job["status"] == "succeeded", (job, service.logs())
            archive = wait_archive(http, job["lock_id"], timeout=120)
            assert archive["status"] == "archived", archive
            explicit = http.get(f"/l/{job['lock_id']}/explicit/linux-64.txt")
            assert explicit.status_code == 200 and "@EXPLICIT" in explicit.text
        assert service.server_errors() == []
    finally:
        service.stop()


def test_embedded_mode_runs_from_the_production_install(
    installed: Path, tmp_path: Path, channel_server: ChannelServer, channel_url: str
) -> None:
    env = base_env(tmp_path / "data", channel_server.url)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    service = Service(env, tmp_path, command=[str(installed / "condarchive")]).start()
    try:
        service.wait_for_log(service.server, " ready.")  # the worker `serve` started
        with httpx.Client(base_url=service.url, timeout=30) as http:
            assert http.get("/api/v1/health").json()["mode"] == "embedded"
            body = {"channels": [channel_url], "dependencies": ["pyutil"], "targets": ["linux-64"]}
            job = submit_and_wait(http, body, timeout=120)
            assert job["status"] == "succeeded", (job, service.logs())
        assert (tmp_path / "data" / "condarchive.sqlite").exists()
        assert not (tmp_path / "condarchive-data").exists()
    finally:
        service.stop()


def test_compose_file_is_valid_against_the_compose_specification(tmp_path: Path) -> None:
    """No Docker engine runs here, so the compose file is checked against the spec's schema
    (check-jsonschema ships the Compose Specification's JSON schema as vendor.compose-spec)."""
    check = shutil.which("check-jsonschema", path=os.path.dirname(sys.executable))
    assert check, "check-jsonschema is a test dependency"
    ok = subprocess.run(
        [check, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr

    # The same check refuses a compose file that breaks the spec.
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["worker"]["replica"] = 2  # a typo of deploy.replicas
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(yaml.safe_dump(broken))
    refused = subprocess.run(
        [check, "--builtin-schema", "vendor.compose-spec", str(bad)],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "'replica' was unexpected" in refused.stdout, refused.stdout
