"""Solve jobs in the database: submit (with dedupe), claim, report progress, finish.

The database is the source of truth; a queue message only carries a job id, and a
worker acts on a job only after claiming it here, so a duplicated or re-sent message
never solves twice.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.canonical import format_time, sha256_of
from app.core.specs import SolveRequest
from app.db.models import SolveJob, utcnow
from app.db.session import write_committed

ACTIVE = ("queued", "running")
_JOBS = SolveJob.__table__


#: Job ids are uuid4 in hex (see `submit`).
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def find_job(session: Session, job_id: str) -> SolveJob | None:
    """The job with this id, or None; anything that cannot be a job id is not looked up
    (Postgres rejects a NUL byte in a query, and an unknown id must be a 404, not a 500)."""
    if not _JOB_ID.match(job_id):
        return None
    return session.get(SolveJob, job_id)


def find_fresh(session: Session, key: str, window: float) -> SolveJob | None:
    """The newest succeeded job for this request (its :func:`dedupe_key`) finished within
    the window."""
    since = utcnow() - timedelta(seconds=window)
    return session.scalars(
        select(SolveJob)
        .where(
            SolveJob.active_key == key,
            SolveJob.status == "succeeded",
            SolveJob.finished_at >= since,
        )
        .order_by(SolveJob.finished_at.desc())
        .limit(1)
    ).first()


def dedupe_key(request: SolveRequest) -> str:
    """What makes two requests one job: the request hash, and what the job shows of the
    request (its name and submitted text), so that a request differing only in those
    gets a job (and a lock page) of its own instead of another requester's."""
    return sha256_of(
        {"request": request.hash, "name": request.spec.name, "submitted": request.spec.submitted}
    )


def submit(
    session: Session, request: SolveRequest, window: float, token_id: int | None = None
) -> tuple[SolveJob, bool]:
    """Return (job, created). An identical active or fresh job is returned instead of a new one.

    The unique `active_key` decides: the job holding it (queued, running, or succeeded
    and not yet released) is the one identical requests share. A succeeded job keeps the
    key, so a request racing its finish still joins it; once the dedupe window has
    passed, the next identical request releases the key and takes it.

    Commits: a created job is in the database before the caller answers 202. `token_id`
    records who submitted it (a token's concurrent solves are bounded, app/jobs/quota.py).
    """
    request_hash = request.hash
    key = dedupe_key(request)
    since = utcnow() - timedelta(seconds=window)
    for _ in range(5):
        job = SolveJob(
            id=uuid.uuid4().hex,
            request_hash=request_hash,
            spec_hash=request.spec.hash,
            request={
                **request.canonical(),
                "submitted": request.spec.submitted,
                "name": request.spec.name,
            },
            active_key=key,
            status="queued",
            progress={t.name: "pending" for t in request.targets},
            token_id=token_id,
        )
        session.add(job)
        try:
            session.commit()
            return job, True
        except IntegrityError:
            session.rollback()
        holder = session.scalars(select(SolveJob).where(SolveJob.active_key == key)).first()
        if holder is None:
            continue  # released meanwhile: try the insert again
        if holder.status in ACTIVE or (
            holder.status == "succeeded"
            and holder.finished_at is not None
            and holder.finished_at >= since
        ):
            return holder, False
        session.execute(
            update(SolveJob)
            .where(SolveJob.id == holder.id, SolveJob.active_key == key)
            .values(active_key=None)
        )
        session.commit()
    raise RuntimeError("could not submit the job after 5 attempts")  # pragma: no cover


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs of the job it claimed (read back by the claiming UPDATE)."""

    id: str
    request: dict[str, Any]
    spec_hash: str
    progress: dict[str, Any]
    attempts: int


def claim(session: Session, job_id: str, lease: float, max_attempts: int) -> ClaimedJob | None:
    """Mark the job running if it is queued (or running with an expired lease).

    Each claim counts an attempt, and the attempt number is the worker's fencing token:
    everything it writes afterwards (:func:`heartbeat`, :func:`set_progress`,
    :func:`succeed`, :func:`fail`) names it, so a worker whose job was taken over
    (stalled past its lease, then woke up) can no longer change the job.
    """
    stale = utcnow() - timedelta(seconds=lease)
    claimable = or_(
        SolveJob.status == "queued",
        (SolveJob.status == "running") & (SolveJob.heartbeat_at < stale),
    )
    # RETURNING hands back what the worker needs with the UPDATE: one round trip, and
    # no ORM object to build (see _update_job).
    now = utcnow()
    row = (
        session.connection()
        .execute(
            update(_JOBS)
            .where(SolveJob.id == job_id, claimable, SolveJob.attempts < max_attempts)
            .values(
                status="running",
                stage="fetching repodata",
                attempts=SolveJob.attempts + 1,
                started_at=now,
                heartbeat_at=now,
            )
            .returning(
                SolveJob.id,
                SolveJob.request,
                SolveJob.spec_hash,
                SolveJob.progress,
                SolveJob.attempts,
            )
        )
        .first()
    )
    session.commit()
    if row is not None:
        return ClaimedJob(row.id, row.request, row.spec_hash, row.progress or {}, row.attempts)
    spent = session.scalar(
        select(SolveJob.attempts).where(
            SolveJob.id == job_id, claimable, SolveJob.attempts >= max_attempts
        )
    )
    if spent is not None:  # claimable, but every attempt is used up
        give_up(session, job_id, spent, max_attempts, claimable)
    return None


def give_up(session: Session, job_id: str, attempts: int, max_attempts: int, *where: Any) -> bool:
    """End a job that every attempt left unfinished (its worker killed or lost each time).

    `where` narrows the UPDATE (the sweeper: only while the lease is still expired).
    """
    message = (
        f"gave up after {attempts} attempts (CONDARCHIVE_MAX_ATTEMPTS={max_attempts}): "
        "each time, the worker running it stopped before it finished (killed, or lost "
        "its connection to the database)"
    )
    values = _failed("attempts", message, {"attempts": attempts, "max_attempts": max_attempts})
    clauses = [SolveJob.id == job_id, SolveJob.attempts == attempts, *where]
    return _update_job(session, clauses, values)


def _fenced(job_id: str, attempt: int | None) -> list[Any]:
    """WHERE clauses for a worker's write: the job is still its own (see :func:`claim`)."""
    clauses: list[Any] = [SolveJob.id == job_id]
    if attempt is not None:
        clauses += [SolveJob.attempts == attempt, SolveJob.status.in_(ACTIVE)]
    return clauses


