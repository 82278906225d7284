"""Embedded mode keeps its promises across restarts, and `condarchive db upgrade` works.

A job queued while no worker runs is on disk (SQLite database and SQLite broker), so
`condarchive serve` started again on the same data directory solves it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _active_services
from tests.support.service import ROOT, Service, base_env, wait_for_solve

pytestmark = pytest.mark.process  # condarchive runs as real processes

TABLES = {"solve_jobs", "locks", "lock_targets", "lock_packages", "packages"}


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """Services a test starts; stopped (and their logs shown on failure) whatever happens."""
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()
        if service in _active_services:
            _active_services.remove(service)


def start(services: list[Service], env: dict[str, str], workdir: Path, **kw: bool) -> Service:
    service = Service(env, workdir, **kw)
    services.append(service)
    _active_services.append(service)
    return service.start()


def test_queued_job_survives_a_restart(
    tmp_path: Path, services: list[Service], channel_url: str
) -> None:
    env = base_env(tmp_path / "data", channel_url)
    body = {
        "channels": [channel_url],
        "dependencies": ["numlib>=1.20,<2", "pyutil"],
        "targets": ["linux-64", "osx-arm64"],
    }

    first = start(services, env, tmp_path, no_worker=True)
    with httpx.Client(base_url=first.url, timeout=30) as http:
        response = http.post("/api/v1/solves", json=body)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert http.get(f"/api/v1/solves/{job_id}").json()["status"] == "queued"
    first.stop()

    second = start(services, env, tmp_path)  # same data dir, same queue, now with a worker
    with httpx.Client(base_url=second.url, timeout=30) as http:
        job = wait_for_solve(http, job_id)
        assert job["status"] == "succeeded", job
        lock = http.get(f"/api/v1/locks/{job['lock_id']}").json()
        assert set(lock["targets"]) == {"linux-64", "osx-arm64"}
        # The finished job is still found as the same request.
        again = http.post("/api/v1/solves", json=body)
        assert again.status_code == 200 and again.json()["id"] == job_id
    database = tmp_path / "data" / "condarchive.sqlite"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT attempts FROM solve_jobs WHERE id = ?", (job_id,)).fetchall() == [
            (1,)
        ]
    assert second.server_errors() == []


#: Import Celery, say so, then send one job id to the embedded broker when told to go.
_SEND_AT_ONCE = """
import os, sys, time
from app.queue.celery_app import celery_app
go, job, ready = sys.argv[1:]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
celery_app.send_task("condarchive.solve", args=[job], queue="q", retry=False)
"""


def test_embedded_broker_survives_first_use_by_many_processes(tmp_path: Path) -> None:
    """The API and the worker may open a fresh broker file at the same moment (the first
    POST while the worker starts). Every message must still be stored: a lost one leaves
    its job queued until serve restarts."""
    for round_ in range(2):
        data, go = tmp_path / f"data{round_}", tmp_path / f"go{round_}"
        env = clean_env(data_dir=str(data), queue="q")
        ready = [tmp_path / f"ready{round_}-{i}" for i in range(8)]
        senders = [
            subprocess.Popen(
                [sys.executable, "-c", _SEND_AT_ONCE, str(go), f"job-{i}", str(ready[i])],
                cwd=ROOT,
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(8)
        ]
        while not all(path.exists() for path in ready):
            assert all(sender.poll() is None for sender in senders), "a sender exited early"
            time.sleep(0.01)
        go.touch()  # all have imported Celery: now they send at the same moment
        errors = [sender.communicate(timeout=120)[1] for sender in senders]
        assert [sender.returncode for sender in senders] == [0] * 8, errors
        with sqlite3.connect(data / "broker.sqlite") as broker:
            (stored,) = broker.execute("SELECT count(*) FROM kombu_message").fetchone()
        assert stored == 8


def db_upgrade(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    env.update({f"CONDARCHIVE_{k.upper()}": v for k, v in settings.items()})
    return env


def test_db_upgrade_on_fresh_sqlite(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    result = db_upgrade(clean_env(data_dir=str(data)))
    assert result.returncode == 0, result.stderr
    assert "database upgraded to head" in result.stderr
    with sqlite3.connect(data / "condarchive.sqlite") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert TABLES <= tables
    assert revision
    again = db_upgrade(clean_env(data_dir=str(data)))  # idempotent
    assert again.returncode == 0, again.stderr


def test_db_upgrade_on_fresh_postgres(tmp_path: Path, fresh_postgres_url: str) -> None:
    import psycopg

    result = db_upgrade(clean_env(data_dir=str(tmp_path), database_url=fresh_postgres_url))
    assert result.returncode == 0, result.stderr
    with psycopg.connect(fresh_postgres_url.replace("+psycopg", "")) as db:
        tables = {
            row[0]
            for row in db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert TABLES <= tables
    assert revision
    assert not (tmp_path / "condarchive.sqlite").exists()
    again = db_upgrade(clean_env(data_dir=str(tmp_path), database_url=fresh_postgres_url))
    assert again.returncode == 0, again.stderr
