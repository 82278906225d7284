"""Locks: the canonical form that names them, writing them once, reading them back.

Canonical form, version 2 (README "Specs, hashes and dedupe"). The lock id is the sha256
of ``canonical_json(...)`` of::

    {"version": 2,
     "channels": [channel base URLs, in the lock's order],
     "targets": {<name>: {"platform": <subdir>,
                          "virtual_packages": [sorted],
                          "packages": [<package>, ...]}}}

where each ``<package>`` is every field a rendering of the lock shows of it::

    {"name", "version", "build", "build_number", "channel", "subdir", "url",
     "filename", "sha256", "md5", "size", "depends": [as listed],
     "constrains": [as listed],
     "extras": {"noarch", "timestamp", "license", "track_features"; only those present}}

and a target's packages are sorted by (url, their canonical JSON). A target with a PyPI
part also has ``"pypi_packages": [<PyPI package>, ...]`` (app/locks/pypi_records.py;
sorted by name, then url) and ``"pypi_local": [local pip lines, as written]``, each only
when not empty, so a lock without PyPI packages keeps its id. So two locks that
would render differently (in the API, on the page, or in any lockfile format) never
share an id, and a stored lock always hashes back to its id (:func:`stored_lock_id`,
checked by ``condarchive verify``). The id covers what a lock *is*, not who asked for it
or when: the environment's name and the text submitted belong to each request
(``lock_requests``, :func:`lock_requests`), never to the lock, and renderers name the
environment ``lock-<id[:12]>`` unless the reader asks for one request's name.

Version 1 (until migration 0004) hashed only ``{"url", "sha256", "md5", "size"}`` per
package and the targets; its ids resolve through ``lock_aliases`` (:func:`find_lock`).

Package rows are content-addressed by ``record_key`` = sha256 of the package's canonical
form above, and written once: two locks holding the same file (url and sha256) with
different metadata hold two rows, each rendering its own fields; the archive stores the
file's bytes once (blobs are keyed by sha256).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cached_property
from typing import Any

import rattler
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.core.canonical import canonical_json, format_time, sha256_of
from app.db.models import (
    Lock,
    LockAlias,
    LockPackage,
    LockPyPIPackage,
    LockRequest,
    LockTarget,
    PackageFile,
    PyPIFile,
    utcnow,
)
from app.db.session import insert_ignore
from app.locks.pypi_records import LockedPyPIPackage

#: The version of the canonical form below; stored ids are of this version.
CANONICAL_VERSION = 2

#: Record fields a lockfile format shows beyond the view fields (pixi.lock writes them);
#: part of the canonical form as ``extras``, when present.
EXTRA_FIELDS = ("noarch", "timestamp", "license", "track_features")


def record_extras(record: dict[str, Any]) -> dict[str, Any]:
    """The :data:`EXTRA_FIELDS` a record carries (empty values are left out)."""
    return {key: record[key] for key in EXTRA_FIELDS if record.get(key) not in (None, "", [])}


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
    constrains: tuple[str, ...]
    record: dict[str, Any]

    @classmethod
    def from_rattler(cls, record: rattler.RepoDataRecord) -> LockedRecord:
        """One conversion for solved and imported records, so their locks look alike."""
        return cls.from_record(json.loads(record.to_json()))

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> LockedRecord:
        """A repodata record as JSON (with ``url`` and ``channel``), e.g. py-rattler's."""
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
            constrains=tuple(data.get("constrains") or ()),
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
            constrains=tuple(package.record.get("constrains") or ()),
            record=package.record,
        )

    @property
    def content_key(self) -> str:
        return self.sha256 or f"md5:{self.md5}"

    def view(self, extras: bool = False) -> dict[str, Any]:
        """The fields every reader of a lock sees (API, pages, lockfile renderers); with
        `extras`, also the :data:`EXTRA_FIELDS` the record carries (lockfile formats)."""
        view = {name: getattr(self, name) for name in VIEW_FIELDS}
        view["depends"] = list(self.depends)
        view["constrains"] = list(self.constrains)
        if extras:
            view.update(record_extras(self.record))
        return view

    def row(self) -> dict[str, Any]:
        """The `packages` row for this file (`depends`, `constrains` live in the `record`)."""
        row = {name: getattr(self, name) for name in VIEW_FIELDS if name not in _IN_RECORD}
        row.update(content_key=self.content_key, record_key=self.record_key, record=self.record)
        return row

    def canonical(self) -> dict[str, Any]:
        """The package's part of the lock's canonical form (module docstring)."""
        return {**self.view(), "extras": record_extras(self.record)}

    @cached_property
    def canonical_text(self) -> str:
        """:meth:`canonical` as canonical JSON, built once: the row key hashes it and the
        lock's canonical form orders packages by it."""
        return canonical_json(self.canonical())

    @cached_property
    def record_key(self) -> str:
        """What names this package row: the sha256 of :meth:`canonical` (computed once:
        storing a lock looks it up several times per package)."""
        return hashlib.sha256(self.canonical_text.encode()).hexdigest()


