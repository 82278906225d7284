"""The lock dict pages and lockfile renderers read: :func:`app.locks.store.lock_view`, plus the
few repodata fields a lockfile format carries and the API view leaves out.

`noarch`, `timestamp`, `license` and `track_features` are part of a package's record
(pixi.lock writes them); they come from the lock's own package rows, are covered by the
lock id (canonical form v2), and so never change either.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.db.models import Lock
from app.locks.store import EXTRA_FIELDS, lock_view

__all__ = ["EXTRA_FIELDS", "lock_document"]


def lock_document(session: Session, lock: Lock) -> dict[str, Any]:
    """`lock_view(lock)` with each package's extra record fields merged in."""
    return lock_view(session, lock, extras=True)
