"""Archiving a lock in a worker, verifying the archive, and re-sending lost archive runs.

:func:`run_archive` is idempotent: it only ever moves pending entries forward, so a
re-sent message, a second worker or a rerun after a kill all converge on the same archive.
A worker holds each file by a lease it renews while downloading; a killed worker's lease
runs out and the next run takes the file over from scratch (its temp file is never
served, and is removed once stale). The Celery tasks in workers/archive_tasks.py call
these functions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session

from app.archive.blobs import BlobMismatch, BlobStore, Expected, get_store, mismatches
from app.archive.download import Download, Outcome, mirror, policy_from
from app.archive.pypi_run import plan_pypi, pypi_client
from app.archive.pypi_state import (
    claim_pypi,
    ensure_pypi_entries,
    lock_pypi_ids,
    mark_pypi_archived,
    mark_pypi_failed,
    pending_pypi_entries,
    renew_pypi,
)
from app.archive.state import (
    claim,
    ensure_entries,
    lock_package_ids,
    mark_archived,
    mark_failed,
    pending_entries,
    renew,
    set_run,
    stale_runs,
    stored_blob,
    touch_run,
)
from app.archive.verify import run_verify
from app.config import Settings, get_settings
from app.db.session import session_scope
from app.locks.store import find_lock
from app.queue.send import send_archive_task

log = logging.getLogger(__name__)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def verify_archive() -> None:
    """Re-hash the stored blobs and check upstream; the report is kept in the database."""
    with session_scope() as session:
        report = run_verify(session, get_store())
    log.info("archive verify: %s", report["summary"])


def resend_stale_archives() -> None:
    """Re-send lock archives whose message was lost (broker restart, worker killed)."""
    settings = get_settings()
    with session_scope() as session:
        lock_ids = stale_runs(session, settings.archive_lease * 2)
    for lock_id in lock_ids:
        send_archive_task(lock_id)


def run_archive(lock_id: str) -> None:
    """Archive every package of the lock that is not archived yet."""
    settings = get_settings()
    store = get_store()
    store.clean_temp(older_than=max(settings.archive_lease, settings.archive_timeout) * 2)
    owner = _owner()
    with session_scope() as session:
        lock = find_lock(session, lock_id)
        if lock is None:
            log.warning("archive asked for unknown lock %s", lock_id)
            return
        lock_id = lock.id  # a message sent under a lock's old (v1) id archives the lock
        ensure_entries(session, lock_package_ids(session, lock_id))
        session.commit()
        set_run(session, lock_id, "running")
        while True:
            pending = pending_entries(session, lock_id)
            if not pending:
                break
            held = claim(session, [e.package_id for e in pending], owner, settings.archive_lease)
            claimed = [e for e in pending if e.package_id in held]
            if not claimed:
                # Another worker holds what is left; wait for it, or for its lease to run out.
                touch_run(session, lock_id)
                time.sleep(1.0)
                continue
            downloads: list[Download] = []
            for entry in claimed:
                package = entry.package
                expected = Expected(package.sha256, package.md5 or None, package.size or None)
                stored = stored_blob(session, store, package.sha256) if package.sha256 else None
                if stored is not None:
                    # Stored already (another lock, a proxy fetch, or a run killed before
                    # it recorded the blob). The sha256 names the bytes; the record's md5
                    # and size must be theirs too, or the record is not these bytes.
                    if mismatches(expected, stored):
                        reason = str(BlobMismatch(expected, stored, package.url))
                        log.warning("lock %s: could not archive %s", lock_id, reason)
                        mark_failed(session, entry.package_id, reason)
                    else:
                        mark_archived(session, entry.package_id, stored)
                    continue
                downloads.append(Download(entry.package_id, package.url, expected))
            if downloads:
                asyncio.run(_download_all(session, store, settings, owner, lock_id, downloads))
        _archive_pypi(session, store, settings, owner, lock_id)
        set_run(session, lock_id, "done")


def _archive_pypi(
    session: Session, store: BlobStore, settings: Settings, owner: str, lock_id: str
) -> None:
    """The lock's PyPI files, the same way: claim, fetch what is not stored, record."""
    ensure_pypi_entries(session, lock_pypi_ids(session, lock_id))
    session.commit()
    while True:
        pending = pending_pypi_entries(session, lock_id)
        if not pending:
            return
        ids = [e.pypi_package_id for e in pending]
        held = claim_pypi(session, ids, owner, settings.archive_lease)
        claimed = [e for e in pending if e.pypi_package_id in held]
        if not claimed:
            touch_run(session, lock_id)
            time.sleep(1.0)
            continue
        plan = plan_pypi(session, store, settings, claimed)
        for key, info in plan.archived:
            mark_pypi_archived(session, key, info)
        for key, reason in plan.failed:
            log.warning("lock %s: could not archive PyPI file: %s", lock_id, reason)
            mark_pypi_failed(session, key, reason)
        if plan.downloads:
            asyncio.run(
                _download_all(session, store, settings, owner, lock_id, plan.downloads, PYPI_MARKS)
            )


@dataclass(frozen=True)
class Marks:
    """How a download's outcome and its lease are recorded (conda or PyPI entries)."""

    archived: Callable[[Session, Any, Any], None]
    failed: Callable[[Session, Any, str], None]
    renew: Callable[[Session, list[Any], str, float], None]
    client: Callable[[Settings, int], httpx.AsyncClient] | None = None


CONDA_MARKS = Marks(mark_archived, mark_failed, renew)
PYPI_MARKS = Marks(mark_pypi_archived, mark_pypi_failed, renew_pypi, pypi_client)


async def _download_all(
    session: Session,
    store: BlobStore,
    settings: Settings,
    owner: str,
    lock_id: str,
    downloads: list[Download],
    marks: Marks = CONDA_MARKS,
) -> None:
    """Fetch concurrently, recording each result as it lands and renewing leases meanwhile.

    The session's writes run on one thread of their own, one at a time: a COMMIT per
    finished file on the event loop would stall every download in flight, and with many
    small packages those commits would take a large share of the run.
    """
    in_flight = {d.key for d in downloads}
    loop = asyncio.get_running_loop()
    database = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-db")

    def record(outcome: Outcome) -> None:
        key = outcome.download.key
        if outcome.info is not None:
            marks.archived(session, key, outcome.info)
        else:
            reason = str(outcome.error) if outcome.error else "unknown error"
            log.warning("lock %s: could not archive %s", lock_id, reason)
            marks.failed(session, key, reason)

    async def done(outcome: Outcome) -> None:
        in_flight.discard(outcome.download.key)
        await loop.run_in_executor(database, record, outcome)

    def beat_once(held: list[Any]) -> None:
        marks.renew(session, held, owner, settings.archive_lease)
        touch_run(session, lock_id)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(max(settings.archive_lease / 3, 0.5))
            await loop.run_in_executor(database, beat_once, sorted(in_flight))

    beat = asyncio.create_task(heartbeat())
    concurrency = settings.archive_concurrency
    client = marks.client(settings, concurrency) if marks.client else None
    try:
        await mirror(
            downloads, store, policy_from(settings), concurrency, on_done=done, client=client
        )
    finally:
        beat.cancel()
        if client is not None:
            await client.aclose()
        database.shutdown(wait=True)  # a write already started finishes first