#: What a lock shows of each package, in the order the API lists the fields.
VIEW_FIELDS = tuple(f.name for f in fields(LockedRecord) if f.name != "record")
_IN_RECORD = ("depends", "constrains")


@dataclass(frozen=True)
class LockedTarget:
    name: str
    platform: str
    virtual_packages: tuple[str, ...]
    records: tuple[LockedRecord, ...]
    pypi_packages: tuple[LockedPyPIPackage, ...] = ()
    pypi_local: tuple[str, ...] = ()  # pip lines that are the researcher's own code


def lock_canonical(targets: list[LockedTarget], channels: list[str]) -> dict[str, Any]:
    """The canonical form of a lock (version 2; module docstring)."""

    def packages(target: LockedTarget) -> list[dict[str, Any]]:
        ordered = sorted(target.records, key=lambda r: (r.url, r.canonical_text))
        return [r.canonical() for r in ordered]

    def target(t: LockedTarget) -> dict[str, Any]:
        form: dict[str, Any] = {
            "platform": t.platform,
            "virtual_packages": sorted(t.virtual_packages),
            "packages": packages(t),
        }
        if t.pypi_packages:
            ordered = sorted(t.pypi_packages, key=lambda p: (p.name, p.url, p.canonical_text))
            form["pypi_packages"] = [p.canonical() for p in ordered]
        if t.pypi_local:
            form["pypi_local"] = list(t.pypi_local)
        return form

    return {
        "version": CANONICAL_VERSION,
        "channels": list(channels),
        "targets": {t.name: target(t) for t in targets},
    }


def lock_id_of(targets: list[LockedTarget], channels: list[str]) -> str:
    return sha256_of(lock_canonical(targets, channels))


@dataclass(frozen=True)
class RequestRecord:
    """One request that produced a lock: a solve job, or an imported lockfile.

    `key` makes storing it idempotent: the job id (a retried job stores its lock again),
    or the sha256 of the imported text. `spec` is the request's own canonical spec
    (channels and dependencies as asked), `submitted` the text or body as sent.
    """

    kind: str  # solve | import
    key: str
    name: str | None
    spec: dict[str, Any]
    spec_hash: str
    submitted: dict[str, Any]
    provenance: dict[str, Any]
    job_id: str | None = None
    created_at: datetime | None = None


_PACKAGES = PackageFile.__table__
_PACKAGES_BY_URL = text(
    "SELECT id, record_key FROM packages WHERE url = ANY(CAST(:urls AS text[]))"
)


def _package_ids(session: Session, records: list[LockedRecord]) -> dict[str, int]:
    """Ids of the package rows that exist already, keyed by record_key.

    On Postgres the urls go as one array (``url = ANY(:urls)``): an ``IN`` list is
    rendered and bound per url on every call, a cost the worker pays on every lock.
    """
    urls = sorted({r.url for r in records})
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        rows = connection.execute(_PACKAGES_BY_URL, {"urls": urls}).all()
    else:
        rows = []
        for chunk_start in range(0, len(urls), 500):
            chunk = urls[chunk_start : chunk_start + 500]
            rows += connection.execute(
                select(_PACKAGES.c.id, _PACKAGES.c.record_key).where(_PACKAGES.c.url.in_(chunk))
            ).all()
    return {key: pid for pid, key in rows}


def store_lock(
    session: Session,
    targets: list[LockedTarget],
    channels: list[str],
    request: RequestRecord,
) -> str:
    """Write the lock if it is new, record the request that produced it, return its id.

    An existing lock is never touched: it already holds exactly these packages, fields
    and channels (its id says so). The first request's provenance is kept as the lock's
    (how it was first made); every request keeps its own.

    Package rows are looked up before they are inserted: most files of a new lock are
    already known from earlier locks, and re-sending their full records is the
    costliest part of storing a lock.
    """
    lock_id = lock_id_of(targets, channels)
    exists = select(Lock.__table__.c.id).where(Lock.__table__.c.id == lock_id)
    if session.connection().scalar(exists) is None:
        _insert_lock(session, lock_id, targets, channels, request.provenance)
    insert_ignore(
        session,
        LockRequest,
        [
            {
                "lock_id": lock_id,
                "request_key": request.key,
                "kind": request.kind,
                "job_id": request.job_id,
                "name": request.name,
                "spec": request.spec,
                "spec_hash": request.spec_hash,
                "submitted": request.submitted,
                "provenance": request.provenance,
                "created_at": request.created_at or utcnow(),
            }
        ],
    )
    return lock_id


