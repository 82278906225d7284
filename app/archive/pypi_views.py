"""What readers see of the PyPI archive: a lock's PyPI files and their state, the archive
URL of each, and the archived files as a simple index lists them.

Archive URLs are by content, ``{base}/pypi/files/{sha256}/{filename}``: exactly the bytes
the lock names, whichever other file of that name the archive holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.canonical import format_time
from app.db.models import Blob, LockPyPIPackage, PyPIArchiveEntry, PyPIFile


def normalize(name: str) -> str:
    """The PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi_file_url(base_url: str, sha256: str, filename: str) -> str:
    """Where the archive serves the blob `sha256` under `filename`."""
    return f"{base_url.rstrip('/')}/pypi/files/{sha256}/{quote(filename)}"


def pypi_index_url(base_url: str) -> str:
    """The archive's simple index (what ``pip --index-url`` takes)."""
    return f"{base_url.rstrip('/')}/pypi/simple/"


def pypi_archive_urls(session: Session, lock_id: str, base_url: str) -> dict[str, str]:
    """Original URL -> archive URL, for each PyPI file of the lock that is archived."""
    rows = session.execute(
        select(PyPIFile.url, PyPIFile.filename, PyPIArchiveEntry.blob_sha256)
        .join(LockPyPIPackage, LockPyPIPackage.pypi_package_id == PyPIFile.id)
        .join(PyPIArchiveEntry, PyPIArchiveEntry.pypi_package_id == PyPIFile.id)
        .where(LockPyPIPackage.lock_id == lock_id, PyPIArchiveEntry.state == "archived")
    ).all()
    return {
        url: pypi_file_url(base_url, sha256, filename) for url, filename, sha256 in rows if sha256
    }


def pypi_status(session: Session, lock_id: str, base_url: str) -> dict[str, list[dict[str, Any]]]:
    """Target -> the state of each of its PyPI files (``not_requested`` when no entry)."""
    rows = session.execute(
        select(LockPyPIPackage.target, PyPIFile, PyPIArchiveEntry, Blob)
        .join(PyPIFile, PyPIFile.id == LockPyPIPackage.pypi_package_id)
        .outerjoin(PyPIArchiveEntry, PyPIArchiveEntry.pypi_package_id == PyPIFile.id)
        .outerjoin(Blob, Blob.sha256 == PyPIArchiveEntry.blob_sha256)
        .where(LockPyPIPackage.lock_id == lock_id)
    ).all()
    targets: dict[str, list[dict[str, Any]]] = {}
    for target, package, entry, blob in rows:
        state = entry.state if entry is not None else "not_requested"
        archived = state == "archived" and blob is not None
        record = package.record or {}
        targets.setdefault(target, []).append(
            {
                "name": package.name,
                "version": package.version,
                "kind": record.get("kind") or "index",
                "filename": package.filename,
                "url": package.url,
                "sha256": package.sha256,
                "size": package.size,
                "state": state,
                "reason": entry.reason if entry is not None else None,
                "attempts": entry.attempts if entry is not None else 0,
                "archived_at": format_time(entry.archived_at)
                if entry is not None and entry.archived_at
                else None,
                "blob_sha256": blob.sha256 if archived else None,
                "blob_size": blob.size if archived else None,
                "archive_url": pypi_file_url(base_url, blob.sha256, package.filename)
                if archived
                else None,
            }
        )
    for packages in targets.values():
        packages.sort(key=lambda p: (p["name"], p["url"]))
    return targets


@dataclass(frozen=True)
class ArchivedPyPIFile:
    """One file of a project as the archive's simple index lists it."""

    project: str
    version: str
    filename: str
    sha256: str
    size: int
    requires_python: str | None


def archived_projects(session: Session) -> list[str]:
    """Every project with at least one archived file (normalised names, sorted)."""
    names = session.scalars(
        select(PyPIFile.name)
        .join(PyPIArchiveEntry, PyPIArchiveEntry.pypi_package_id == PyPIFile.id)
        .where(PyPIArchiveEntry.state == "archived")
        .distinct()
    )
    return sorted({normalize(n) for n in names})


def archived_project_files(session: Session, project: str) -> list[ArchivedPyPIFile]:
    """The archived files of `project` (a normalised name), one per filename: the first
    archived wins, as its URL is by content it always serves what it lists."""
    rows = session.execute(
        select(PyPIFile, Blob)
        .join(PyPIArchiveEntry, PyPIArchiveEntry.pypi_package_id == PyPIFile.id)
        .join(Blob, Blob.sha256 == PyPIArchiveEntry.blob_sha256)
        # Names are stored normalised (app/locks/pypi_records.py).
        .where(PyPIArchiveEntry.state == "archived", PyPIFile.name == project)
        .order_by(PyPIArchiveEntry.archived_at, PyPIFile.id)
    ).all()
    seen: dict[str, ArchivedPyPIFile] = {}
    for package, blob in rows:
        if package.filename in seen:
            continue
        seen[package.filename] = ArchivedPyPIFile(
            project,
            package.version,
            package.filename,
            blob.sha256,
            blob.size,
            (package.record or {}).get("requires_python"),
        )
    return sorted(seen.values(), key=lambda f: f.filename)


def archived_pypi_blob(session: Session, sha256: str, filename: str) -> bool:
    """Whether an archived PyPI file `filename` is the blob `sha256`."""
    return (
        session.scalars(
            select(PyPIArchiveEntry.pypi_package_id)
            .join(PyPIFile, PyPIFile.id == PyPIArchiveEntry.pypi_package_id)
            .where(
                PyPIArchiveEntry.state == "archived",
                PyPIArchiveEntry.blob_sha256 == sha256,
                PyPIFile.filename == filename,
            )
            .limit(1)
        ).first()
        is not None
    )
