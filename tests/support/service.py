"""Run condarchive as users do: `condarchive serve` and `condarchive worker` subprocesses."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
#: The real servers the distributed tier (and the benchmark) use on 127.0.0.1.
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


def missing_services() -> list[str]:
    """Which of PostgreSQL and Redis are not listening on 127.0.0.1."""
    missing = []
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379)):
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                missing.append(name)
    return missing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(data_dir: Path, allowed_channels: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    env.update(
        {
            "CONDARCHIVE_DATA_DIR": str(data_dir),
            "CONDARCHIVE_ALLOWED_CHANNELS": allowed_channels,
            "CONDARCHIVE_QUEUE": f"test-{uuid.uuid4().hex[:12]}",
            # Distributed mode requires tokens by default; tests that check auth ask for it.
            "CONDARCHIVE_AUTH": "none",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({f"CONDARCHIVE_{k.upper()}": v for k, v in extra.items()})
    return env


class Process:
    """A subprocess with its output in a log file, shown when a test fails."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        self.args, self.env, self.log_path, self.cwd = args, env, log, cwd
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


#: Called with each Service before it starts (tests/conftest.py checks the test is marked).
start_hooks: list[Callable[[Service], None]] = []


class Service:
    """`condarchive serve` on a free port, plus any separate workers.

    By default the processes run this checkout's code (`python -m app.cli` from the repo);
    `command` runs another install instead (an installed `condarchive` script), from
    `workdir`, so that nothing of the checkout is importable.
    """

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        no_worker: bool = False,
        command: list[str] | None = None,
    ) -> None:
        self.env = dict(env)
        self.workdir = workdir
        self.no_worker = no_worker
        self.command = command
        self.cwd = ROOT if command is None else workdir
        self.port = free_port()
        self.env["CONDARCHIVE_PORT"] = str(self.port)
        self.server: Process | None = None
        self.workers: list[Process] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self) -> list[str]:
        return self.command or [sys.executable, "-m", "app.cli"]

    def start(self, timeout: float = 60) -> Service:
        for hook in start_hooks:
            hook(self)
        args = [*self.cli(), "serve", "--port", str(self.port)]
        if self.no_worker:
            args.append("--no-worker")
        self.server = Process(args, self.env, self.workdir / "serve.log", self.cwd).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.popen and self.server.popen.poll() is not None:
                raise RuntimeError(f"condarchive serve exited:\n{self.server.log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"condarchive serve did not come up:\n{self.server.log()}")

    def add_worker(self) -> Process:
        n = len(self.workers)
        worker = Process(
            [*self.cli(), "worker"], self.env, self.workdir / f"worker-{n}.log", self.cwd
        ).start()
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.server is not None:
            self.server.stop()

    def logs(self) -> str:
        parts = [self.server.log() if self.server else ""]
        parts += [w.log() for w in self.workers]
        return "\n----\n".join(parts)

    def server_errors(self) -> list[str]:
        """Access-log lines of every 5xx the API answered, and uvicorn's unhandled-error lines."""
        log = self.server.log() if self.server else ""
        return [
            line
            for line in log.splitlines()
            if _SERVER_ERROR.search(line) or "Exception in ASGI application" in line
        ]

    def wait_for_log(self, process: Process, text: str, timeout: float = 60) -> None:
        wait_for_log(process, text, timeout)


_SERVER_ERROR = re.compile(r'HTTP/1\.[01]" 5\d\d ')


def submit_and_wait(client: httpx.Client, body: dict, timeout: float = 60) -> dict:
    """POST a solve (202, or 200 when deduplicated) and poll it to its end."""
    response = client.post("/api/v1/solves", json=body)
    assert response.status_code in (200, 202), response.text
    return wait_for_solve(client, response.json()["id"], timeout)


def wait_for_solve(client: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/solves/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise TimeoutError(f"solve {job_id} still {job['status']} after {timeout}s: {job}")


def wait_for_log(process: Process, text: str, timeout: float = 60) -> None:
    """Poll a process's log until `text` appears (e.g. a Celery worker's " ready.")."""
    deadline = time.monotonic() + timeout
    while text not in process.log():
        if process.popen is not None and process.popen.poll() is not None:
            raise RuntimeError(f"process exited before logging {text!r}:\n{process.log()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not logged after {timeout}s:\n{process.log()}")
        time.sleep(0.1)