def _insert_lock(
    session: Session,
    lock_id: str,
    targets: list[LockedTarget],
    channels: list[str],
    provenance: dict[str, Any],
) -> None:
    records = list({r.record_key: r for t in targets for r in t.records}.values())
    ids = _package_ids(session, records)
    missing = [r for r in records if r.record_key not in ids]
    if missing:
        insert_ignore(session, PackageFile, [r.row() for r in missing])
        ids.update(_package_ids(session, missing))
    spec = {"channels": list(channels)}
    insert_ignore(
        session,
        Lock,
        [{"id": lock_id, "spec": spec, "spec_hash": sha256_of(spec), "provenance": provenance}],
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
                "pypi_local": list(t.pypi_local) or None,
            }
            for t in targets
        ],
    )
    _insert_lock_packages(
        session,
        lock_id,
        list(dict.fromkeys((t.name, ids[r.record_key]) for t in targets for r in t.records)),
    )
    _insert_pypi_packages(session, lock_id, targets)


def _insert_pypi_packages(session: Session, lock_id: str, targets: list[LockedTarget]) -> None:
    """The lock's PyPI files (rows written once, by record_key) and its links to them."""
    packages = {p.record_key: p for t in targets for p in t.pypi_packages}
    if not packages:
        return
    insert_ignore(
        session,
        PyPIFile,
        [
            {
                "record_key": key,
                "name": p.name,
                "version": p.version,
                "url": p.url,
                "filename": p.filename,
                "sha256": p.sha256,
                "size": p.size,
                "record": p.canonical(),
            }
            for key, p in packages.items()
        ],
    )
    ids = dict(
        session.execute(
            select(PyPIFile.record_key, PyPIFile.id).where(PyPIFile.record_key.in_(packages))
        ).all()
    )
    insert_ignore(
        session,
        LockPyPIPackage,
        [
            {"lock_id": lock_id, "target": t.name, "pypi_package_id": ids[p.record_key]}
            for t in targets
            for p in {p.record_key: p for p in t.pypi_packages}.values()
        ],
    )


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


def _stored_records(session: Session, lock_id: str) -> dict[str, list[LockedRecord]]:
    rows = session.execute(
        select(LockPackage.target, PackageFile)
        .join(PackageFile, PackageFile.id == LockPackage.package_id)
        .where(LockPackage.lock_id == lock_id)
    ).all()
    by_target: dict[str, list[LockedRecord]] = {}
    for target, package in rows:
        by_target.setdefault(target, []).append(LockedRecord.from_package_file(package))
    return by_target


def _stored_pypi(session: Session, lock_id: str) -> dict[str, list[LockedPyPIPackage]]:
    rows = session.execute(
        select(LockPyPIPackage.target, PyPIFile.record)
        .join(PyPIFile, PyPIFile.id == LockPyPIPackage.pypi_package_id)
        .where(LockPyPIPackage.lock_id == lock_id)
    ).all()
    by_target: dict[str, list[LockedPyPIPackage]] = {}
    for target, record in rows:
        by_target.setdefault(target, []).append(LockedPyPIPackage.from_canonical(record))
    for packages in by_target.values():
        packages.sort(key=lambda p: (p.name, p.url))
    return by_target


def lock_view(session: Session, lock: Lock, extras: bool = False) -> dict[str, Any]:
    """The lock as the API returns it (and as every lockfile renderer reads it); with
    `extras`, each package also carries the record fields lockfile formats write.

    Everything in it is fixed by the lock id: `spec` holds only the lock's channels
    (what each request asked is in :func:`lock_requests`), `provenance` is how the lock
    was first made.
    """
    by_target = _stored_records(session, lock.id)
    pypi = _stored_pypi(session, lock.id)
    return {
        "id": lock.id,
        "created_at": format_time(lock.created_at),
        "spec": {"channels": list((lock.spec or {}).get("channels") or [])},
        "targets": {
            t.name: {
                "platform": t.platform,
                "virtual_packages": list(t.virtual_packages),
                "packages": sorted(
                    (r.view(extras) for r in by_target.get(t.name, [])),
                    key=lambda p: (p["name"], p["subdir"], p["url"]),
                ),
                "pypi_packages": [p.view() for p in pypi.get(t.name, [])],
                "pypi_local": list(t.pypi_local or []),
            }
            for t in lock.targets
        },
        "provenance": lock.provenance,
    }


