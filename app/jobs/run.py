"""Running one solve job in a worker: claim it, solve it, store the lock, record the result.

The Celery task (workers/tasks.py) calls :func:`run_solve` with the job id its message
carries; everything else is in the database. A caller may pass its own :class:`Solver`
and a :data:`~app.solve.solver.StepTimer`, which is how bench/profile.py times each step
of this body without patching it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from functools import lru_cache

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.archive.state import request_archive
from app.config import get_settings
from app.core.pypi_spec import PyPISpec
from app.core.targets import Target
from app.db.session import pinned_session_scope
from app.jobs.heartbeat import Heartbeat
from app.jobs.state import ClaimedJob, claim, fail, succeed
from app.locks.store import RequestRecord, store_lock
from app.solve.pypi_lock import lock_pypi
from app.solve.solver import SolveFailure, Solver, StepTimer, untimed

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def get_solver() -> Solver:
    """One warm Solver (and Gateway) per worker process."""
    settings = get_settings()
    return Solver(settings.repodata_cache_dir, settings.repodata_ttl, settings.repodata_retries)


def _targets(request: dict) -> list[Target]:
    return [
        Target(t["name"], t["platform"], tuple(t["virtual_packages"])) for t in request["targets"]
    ]


def run_solve(job_id: str, solver: Solver | None = None, step: StepTimer = untimed) -> None:
    """Claim, solve, store. The heartbeat keeps the claim while this worker lives; every
    write names the attempt, so a worker that lost the job (stalled past its lease) cannot
    overwrite what the worker that took it over records.

    `solver` defaults to this process's warm one (:func:`get_solver`); `step` is called
    around each step by name (``claim``, ``store_lock``, ``succeed``, and the solver's).
    """
    settings = get_settings()
    with pinned_session_scope() as session:
        with step("claim"):
            job = claim(
                session, job_id, lease=settings.job_lease, max_attempts=settings.max_attempts
            )
        if job is None:
            log.info("job %s is not claimable (done, running elsewhere or gone)", job_id)
            return
        attempt = job.attempts
        log.info("job %s: attempt %d of %d claimed", job_id, attempt, settings.max_attempts)
        solved = _solve_and_store(session, job, attempt, solver or get_solver(), step)
        if solved is None:
            return
        lock_id, progress = solved
        with step("succeed"):
            won = succeed(session, job_id, lock_id, progress, attempt)
        if not won:
            log.warning("job %s: attempt %d lost the job; lock %s kept", job_id, attempt, lock_id)
            return
        if settings.archive == "auto":
            request_archive(session, lock_id, retry_failed=False)  # sends the task by name


def _solve_and_store(
    session: Session,
    job: ClaimedJob,
    attempt: int,
    solver: Solver,
    step: StepTimer,
) -> tuple[str, dict[str, str]] | None:
    """(lock id, progress), or None when the job failed (recorded unless it was lost).

    The heartbeat runs while the solver does, and is stopped (its thread joined) before
    this session writes anything: on SQLite the session holds the write lock from
    store_lock() until succeed() commits, so a beat still writing then would wait for the
    lock while the job waited for the beat (Heartbeat.__exit__ joins it for up to 10 s).
    What follows the solve is a few writes, well inside the lease.
    """
    settings = get_settings()
    job_id, request = job.id, job.request
    progress: dict[str, str] = dict(job.progress or {})
    beat = Heartbeat(job_id, attempt, settings.job_lease)

    def on_progress(target: str, state: str) -> None:
        # Written by the heartbeat thread, so the solve does not wait for the commit: when
        # a target starts fetching repodata or solving, and when one of several ends; the
        # final state is written with the job's result anyway. The job's stage is
        # "fetching repodata" until some target has begun solving.
        before = progress.get(target)
        progress[target] = state
        started = any(v not in ("pending", "fetching repodata") for v in progress.values())
        stage = "solving" if started else "fetching repodata"
        if state in ("fetching repodata", "solving"):
            if before == "pending" or state == "solving":
                beat.report(stage, progress)
        elif len(progress) > 1:
            beat.report(stage, progress)

    exclude_newer = request.get("exclude_newer")
    try:
        with beat:
            locked, provenance = asyncio.run(
                solver.solve(
                    channels=request["spec"]["channels"],
                    specs=request["spec"]["dependencies"],
                    targets=_targets(request),
                    exclude_newer=datetime.fromisoformat(exclude_newer) if exclude_newer else None,
                    channel_priority=request["channel_priority"],
                    timeout=settings.solve_timeout,
                    on_progress=on_progress,
                    step=step,
                )
            )
            if pypi := request["spec"].get("pypi"):
                with step("pypi"):
                    beat.report("resolving PyPI packages", progress)
                    locked, provenance["pypi"] = lock_pypi(
                        locked,
                        PyPISpec.from_canonical(pypi),
                        datetime.fromisoformat(exclude_newer) if exclude_newer else None,
                        settings,
                    )
    except SolveFailure as failure:
        fail(session, job_id, failure.kind, failure.message, failure.detail, progress, attempt)
        return None
    except (OperationalError, InterfaceError):
        # The database went away: not the job's fault. Its lease runs out and the
        # sweeper gives it to a worker again (up to CONDARCHIVE_MAX_ATTEMPTS).
        raise
    except Exception as exc:  # noqa: BLE001 - a job must end, with its reason
        log.exception("job %s failed unexpectedly", job_id)
        fail(session, job_id, "internal", f"{type(exc).__name__}: {exc}", {}, progress, attempt)
        return None
    # What this job asked is kept with the job's request record, not with the lock.
    asked = RequestRecord(
        kind="solve",
        key=job_id,
        job_id=job_id,
        name=request.get("name"),
        spec=request["spec"],
        spec_hash=job.spec_hash,
        submitted=request["submitted"],
        provenance=provenance,
    )
    # Committed by succeed() together with the job's result (or alone if this attempt
    # lost the job: a lock is valid whoever made it).
    with step("store_lock"):
        lock_id = store_lock(session, locked, request["spec"]["channels"], asked)
    return lock_id, progress
