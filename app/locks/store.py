"""Locks: the canonical form that names them, writing them once, reading them back.

Lock id = sha256 of ``canonical_json({"version": 1, "targets": {<name>: {"platform",
"virtual_packages", "packages": [{"url", "sha256", "md5", "size"} sorted by url]}}})``.
It covers what a lock *is* (which files, for which targets), not how or when it was
made, so the same result always gets the same id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Any

import rattler
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.core.canonical import format_time, sha256_of
from app.db.models import Lock, LockPackage, LockTarget, PackageFile
from app.db.session import insert_ignore


@dataclass(frozen=True)
class LockedRecord:
    """One locked package file: what the solver or an import hands over, what a package row
    holds, and (its :data:`VIEW_FIELDS`) what the API, pages and lockfiles show of it.

    This is the one list of a locked package's fields; the API's response model
    (`app.web.schemas.LockedPackageView`) is derived from it.
    """

    name: str
    version: str
    build: str
    build_number: int
    channel: str
    subdir: str
    url: str
    filename: str
    sha256: str | None
    md5: str
    size: int
    depends: tuple[str, ...]
    record: dict[str, Any]

    @classmethod
    def from_rattler(cls, record: rattler.RepoDataRecord) -> LockedRecord:
        """One conversion for solved and imported records, so their locks look alike."""
        data: dict[str, Any] = json.loads(record.to_json())
        url = data["url"]
        return cls(
            name=data["name"],
            version=str(data["version"]),
            build=str(data["build"]),
            build_number=int(data.get("build_number") or 0),
            channel=str(data.get("channel") or "").rstrip("/"),
            subdir=data.get("subdir") or "",
            url=url,
            filename=data.get("fn") or url.rsplit("/", 1)[-1],
            sha256=data.get("sha256"),
            md5=data.get("md5") or "",
            size=int(data.get("size") or 0),
            depends=tuple(data.get("depends") or ()),
            record=data,
        )

    @classmethod
    def from_package_file(cls, package: PackageFile) -> LockedRecord:
        """A stored package row, read back."""
        return cls(
            name=package.name,
            version=package.version,
            build=package.build,
            build_number=package.build_number,
            channel=package.channel,
            subdir=package.subdir,
            url=package.url,
            filename=package.filename,
            sha256=package.sha256,
            md5=package.md5,
            size=package.size,
            depends=tuple(package.record.get("depends") or ()),
            record=package.record,
        )

    @property
    def content_key(self) -> str:
        return self.sha256 or f"md5:{self.md5}"

    def view(self) -> dict[str, Any]:
        """The fields every reader of a lock sees (API, pages, lockfile renderers)."""
        view = {name: getattr(self, name) for name in VIEW_FIELDS}
        view["depends"] = list(self.depends)
        return view

    def row(self) -> dict[str, Any]:
        """The `packages` row for this file (`depends` lives in the full `record`)."""
        row = {name: getattr(self, name) for name in VIEW_FIELDS if name != "depends"}
        row.update(content_key=self.content_key, record=self.record)
        return row

    def canonical(self) -> dict[str, Any]:
        return {"url": self.url, "sha256": self.sha256, "md5": self.md5, "size": self.size}


#: What a lock shows of each package, in the order the API lists the fields.
VIEW_FIELDS = tuple(f.name for f in fields(LockedRecord) if f.name != "record")


@dataclass(frozen=True)
class LockedTarget:
    name: str
    platform: str
    virtual_packages: tuple[str, ...]
    records: tuple[LockedRecord, ...]


def lock_canonical(targets: list[LockedTarget]) -> dict[str, Any]:
    return {
        "version": 1,
        "targets": {
            t.name: {
                "platform": t.platform,
                "virtual_packages": sorted(t.virtual_packages),
                "packages": sorted((r.canonical() for r in t.records), key=lambda p: p["url"]),
            }
            for t in targets
        },
    }


def lock_id_of(targets: list[LockedTarget]) -> str:
    return sha256_of(lock_canonical(targets))


_PACKAGES = PackageFile.__table__
_PACKAGES_BY_URL = text(
    "SELECT id, url, content_key FROM packages WHERE url = ANY(CAST(:urls AS text[]))"
)


def _package_ids(session: Session, records: list[LockedRecord]) -> dict[tuple[str, str], int]:
    """Ids of the package rows that exist already, keyed by (url, content_key).

    On Postgres the urls go as one array (``url = ANY(:urls)``): an ``IN`` list is
    rendered and bound per url on every call, a cost the worker pays on every lock.
    """
    ids: dict[tuple[str, str], int] = {}
    urls = sorted({r.url for r in records})
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        rows = connection.execute(_PACKAGES_BY_URL, {"urls": urls}).all()
    else:
        rows = []
        for chunk_start in range(0, len(urls), 500):
            chunk = urls[chunk_start : chunk_start + 500]
            rows += connection.execute(
                select(_PACKAGES.c.id, _PACKAGES.c.url, _PACKAGES.c.content_key).where(
                    _PACKAGES.c.url.in_(chunk)
                )
            ).all()
    for pid, url, key in rows:
        ids[(url, key)] = pid
    return ids


def store_lock(
    session: Session,
    targets: list[LockedTarget],
    spec: dict[str, Any],
    spec_hash: str,
    provenance: dict[str, Any],
) -> str:
    """Write the lock if it is new and return its id. An existing lock is never touched.

    Package rows are looked up before they are inserted: most files of a new lock are
    already known from earlier locks, and re-sending their full records is the
    costliest part of storing a lock.
    """
    lock_id = lock_id_of(targets)
    exists = select(Lock.__table__.c.id).where(Lock.__table__.c.id == lock_id)
    if session.connection().scalar(exists) is not None:
        return lock_id
    records = list({(r.url, r.content_key): r for t in targets for r in t.records}.values())
    ids = _package_ids(session, records)
    missing = [r for r in records if (r.url, r.content_key) not in ids]
    if missing:
        insert_ignore(session, PackageFile, [r.row() for r in missing])
        ids.update(_package_ids(session, missing))
    insert_ignore(
        session,
        Lock,
        [{"id": lock_id, "spec": spec, "spec_hash": spec_hash, "provenance": provenance}],
    )
    insert_ignore(
        session,
        LockTarget,
        [
            {
                "lock_id": lock_id,
                "name": t.name,
                "platform": t.platform,
                "virtual_packages": sorted(t.virtual_packages),
            }
            for t in targets
        ],
    )
    _insert_lock_packages(
        session,
        lock_id,
        [(t.name, ids[(r.url, r.content_key)]) for t in targets for r in t.records],
    )
    return lock_id


#: One statement for every row of a lock: the rows arrive as two arrays.
_LOCK_PACKAGES_FROM_ARRAYS = text(
    "INSERT INTO lock_packages (lock_id, target, package_id) "
    "SELECT :lock_id, u.target, u.package_id "
    "FROM unnest(CAST(:targets AS varchar[]), CAST(:package_ids AS integer[])) "
    "AS u(target, package_id) ON CONFLICT DO NOTHING"
)


def _insert_lock_packages(session: Session, lock_id: str, rows: list[tuple[str, int]]) -> None:
    """Link a new lock to its package rows.

    On Postgres the rows go as two arrays in one INSERT … SELECT FROM unnest: a batched
    executemany prepares every row in Python, much slower for a large lock.
    SQLite runs in process, where executemany is cheap.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.flush()
        session.connection().execute(
            _LOCK_PACKAGES_FROM_ARRAYS,
            {
                "lock_id": lock_id,
                "targets": [target for target, _ in rows],
                "package_ids": [package_id for _, package_id in rows],
            },
        )
        return
    insert_ignore(
        session,
        LockPackage,
        [{"lock_id": lock_id, "target": t, "package_id": pid} for t, pid in rows],
    )


