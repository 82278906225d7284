"""Thin Celery tasks: claim the job in the database, call the solver, store the lock."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from app.archive import request_archive
from app.config import get_settings
from app.db import session_scope
from app.jobs import claim, fail, set_progress, succeed
from app.locks import store_lock
from app.targets import Target
from workers.celery_app import celery_app
from workers.solver import SolveFailure, Solver

log = logging.getLogger(__name__)

_solver: Solver | None = None


def get_solver() -> Solver:
    """One warm Solver (and Gateway) per worker process."""
    global _solver
    if _solver is None:
        settings = get_settings()
        _solver = Solver(settings.repodata_cache_dir, settings.repodata_ttl)
    return _solver


def _targets(request: dict) -> list[Target]:
    return [
        Target(t["name"], t["platform"], tuple(t["virtual_packages"])) for t in request["targets"]
    ]


@celery_app.task(name="condarchive.solve")
def solve(job_id: str) -> None:
    run_solve(job_id)


def run_solve(job_id: str) -> None:
    settings = get_settings()
    with session_scope() as session:
        job = claim(
            session, job_id, lease=settings.solve_timeout + 60, max_attempts=settings.max_attempts
        )
        if job is None:
            log.info("job %s is not claimable (done, running elsewhere or gone)", job_id)
            return
        request = job.request
        progress: dict[str, str] = dict(job.progress or {})

        def on_progress(target: str, state: str) -> None:
            progress[target] = state
            set_progress(session, job_id, "solving", progress)

        exclude_newer = request.get("exclude_newer")
        try:
            locked, provenance = asyncio.run(
                get_solver().solve(
                    channels=request["spec"]["channels"],
                    specs=request["spec"]["dependencies"],
                    targets=_targets(request),
                    exclude_newer=datetime.fromisoformat(exclude_newer) if exclude_newer else None,
                    channel_priority=request["channel_priority"],
                    timeout=settings.solve_timeout,
                    on_progress=on_progress,
                )
            )
        except SolveFailure as failure:
            fail(session, job_id, failure.kind, failure.message, failure.detail, progress)
            return
        except Exception as exc:  # noqa: BLE001 - a job must end, with its reason
            log.exception("job %s failed unexpectedly", job_id)
            fail(session, job_id, "internal", f"{type(exc).__name__}: {exc}", {}, progress)
            return
        set_progress(session, job_id, "storing", progress)
        spec = {**request["spec"], "name": request.get("name"), "submitted": request["submitted"]}
        lock_id = store_lock(session, locked, spec, job.spec_hash, provenance)
        session.commit()
        succeed(session, job_id, lock_id, progress)
        if settings.archive == "auto":
            request_archive(session, lock_id, retry_failed=False)  # sends the task by name
