"""Archive state of a lock's PyPI files: the PyPI counterpart of app/archive/state.py.

Each locked PyPI file (a wheel, an sdist, a VCS commit's source archive) has one
:class:`~app.db.models.PyPIArchiveEntry` (pending -> archived | failed, with the reason),
claimed by a worker with a lease exactly as conda entries are. Its blob is in the same
store, named by its sha256, so a wheel two locks share is stored once, and a file that is
both a PyPI file and something else is too.

This module knows only its own table (app/archive/state.py calls it when a lock's
archive is requested; app/archive/pypi_run.py when a worker archives it).
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.archive.blobs import BlobInfo
from app.archive.entry_leases import (
    claim_entries,
    mark_entry_archived,
    mark_entry_failed,
    renew_entries,
)
from app.db.models import LockPyPIPackage, PyPIArchiveEntry, PyPIFile, utcnow
from app.db.session import insert_ignore


def lock_pypi_ids(session: Session, lock_id: str) -> list[int]:
    """The lock's distinct PyPI file ids (every target)."""
    return list(
        session.scalars(
            select(LockPyPIPackage.pypi_package_id)
            .where(LockPyPIPackage.lock_id == lock_id)
            .distinct()
        )
    )


def lock_pypi_bytes(session: Session, lock_id: str) -> int:
    """The summed size of the lock's distinct PyPI files: what archiving them stores."""
    ids = select(LockPyPIPackage.pypi_package_id).where(LockPyPIPackage.lock_id == lock_id)
    total = session.scalar(select(func.sum(PyPIFile.size)).where(PyPIFile.id.in_(ids.distinct())))
    return int(total or 0)


def ensure_pypi_entries(session: Session, ids: list[int]) -> None:
    """A pending entry for every PyPI file that has none (existing ones are left alone)."""
    now = utcnow()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        missing = session.scalars(
            select(PyPIFile.id)
            .outerjoin(PyPIArchiveEntry, PyPIArchiveEntry.pypi_package_id == PyPIFile.id)
            .where(PyPIFile.id.in_(chunk), PyPIArchiveEntry.pypi_package_id.is_(None))
        ).all()
        insert_ignore(
            session,
            PyPIArchiveEntry,
            [
                {
                    "pypi_package_id": pid,
                    "state": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for pid in missing
            ],
        )


def retry_failed_pypi(session: Session, ids: list[int]) -> None:
    """Failed entries among `ids` become pending again (not committed)."""
    for start in range(0, len(ids), 500):
        session.execute(
            update(PyPIArchiveEntry)
            .where(
                PyPIArchiveEntry.pypi_package_id.in_(ids[start : start + 500]),
                PyPIArchiveEntry.state == "failed",
            )
            .values(state="pending", reason=None, attempts=0, updated_at=utcnow())
        )


def pending_pypi_entries(session: Session, lock_id: str) -> list[PyPIArchiveEntry]:
    return list(
        session.scalars(
            select(PyPIArchiveEntry)
            .join(
                LockPyPIPackage,
                LockPyPIPackage.pypi_package_id == PyPIArchiveEntry.pypi_package_id,
            )
            .where(LockPyPIPackage.lock_id == lock_id, PyPIArchiveEntry.state == "pending")
            .distinct()
        )
    )


def claim_pypi(session: Session, ids: list[int], owner: str, lease: float) -> set[int]:
    """Hold pending PyPI entries for `lease` seconds (:func:`claim_entries`). Commits."""
    return claim_entries(session, PyPIArchiveEntry.pypi_package_id, ids, owner, lease)


def renew_pypi(session: Session, ids: list[int], owner: str, lease: float) -> None:
    renew_entries(session, PyPIArchiveEntry.pypi_package_id, ids, owner, lease)


def mark_pypi_archived(session: Session, pypi_package_id: int, info: BlobInfo) -> None:
    """Called only once the blob is in the store: its blobs row, then the entry. Commits."""
    mark_entry_archived(session, PyPIArchiveEntry.pypi_package_id, pypi_package_id, info)


def mark_pypi_failed(session: Session, pypi_package_id: int, reason: str) -> None:
    mark_entry_failed(session, PyPIArchiveEntry.pypi_package_id, pypi_package_id, reason)


def request_pypi_archive(session: Session, lock_id: str, retry_failed: bool) -> None:
    """Pending entries for the lock's PyPI files (failed ones again when `retry_failed`).
    Not committed: app/archive/state.py commits with the rest of the request."""
    ids = lock_pypi_ids(session, lock_id)
    ensure_pypi_entries(session, ids)
    if retry_failed and ids:
        retry_failed_pypi(session, ids)