def lock_view(session: Session, lock: Lock) -> dict[str, Any]:
    """The lock as the API returns it (and as every lockfile renderer reads it)."""
    rows = session.execute(
        select(LockPackage.target, PackageFile)
        .join(PackageFile, PackageFile.id == LockPackage.package_id)
        .where(LockPackage.lock_id == lock.id)
    ).all()
    by_target: dict[str, list[dict[str, Any]]] = {}
    for target, package in rows:
        by_target.setdefault(target, []).append(LockedRecord.from_package_file(package).view())
    return {
        "id": lock.id,
        "created_at": format_time(lock.created_at),
        "spec": lock.spec,
        "targets": {
            t.name: {
                "platform": t.platform,
                "virtual_packages": list(t.virtual_packages),
                "packages": sorted(
                    by_target.get(t.name, []), key=lambda p: (p["name"], p["subdir"], p["url"])
                ),
            }
            for t in lock.targets
        },
        "provenance": lock.provenance,
    }


#: A lock id is a sha256 in lower-case hex.
_LOCK_ID = re.compile(r"^[0-9a-f]{64}$")


def find_lock(session: Session, lock_id: str) -> Lock | None:
    """The lock with this id, or None; anything that cannot be a lock id is not looked up
    (Postgres rejects a NUL byte in a query, and an unknown id must be a 404, not a 500)."""
    if not _LOCK_ID.match(lock_id):
        return None
    return session.get(Lock, lock_id)