def heartbeat(session: Session, job_id: str, attempt: int) -> bool:
    """Renew the lease of a running job; False when the job is no longer this attempt's."""
    where = [*_fenced(job_id, attempt), SolveJob.status == "running"]
    return _update_job(session, where, {"heartbeat_at": utcnow()})


def set_progress(
    session: Session,
    job_id: str,
    stage: str,
    progress: dict[str, str],
    attempt: int | None = None,
) -> bool:
    """Record a running job's progress (and renew its lease); False when the job is no
    longer this attempt's, as :func:`heartbeat`."""
    where = [*_fenced(job_id, attempt), SolveJob.status == "running"]
    values = {"stage": stage, "progress": dict(progress), "heartbeat_at": utcnow()}
    return _update_job(session, where, values)


def succeed(
    session: Session,
    job_id: str,
    lock_id: str,
    progress: dict[str, str],
    attempt: int | None = None,
) -> bool:
    """Record the lock; False (and nothing written) when `attempt` no longer holds the job."""
    values = {
        "status": "succeeded",
        "stage": "done",
        "lock_id": lock_id,
        "progress": dict(progress),
        "finished_at": utcnow(),
    }
    return _update_job(session, _fenced(job_id, attempt), values)


def fail(
    session: Session,
    job_id: str,
    kind: str,
    message: str,
    detail: dict[str, Any] | None = None,
    progress: dict[str, str] | None = None,
    attempt: int | None = None,
) -> bool:
    """Record the failure; False (and nothing written) when `attempt` no longer holds the job."""
    values = _failed(kind, message, detail)
    if progress is not None:
        values["progress"] = dict(progress)
    return _update_job(session, _fenced(job_id, attempt), values)


def _update_job(session: Session, where: list[Any], values: dict[str, Any]) -> bool:
    """UPDATE one job and COMMIT (see :func:`app.db.session.write_committed`); True when the row
    matched."""
    return write_committed(session, update(_JOBS).where(*where).values(**values)).rowcount == 1


def _failed(kind: str, message: str, detail: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "status": "failed",
        "stage": "done",
        "error": {"kind": kind, "message": message, "detail": detail or {}},
        "active_key": None,
        "finished_at": utcnow(),
    }


def requeue_expired(
    session: Session, lease: float, max_attempts: int
) -> tuple[list[str], list[str]]:
    """Take back running jobs whose worker stopped renewing its lease. Commits.

    Returns (requeued, failed): a job with attempts to spare goes back to queued (its
    message is re-sent at once: see :func:`due_for_resend`); one that used them all ends
    as failed with kind ``attempts``. A worker that was only stalled finds, when it
    wakes, that its fencing token no longer matches.
    """
    stale = utcnow() - timedelta(seconds=lease)
    expired = (SolveJob.status == "running") & (SolveJob.heartbeat_at < stale)
    spent = list(
        session.execute(
            select(SolveJob.id, SolveJob.attempts).where(expired, SolveJob.attempts >= max_attempts)
        )
    )
    failed = [
        job_id
        for job_id, attempts in spent
        if give_up(session, job_id, attempts, max_attempts, expired)
    ]
    requeued = list(
        session.scalars(
            update(SolveJob)
            .where(expired, SolveJob.attempts < max_attempts)
            .values(status="queued", stage=None, heartbeat_at=None)
            .returning(SolveJob.id)
        )
    )
    session.commit()
    return requeued, failed


def due_for_resend(session: Session, grace: float, only: list[str] | None = None) -> list[str]:
    """Queued jobs not sent (or re-sent) within `grace` seconds, stamped as sent now. Commits.

    A queued job's ``heartbeat_at`` records when its message was last re-sent, so each
    job is re-sent at most once per grace period, and the stamp is taken by one atomic
    UPDATE, so two API replicas sweeping at once never both re-send the same job.
    `only` limits the sweep to these ids.
    """
    if only is not None and not only:
        return []
    cutoff = utcnow() - timedelta(seconds=grace)
    where = [
        SolveJob.status == "queued",
        func.coalesce(SolveJob.heartbeat_at, SolveJob.created_at) <= cutoff,
    ]
    if only is not None:
        where.append(SolveJob.id.in_(only))
    ids = list(
        session.scalars(
            update(SolveJob).where(*where).values(heartbeat_at=utcnow()).returning(SolveJob.id)
        )
    )
    session.commit()
    return ids


def count_queued(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(SolveJob.status == "queued")) or 0)


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
        # The lock's page as this request sees it: its own spec text and name.
        view["links"]["page"] = f"{base_url}/l/{job.lock_id}?job={job.id}"
    return view
