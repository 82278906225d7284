"""Sending job ids to the workers. The job is already in the database when this runs."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def enqueue_solve(job_id: str) -> bool:
    """Send the job id; False when the broker is unreachable (the sweeper re-sends it)."""
    from app.config import get_settings
    from workers.celery_app import celery_app

    try:
        celery_app.send_task(
            "condarchive.solve", args=[job_id], queue=get_settings().queue, retry=False
        )
    except Exception:  # noqa: BLE001 - the broker may be down; the job is safe in the DB
        log.warning("could not queue job %s; it stays queued in the database", job_id)
        return False
    return True