def stored_lock_id(session: Session, lock: Lock) -> str:
    """The id the lock's stored rows hash to: its own id, unless a row was changed."""
    by_target = _stored_records(session, lock.id)
    pypi = _stored_pypi(session, lock.id)
    targets = [
        LockedTarget(
            t.name,
            t.platform,
            tuple(t.virtual_packages),
            tuple(by_target.get(t.name, [])),
            tuple(pypi.get(t.name, [])),
            tuple(t.pypi_local or ()),
        )
        for t in lock.targets
    ]
    return lock_id_of(targets, list((lock.spec or {}).get("channels") or []))


def verify_locks(session: Session) -> dict[str, Any]:
    """Re-hash every stored lock (and each package row's key) from what is stored.

    A lock that no longer hashes to its id, or a package row whose fields no longer hash
    to its `record_key`, was changed after it was written: reported, with what it hashes
    to now.
    """
    mismatched: list[dict[str, Any]] = []
    checked = 0
    for lock in session.scalars(select(Lock).order_by(Lock.id)):
        checked += 1
        actual = stored_lock_id(session, lock)
        if actual != lock.id:
            mismatched.append({"lock_id": lock.id, "hashes_to": actual})
    packages: list[dict[str, Any]] = []
    for package in session.scalars(select(PackageFile).order_by(PackageFile.id)):
        actual = LockedRecord.from_package_file(package).record_key
        if actual != package.record_key:
            packages.append(
                {
                    "package_id": package.id,
                    "url": package.url,
                    "record_key": package.record_key,
                    "hashes_to": actual,
                }
            )
    for pypi_file in session.scalars(select(PyPIFile).order_by(PyPIFile.id)):
        stored = LockedPyPIPackage.from_canonical(pypi_file.record)
        columns = (pypi_file.url, pypi_file.sha256, pypi_file.size, pypi_file.name)
        if stored.record_key != pypi_file.record_key or columns != (
            stored.url,
            stored.sha256,
            stored.size,
            stored.name,
        ):
            packages.append(
                {
                    "pypi_package_id": pypi_file.id,
                    "url": pypi_file.url,
                    "record_key": pypi_file.record_key,
                    "hashes_to": stored.record_key,
                }
            )
    return {"checked": checked, "mismatched": mismatched, "packages_mismatched": packages}


def lock_requests(
    session: Session, lock_id: str, job_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The requests that produced the lock, newest first (or only job `job_id`'s).

    A `job_id` that cannot be a job id (uuid4 hex) matches nothing, without a query
    (Postgres rejects a NUL byte in one)."""
    query = select(LockRequest).where(LockRequest.lock_id == lock_id)
    if job_id is not None:
        if not _JOB_ID.match(job_id):
            return []
        query = query.where(LockRequest.job_id == job_id)
    rows = session.scalars(
        query.order_by(LockRequest.created_at.desc(), LockRequest.id.desc()).limit(limit)
    )
    return [
        {
            "id": row.id,
            "kind": row.kind,
            "job_id": row.job_id,
            "name": row.name,
            "spec": row.spec,
            "spec_hash": row.spec_hash,
            "submitted": row.submitted,
            "provenance": row.provenance,
            "created_at": format_time(row.created_at),
        }
        for row in rows
    ]


def count_requests(session: Session, lock_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(LockRequest).where(LockRequest.lock_id == lock_id)
        )
        or 0
    )


#: A lock id is a sha256 in lower-case hex; a job id is a uuid4 in hex.
_LOCK_ID = re.compile(r"^[0-9a-f]{64}$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def find_lock(session: Session, lock_id: str) -> Lock | None:
    """The lock with this id, or None; anything that cannot be a lock id is not looked up
    (Postgres rejects a NUL byte in a query, and an unknown id must be a 404, not a 500).

    An id of an earlier canonical form (see ``lock_aliases``) finds the lock it became:
    compare ``lock.id`` with what was asked to tell.
    """
    if not _LOCK_ID.match(lock_id):
        return None
    lock = session.get(Lock, lock_id)
    if lock is not None:
        return lock
    alias = session.get(LockAlias, lock_id)
    return None if alias is None else session.get(Lock, alias.new_id)
