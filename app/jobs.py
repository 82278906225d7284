"""Solve jobs in the database: submit (with dedupe), claim, report progress, finish.

The database is the source of truth; a queue message only carries a job id, and a
worker acts on a job only after claiming it here, so a duplicated or re-sent message
never solves twice.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import SolveJob, utcnow
from app.specs import SolveRequest, format_time

ACTIVE = ("queued", "running")


#: Job ids are uuid4 in hex (see `submit`).
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def find_job(session: Session, job_id: str) -> SolveJob | None:
    """The job with this id, or None; anything that cannot be a job id is not looked up
    (Postgres rejects a NUL byte in a query, and an unknown id must be a 404, not a 500)."""
    if not _JOB_ID.match(job_id):
        return None
    return session.get(SolveJob, job_id)


def find_fresh(session: Session, request_hash: str, window: float) -> SolveJob | None:
    """The newest succeeded job for this request finished within the window."""
    since = utcnow() - timedelta(seconds=window)
    return session.scalars(
        select(SolveJob)
        .where(
            SolveJob.request_hash == request_hash,
            SolveJob.status == "succeeded",
            SolveJob.finished_at >= since,
        )
        .order_by(SolveJob.finished_at.desc())
        .limit(1)
    ).first()


def submit(session: Session, request: SolveRequest, window: float) -> tuple[SolveJob, bool]:
    """Return (job, created). An identical active or fresh job is returned instead of a new one.

    Commits: a created job is in the database before the caller answers 202.
    """
    request_hash = request.hash
    for _ in range(5):
        fresh = find_fresh(session, request_hash, window)
        if fresh is not None:
            return fresh, False
        job = SolveJob(
            id=uuid.uuid4().hex,
            request_hash=request_hash,
            spec_hash=request.spec.hash,
            request={
                **request.canonical(),
                "submitted": request.spec.submitted,
                "name": request.spec.name,
            },
            active_key=request_hash,
            status="queued",
            progress={t.name: "pending" for t in request.targets},
        )
        session.add(job)
        try:
            session.commit()
            return job, True
        except IntegrityError:
            session.rollback()
        active = session.scalars(
            select(SolveJob).where(SolveJob.active_key == request_hash)
        ).first()
        if active is not None:
            return active, False
    raise RuntimeError("could not submit the job after 5 attempts")  # pragma: no cover


def claim(session: Session, job_id: str, lease: float, max_attempts: int) -> SolveJob | None:
    """Mark the job running if it is queued (or running with an expired lease)."""
    stale = utcnow() - timedelta(seconds=lease)
    result = session.execute(
        update(SolveJob)
        .where(
            SolveJob.id == job_id,
            or_(
                SolveJob.status == "queued",
                (SolveJob.status == "running") & (SolveJob.heartbeat_at < stale),
            ),
        )
        .values(
            status="running",
            stage="fetching repodata",
            attempts=SolveJob.attempts + 1,
            started_at=utcnow(),
            heartbeat_at=utcnow(),
        )
    )
    session.commit()
    if result.rowcount != 1:
        return None
    job = session.get(SolveJob, job_id)
    if job is not None and job.attempts > max_attempts:
        fail(
            session,
            job_id,
            "internal",
            f"gave up after {job.attempts - 1} attempts",
            {"attempts": job.attempts - 1},
        )
        return None
    return job


def set_progress(session: Session, job_id: str, stage: str, progress: dict[str, str]) -> None:
    session.execute(
        update(SolveJob)
        .where(SolveJob.id == job_id, SolveJob.status == "running")
        .values(stage=stage, progress=dict(progress), heartbeat_at=utcnow())
    )
    session.commit()


def succeed(session: Session, job_id: str, lock_id: str, progress: dict[str, str]) -> None:
    session.execute(
        update(SolveJob)
        .where(SolveJob.id == job_id)
        .values(
            status="succeeded",
            stage="done",
            lock_id=lock_id,
            progress=dict(progress),
            active_key=None,
            finished_at=utcnow(),
        )
    )
    session.commit()


def fail(
    session: Session,
    job_id: str,
    kind: str,
    message: str,
    detail: dict[str, Any] | None = None,
    progress: dict[str, str] | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": "failed",
        "stage": "done",
        "error": {"kind": kind, "message": message, "detail": detail or {}},
        "active_key": None,
        "finished_at": utcnow(),
    }
    if progress is not None:
        values["progress"] = dict(progress)
    session.execute(update(SolveJob).where(SolveJob.id == job_id).values(**values))
    session.commit()


def orphaned(session: Session, lease: float) -> list[str]:
    """Jobs whose queue message may be gone: all queued ones, and running ones past the lease.

    Running ones are put back to queued; re-sending their ids is safe because a worker
    claims a job before acting on it.
    """
    stale = utcnow() - timedelta(seconds=lease)
    session.execute(
        update(SolveJob)
        .where(SolveJob.status == "running", SolveJob.heartbeat_at < stale)
        .values(status="queued", stage=None)
    )
    session.commit()
    return list(session.scalars(select(SolveJob.id).where(SolveJob.status == "queued")))


def job_view(job: SolveJob, base_url: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "stage": job.stage,
        "progress": job.progress or {},
        "request_hash": job.request_hash,
        "spec_hash": job.spec_hash,
        "created_at": format_time(job.created_at),
        "started_at": format_time(job.started_at),
        "finished_at": format_time(job.finished_at),
        "lock_id": job.lock_id,
        "error": job.error,
        "links": {"self": f"{base_url}/api/v1/solves/{job.id}"},
    }
    if job.lock_id:
        view["links"]["lock"] = f"{base_url}/api/v1/locks/{job.lock_id}"
        view["links"]["permalink"] = f"{base_url}/l/{job.lock_id}"
    return view
