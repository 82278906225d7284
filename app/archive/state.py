"""Archive state in the database: which package files are kept, and how a lock's archive goes.

Each package file has one :class:`~app.db.models.ArchiveEntry` (pending -> archived | failed,
with the reason). A worker *claims* a pending entry with a lease before downloading it and
renews the lease while it works, so two workers never fetch the same file, and a killed
worker's files are taken over once its lease runs out. An entry becomes ``archived`` only
after its blob is in the store, so whatever the archive channel lists can be served.

What readers see of this state is in app/archive/views.py; channel names and archive URLs
in app/archive/naming.py.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.archive.blobs import BlobInfo, BlobStore
from app.archive.entry_leases import (
    claim_entries,
    mark_entry_archived,
    mark_entry_failed,
    renew_entries,
)
from app.archive.naming import channel_name
from app.archive.pypi_state import lock_pypi_bytes, request_pypi_archive
from app.db.models import (
    ArchiveEntry,
    Blob,
    LockArchive,
    LockPackage,
    PackageFile,
    PyPIArchiveEntry,
    utcnow,
)
from app.db.session import insert_ignore
from app.locks.store import LockedRecord
from app.queue.send import send_archive_task

log = logging.getLogger(__name__)


def lock_package_ids(session: Session, lock_id: str) -> list[int]:
    return list(
        session.scalars(
            select(LockPackage.package_id).where(LockPackage.lock_id == lock_id).distinct()
        )
    )


def ensure_entries(session: Session, package_ids: list[int], source: str = "lock") -> None:
    """A pending entry for every package that has none (existing entries are left as they are)."""
    for start in range(0, len(package_ids), 500):
        chunk = package_ids[start : start + 500]
        packages = session.execute(
            select(PackageFile.id, PackageFile.channel, PackageFile.subdir, PackageFile.filename)
            .outerjoin(ArchiveEntry, ArchiveEntry.package_id == PackageFile.id)
            .where(PackageFile.id.in_(chunk), ArchiveEntry.package_id.is_(None))
        ).all()
        insert_ignore(
            session,
            ArchiveEntry,
            [
                {
                    "package_id": pid,
                    "channel_name": channel_name(channel),
                    "subdir": subdir,
                    "filename": filename,
                    "source": source,
                    "state": "pending",
                    "attempts": 0,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
                for pid, channel, subdir, filename in packages
            ],
        )


def lock_bytes(session: Session, lock_id: str) -> int:
    """The summed size of the lock's distinct package files, conda and PyPI: what archiving
    it stores."""
    ids = select(LockPackage.package_id).where(LockPackage.lock_id == lock_id).distinct()
    total = session.scalar(select(func.sum(PackageFile.size)).where(PackageFile.id.in_(ids)))
    return int(total or 0) + lock_pypi_bytes(session, lock_id)


def request_archive(session: Session, lock_id: str, retry_failed: bool) -> bool:
    """Mark the lock's packages pending (failed ones too when `retry_failed`) and queue the task.

    Commits. Returns False when the broker could not be reached; the request stays recorded
    as queued, and asking again (or the beat sweep) re-sends it. A lock over
    CONDARCHIVE_MAX_ARCHIVE_BYTES_PER_LOCK is not archived (False, nothing recorded): the
    API refuses it with 422, and the automatic archive after a solve skips it.
    """
    from app.config import get_settings

    limit = get_settings().max_archive_bytes_per_lock
    if (total := lock_bytes(session, lock_id)) > limit:
        log.warning(
            "not archiving lock %s: %d bytes is over CONDARCHIVE_MAX_ARCHIVE_BYTES_PER_LOCK=%d",
            lock_id,
            total,
            limit,
        )
        return False
    ids = lock_package_ids(session, lock_id)
    ensure_entries(session, ids)
    if retry_failed and ids:
        session.execute(
            update(ArchiveEntry)
            .where(ArchiveEntry.package_id.in_(ids), ArchiveEntry.state == "failed")
            .values(state="pending", reason=None, attempts=0, updated_at=utcnow())
        )
    request_pypi_archive(session, lock_id, retry_failed)
    run = session.get(LockArchive, lock_id)
    if run is None:
        session.add(LockArchive(lock_id=lock_id, status="queued", requested_at=utcnow()))
    else:
        run.status = "queued"
        run.requested_at = utcnow()
        run.finished_at = None
    session.commit()
    return send_archive_task(lock_id)


def resend_lost_archives(session: Session, own_worker: bool) -> list[str]:
    """At `serve` start, re-send lock archives whose queue message may be gone.

    With its own embedded worker every unfinished run belongs to a dead process; with
    remote workers only runs silent for two leases do. Re-sending is safe: a worker moves
    only pending entries forward, holding each by a lease.
    """
    from app.config import get_settings

    older_than = 0.0 if own_worker else get_settings().archive_lease * 2
    if own_worker:  # leases of a dead process: release them now rather than wait them out
        session.execute(
            update(ArchiveEntry)
            .where(ArchiveEntry.state == "pending", ArchiveEntry.lease_until.is_not(None))
            .values(lease_owner=None, lease_until=None)
        )
        session.execute(
            update(PyPIArchiveEntry)
            .where(PyPIArchiveEntry.state == "pending", PyPIArchiveEntry.lease_until.is_not(None))
            .values(lease_owner=None, lease_until=None)
        )
        session.commit()
    lock_ids = stale_runs(session, older_than)
    for lock_id in lock_ids:
        send_archive_task(lock_id)
    return lock_ids


# --- what workers do ----------------------------------------------------------------------


def pending_entries(session: Session, lock_id: str) -> list[ArchiveEntry]:
    return list(
        session.scalars(
            select(ArchiveEntry)
            .join(LockPackage, LockPackage.package_id == ArchiveEntry.package_id)
            .where(LockPackage.lock_id == lock_id, ArchiveEntry.state == "pending")
            .distinct()
        )
    )


def claim(session: Session, package_ids: list[int], owner: str, lease: float) -> set[int]:
    """Hold pending conda entries for `lease` seconds (:func:`claim_entries`). Commits."""
    return claim_entries(session, ArchiveEntry.package_id, package_ids, owner, lease)


def renew(session: Session, package_ids: list[int], owner: str, lease: float) -> None:
    renew_entries(session, ArchiveEntry.package_id, package_ids, owner, lease)


def stored_blob(session: Session, store: BlobStore, sha256: str) -> BlobInfo | None:
    """What a stored blob is (its recorded hashes, or re-hashed when a killed run stored it
    without recording it), or None when the store does not hold it."""
    if not store.exists(sha256):
        return None
    row = session.get(Blob, sha256)
    if row is not None and row.md5:
        return BlobInfo(row.sha256, row.md5, row.size)
    return store.hash_blob(sha256)


def mark_archived(session: Session, package_id: int, info: BlobInfo) -> None:
    """Called only once the blob is in the store. Commits."""
    mark_entry_archived(session, ArchiveEntry.package_id, package_id, info)


def record_proxied(session: Session, record: dict[str, Any], info: BlobInfo) -> None:
    """A file the pull-through proxy fetched and stored: its package row and archived entry.

    `record` is the upstream repodata record with ``url``, ``fn`` and ``channel`` (no
    trailing slash). Commits.
    """
    # The same row a lock of this record would hold (keyed by its canonical form).
    row = LockedRecord.from_record(
        {
            **record,
            "sha256": record.get("sha256") or info.sha256,
            "md5": record.get("md5") or info.md5,
            "size": int(record.get("size") or info.size),
        }
    ).row()
    insert_ignore(session, PackageFile, [row])
    package_id = session.scalars(
        select(PackageFile.id).where(PackageFile.record_key == row["record_key"])
    ).one()
    ensure_entries(session, [package_id], source="proxy")
    mark_archived(session, package_id, info)


def mark_failed(session: Session, package_id: int, reason: str) -> None:
    mark_entry_failed(session, ArchiveEntry.package_id, package_id, reason)


def set_run(session: Session, lock_id: str, status: str) -> None:
    """Record a lock archive's progress (queued -> running -> done) and its heartbeat. Commits."""
    run = session.get(LockArchive, lock_id)
    if run is None:
        run = LockArchive(lock_id=lock_id, requested_at=utcnow(), runs=0)
        session.add(run)
    run.status = status
    run.heartbeat_at = utcnow()
    if status == "running":
        run.started_at = utcnow()
        run.finished_at = None
        run.runs = (run.runs or 0) + 1
    elif status == "done":
        run.finished_at = utcnow()
    session.commit()


def touch_run(session: Session, lock_id: str) -> None:
    """The run is alive (the sweep re-sends runs that stop saying so). Commits."""
    session.execute(
        update(LockArchive).where(LockArchive.lock_id == lock_id).values(heartbeat_at=utcnow())
    )
    session.commit()


def stale_runs(
    session: Session, older_than: float, statuses: tuple[str, ...] = ("queued", "running")
) -> list[str]:
    """Lock archives in `statuses` with no sign of life for `older_than` seconds."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    return list(
        session.scalars(
            select(LockArchive.lock_id).where(
                LockArchive.status.in_(statuses),
                or_(
                    and_(LockArchive.heartbeat_at.is_(None), LockArchive.requested_at < cutoff),
                    LockArchive.heartbeat_at < cutoff,
                ),
            )
        )
    )
