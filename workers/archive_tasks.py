"""Celery task entry points for the archive: archive a lock, verify the archive, re-send
lost work. The work itself is in app/archive/run.py."""

from __future__ import annotations

from app.archive import run as archive
from app.queue import names
from app.queue.celery_app import celery_app


@celery_app.task(name=names.ARCHIVE_LOCK)
def archive_lock(lock_id: str) -> None:
    archive.run_archive(lock_id)


@celery_app.task(name=names.VERIFY_ARCHIVE)
def verify_archive() -> None:
    archive.verify_archive()


@celery_app.task(name=names.ARCHIVE_SWEEP)
def archive_sweep() -> None:
    """Re-send lock archives whose message was lost (broker restart, worker killed)."""
    archive.resend_stale_archives()
