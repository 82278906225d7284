"""The archive-entry state machine both entry tables share (``archive_entries`` for conda
package files, ``pypi_archive_entries`` for PyPI files): claim pending entries with a
lease, renew it, and end each as archived or failed.

Every function takes the table's key column (``ArchiveEntry.package_id`` or
``PyPIArchiveEntry.pypi_package_id``); the other columns have the same names in both.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, or_, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.archive.blobs import BlobInfo
from app.db.models import Blob, utcnow
from app.db.session import insert_ignore, write_committed

Key = InstrumentedAttribute[int]


def claim_entries(session: Session, key: Key, ids: list[int], owner: str, lease: float) -> set[int]:
    """Hold pending entries for `lease` seconds, except those another worker holds.

    One UPDATE per 500 entries and one COMMIT for them all, through Core (see
    :func:`app.db.session.write_committed`); returns the ids this worker now holds.
    """
    table = key.class_.__table__
    now = utcnow()
    claimed: set[int] = set()
    for start in range(0, len(ids), 500):
        held = session.connection().scalars(
            update(table)
            .where(
                key.in_(ids[start : start + 500]),
                table.c.state == "pending",
                or_(
                    table.c.lease_until.is_(None),
                    table.c.lease_until < now,
                    table.c.lease_owner == owner,
                ),
            )
            .values(
                lease_owner=owner,
                lease_until=now + timedelta(seconds=lease),
                attempts=table.c.attempts + 1,
                updated_at=now,
            )
            .returning(key)
        )
        claimed.update(held)
    session.commit()
    return claimed


def renew_entries(session: Session, key: Key, ids: list[int], owner: str, lease: float) -> None:
    if not ids:
        return
    table = key.class_.__table__
    write_committed(
        session,
        update(table)
        .where(key.in_(ids), table.c.lease_owner == owner)
        .values(lease_until=utcnow() + timedelta(seconds=lease)),
    )


def record_blob(session: Session, info: BlobInfo) -> None:
    """The blobs row, once: two workers storing the same file both end here harmlessly."""
    insert_ignore(
        session,
        Blob,
        [{"sha256": info.sha256, "md5": info.md5, "size": info.size, "stored_at": utcnow()}],
    )


def mark_entry_archived(session: Session, key: Key, entry_id: int, info: BlobInfo) -> None:
    """Called only once the blob is in the store: its blobs row, then the entry. Commits."""
    record_blob(session, info)
    now = utcnow()
    _end(
        session,
        key == entry_id,
        key,
        state="archived",
        reason=None,
        blob_sha256=info.sha256,
        archived_at=now,
        updated_at=now,
    )


def mark_entry_failed(session: Session, key: Key, entry_id: int, reason: str) -> None:
    """A pending entry that could not be kept, with why. Commits."""
    table = key.class_.__table__
    where = (key == entry_id) & (table.c.state == "pending")
    _end(session, where, key, state="failed", reason=reason, updated_at=utcnow())


def _end(session: Session, where: ColumnElement[bool], key: Key, **values: object) -> None:
    table = key.class_.__table__
    write_committed(
        session,
        update(table).where(where).values(**values, lease_owner=None, lease_until=None),
    )
