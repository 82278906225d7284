"""Celery task entry points for solve jobs. The job's body is in app/jobs/run.py."""

from __future__ import annotations

from app.jobs.run import run_solve
from app.queue import names
from app.queue.celery_app import celery_app


@celery_app.task(name=names.SOLVE)
def solve(job_id: str) -> None:
    run_solve(job_id)
