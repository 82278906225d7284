"""The lock dict pages and lockfile renderers read: :func:`app.locks.store.lock_view`, plus the
few repodata fields a lockfile format carries and the API view leaves out.

`constrains`, `noarch`, `timestamp`, `license` and `track_features` are part of a
package's record (pixi.lock writes them); they come from the record stored when the
package file was first locked, so they never change either.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Lock, LockPackage, PackageFile
from app.locks.store import lock_view

EXTRA_FIELDS = ("constrains", "noarch", "timestamp", "license", "track_features")


def lock_document(session: Session, lock: Lock) -> dict[str, Any]:
    """`lock_view(lock)` with each package's extra record fields merged in."""
    view = lock_view(session, lock)
    rows = session.execute(
        select(PackageFile.url, PackageFile.sha256, PackageFile.md5, PackageFile.record)
        .join(LockPackage, LockPackage.package_id == PackageFile.id)
        .where(LockPackage.lock_id == lock.id)
    ).all()
    extras = {
        (url, sha256, md5): {
            key: record[key] for key in EXTRA_FIELDS if record.get(key) not in (None, "", [])
        }
        for url, sha256, md5, record in rows
    }
    for target in view["targets"].values():
        for package in target["packages"]:
            package.update(extras.get((package["url"], package["sha256"], package["md5"]), {}))
    return view
