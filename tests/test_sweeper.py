"""Nothing accepted is lost: a 202'd job is in the database, and the sweeper re-sends it.

The first test is what a user meets: the broker is down when they POST, they still get
202, the job is in the database, and it finishes once the broker is back. The others
call the sweep itself on SQLite and Postgres, with a fake broker, to pin down what it
re-sends and what it leaves alone (a long, healthy queue is not sent twice).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.core.specs import SolveRequest, build_spec
from app.core.targets import parse_targets
from app.db.models import Base, SolveJob, utcnow
from app.db.session import make_engine
from app.jobs.state import claim, heartbeat, submit, succeed
from app.jobs.sweeper import sweep
from tests.conftest import POSTGRES_ADMIN_URL, require_services
from tests.support.channel_server import ChannelServer
from tests.support.faults import (
    fault_service,
    finish,
    job_row,
    ready_worker,
    redis_server,  # noqa: F401 - fixture
    solve_body,
)
from tests.support.redis_server import RedisServer
from tests.support.service import wait_for_solve


@pytest.mark.process
@pytest.mark.distributed
def test_job_posted_while_the_broker_is_down_is_kept_and_finished(
    tmp_path: Path,
    channel_server: ChannelServer,
    fresh_postgres_url: str,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    service = fault_service(tmp_path, channel_server, fresh_postgres_url, redis_server.url)
    try:
        redis_server.stop()
        with httpx.Client(base_url=service.url, timeout=30) as http:
            started = time.monotonic()
            response = http.post(
                "/api/v1/solves", json=solve_body(channel_server.channel_url("testchan"))
            )
            assert response.status_code == 202, response.text
            assert time.monotonic() - started < 5  # a short retry, then the answer
            job_id = response.json()["id"]
            # Committed before the 202: the database has it, queued, with no message.
            assert job_row(fresh_postgres_url, job_id)["status"] == "queued"
            assert "could not queue job" in service.server.log()  # type: ignore[union-attr]

            redis_server.start()  # same port, empty
            ready_worker(service)
            job = wait_for_solve(http, job_id, timeout=30)
        assert job["status"] == "succeeded", job
        assert job_row(fresh_postgres_url, job_id)["attempts"] == 1
        assert service.server_errors() == []
    finally:
        finish(service)


# --- the sweep itself ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """A session on an empty schema: SQLite in tmp_path, or a Postgres database of its own."""
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'sweep.sqlite'}", None
    else:
        require_services()
        import psycopg

        name = f"condarchive_sweep_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url, drop = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with sessionmaker(bind=engine, expire_on_commit=False)() as db:
        yield db
    engine.dispose()
    if drop is not None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')


SETTINGS = Settings(job_lease=10, sweep_grace=30, max_attempts=2, archive_lease=120)


def new_job(session: Session, age: float = 0.0) -> str:
    """A queued job created `age` seconds ago."""
    spec = build_spec(
        environment=None,
        channels=["https://conda.anaconda.org/conda-forge"],
        dependencies=[f"pkg{uuid.uuid4().hex[:8]}"],
        allowed_channels=["conda-forge"],
        channel_alias="https://conda.anaconda.org",
    )
    targets = tuple(parse_targets(["linux-64"], ["targets"]))
    request = SolveRequest(
        spec=spec, targets=targets, exclude_newer=None, channel_priority="strict"
    )
    job, created = submit(session, request, window=0)
    assert created
    backdate(session, job.id, created_at=age)
    return job.id


def backdate(session: Session, job_id: str, **ages: float) -> None:
    values = {column: utcnow() - timedelta(seconds=age) for column, age in ages.items()}
    session.execute(update(SolveJob).where(SolveJob.id == job_id).values(**values))
    session.commit()


def run_sweep(session: Session, waiting: int | None) -> tuple[list[str], object]:
    sent: list[str] = []
    result = sweep(
        session,
        SETTINGS,
        send=lambda job_id: sent.append(job_id) or True,
        depth=lambda: waiting,
    )
    return sent, result


def status(session: Session, job_id: str) -> SolveJob:
    job = session.get(SolveJob, job_id, populate_existing=True)
    assert job is not None
    return job


def test_only_queued_jobs_past_the_grace_period_are_resent_once(session: Session) -> None:
    old, new = new_job(session, age=60), new_job(session, age=1)
    sent, _ = run_sweep(session, waiting=None)  # broker cannot say: trust the grace period
    assert sent == [old]
    assert run_sweep(session, waiting=None)[0] == []  # not again within the grace period
    backdate(session, old, heartbeat_at=31)
    assert run_sweep(session, waiting=0)[0] == [old]  # a grace period later, still missing
    assert status(session, new).status == "queued"


def test_a_queue_that_holds_every_job_is_not_resent(session: Session) -> None:
    jobs = [new_job(session, age=60) for _ in range(3)]
    assert run_sweep(session, waiting=3)[0] == []  # a long, healthy queue
    assert sorted(run_sweep(session, waiting=2)[0]) == sorted(jobs)  # one is missing


def test_expired_running_job_is_requeued_and_resent_even_with_a_full_queue(
    session: Session,
) -> None:
    job_id = new_job(session, age=60)
    assert claim(session, job_id, lease=10, max_attempts=2) is not None
    backdate(session, job_id, heartbeat_at=5)
    assert run_sweep(session, waiting=100)[0] == []  # lease not yet expired: left alone
    backdate(session, job_id, heartbeat_at=11)
    sent, result = run_sweep(session, waiting=100)
    assert sent == [job_id] and result.requeued == [job_id]  # type: ignore[attr-defined]
    job = status(session, job_id)
    assert (job.status, job.attempts) == ("queued", 1)
    # The dead worker's attempt can no longer write; the next claim is attempt 2.
    assert heartbeat(session, job_id, 1) is False
    assert claim(session, job_id, lease=10, max_attempts=2).attempts == 2  # type: ignore[union-attr]
    assert succeed(session, job_id, "0" * 64, {}, attempt=1) is False
    assert status(session, job_id).status == "running"


def test_expired_job_out_of_attempts_fails_with_its_reason(session: Session) -> None:
    job_id = new_job(session, age=60)
    for _ in range(2):
        assert claim(session, job_id, lease=10, max_attempts=2) is not None
        backdate(session, job_id, heartbeat_at=11)
    sent, result = run_sweep(session, waiting=0)
    assert sent == [] and result.failed == [job_id]  # type: ignore[attr-defined]
    job = status(session, job_id)
    assert (job.status, job.attempts, job.active_key) == ("failed", 2, None)
    assert job.error is not None and job.error["kind"] == "attempts"
    assert job.error["detail"] == {"attempts": 2, "max_attempts": 2}
    assert claim(session, job_id, lease=10, max_attempts=2) is None  # and it stays failed


def test_a_late_message_for_a_spent_job_fails_it_instead_of_running_it(session: Session) -> None:
    """A redelivered message can reach a job before the sweeper does: the claim ends it."""
    job_id = new_job(session)
    for _ in range(2):
        assert claim(session, job_id, lease=10, max_attempts=2) is not None
        backdate(session, job_id, heartbeat_at=11)
    assert claim(session, job_id, lease=10, max_attempts=2) is None
    job = status(session, job_id)
    assert (job.status, job.attempts, job.error["kind"]) == ("failed", 2, "attempts")  # type: ignore[index]


def test_a_broker_that_refuses_stops_the_sweep_until_the_next_grace_period(
    session: Session,
) -> None:
    jobs = [new_job(session, age=60) for _ in range(3)]
    tried: list[str] = []
    result = sweep(session, SETTINGS, send=lambda j: tried.append(j) or False, depth=lambda: None)
    assert len(tried) == 1 and result.resent == []  # one refusal, not one per job
    assert run_sweep(session, waiting=None)[0] == []  # within the grace period: left alone
    for job_id in jobs:
        backdate(session, job_id, heartbeat_at=31)
    assert sorted(run_sweep(session, waiting=None)[0]) == sorted(jobs)
