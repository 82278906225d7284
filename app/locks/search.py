"""Finding locks: the most recent first, optionally those holding a package at some version.

Versions are matched as conda version specs by py-rattler (`2.5.*`, `>=1.26,<2`), which
SQL cannot do; but a package has few distinct versions, so they are matched in Python
first and the lock query then filters on that short list.

A name is looked up among the conda packages and among the PyPI packages (by its PEP 503
normalised form) alike; a match says where it came from (`"source": "conda" | "pypi"`).
The version spec is the same conda spec for both: PyPI versions such as `2.0` or `1.4.2`
read the same way, and one that rattler cannot parse never matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import rattler
from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session

from app.core.canonical import format_time
from app.db.models import Lock, LockPackage, LockPyPIPackage, PackageFile, PyPIFile
from app.errors import InputError


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def _admitted(versions: list[str] | Any, version: str | None) -> list[str]:
    """The versions the conda version spec admits (all of them without a spec)."""
    if version is None:
        return sorted(versions)
    try:
        spec = rattler.VersionSpec(version)
    except Exception as exc:  # py-rattler raises its own exception types
        raise InputError(["query", "version"], f"invalid version spec {version!r}: {exc}") from exc
    matched = []
    for candidate in versions:
        try:
            if spec.matches(rattler.Version(candidate)):
                matched.append(candidate)
        except Exception:  # noqa: BLE001 - a stored version rattler cannot parse never matches
            continue
    return sorted(matched)


def matching_versions(session: Session, package: str, version: str | None) -> list[str]:
    """Distinct stored versions of conda `package` that the version spec admits."""
    versions = session.scalars(
        select(PackageFile.version).where(PackageFile.name == package).distinct()
    ).all()
    return _admitted(versions, version)


def matching_pypi_versions(session: Session, package: str, version: str | None) -> list[str]:
    """Distinct stored versions of PyPI `package` (normalised name) the spec admits."""
    versions = session.scalars(
        select(PyPIFile.version).where(PyPIFile.name == package).distinct()
    ).all()
    return _admitted(versions, version)


_PYPI_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def pypi_name(text: str) -> str | None:
    """The PEP 503 normalised PyPI name, or None for text that is no PyPI name."""
    text = text.strip()
    if not _PYPI_NAME.match(text):
        return None
    return re.sub(r"[-_.]+", "-", text).lower()


def package_name(text: str) -> str:
    """The normalised conda name; anything else is refused before it reaches SQL (Postgres
    rejects a NUL byte outright, which must be a 422, not a 500)."""
    try:
        return rattler.PackageName(text.strip()).normalized
    except Exception as exc:  # py-rattler raises its own exception types
        raise InputError(["query", "package"], str(exc).replace("\x00", " "), text) from exc


def _holding(package: str, versions: list[str]) -> Any:
    return exists(
        select(LockPackage.lock_id)
        .join(PackageFile, PackageFile.id == LockPackage.package_id)
        .where(
            LockPackage.lock_id == Lock.id,
            PackageFile.name == package,
            PackageFile.version.in_(versions),
        )
    )


def _holding_pypi(package: str, versions: list[str]) -> Any:
    return exists(
        select(LockPyPIPackage.lock_id)
        .join(PyPIFile, PyPIFile.id == LockPyPIPackage.pypi_package_id)
        .where(
            LockPyPIPackage.lock_id == Lock.id,
            PyPIFile.name == package,
            PyPIFile.version.in_(versions),
        )
    )


def _pypi_matches(
    session: Session, lock_ids: list[str], package: str, versions: list[str]
) -> dict[str, list[dict[str, str]]]:
    rows = session.execute(
        select(LockPyPIPackage.lock_id, LockPyPIPackage.target, PyPIFile.version, PyPIFile.filename)
        .join(PyPIFile, PyPIFile.id == LockPyPIPackage.pypi_package_id)
        .where(
            LockPyPIPackage.lock_id.in_(lock_ids),
            PyPIFile.name == package,
            PyPIFile.version.in_(versions),
        )
        .order_by(LockPyPIPackage.lock_id, LockPyPIPackage.target)
    ).all()
    found: dict[str, list[dict[str, str]]] = {}
    for lock_id, target, version, filename in rows:
        found.setdefault(lock_id, []).append(
            {
                "target": target,
                "name": package,
                "version": version,
                "build": "",
                "filename": filename,
                "source": "pypi",
            }
        )
    return found


def _matches(
    session: Session, lock_ids: list[str], package: str, versions: list[str]
) -> dict[str, list[dict[str, str]]]:
    rows = session.execute(
        select(LockPackage.lock_id, LockPackage.target, PackageFile.version, PackageFile.build)
        .join(PackageFile, PackageFile.id == LockPackage.package_id)
        .where(
            LockPackage.lock_id.in_(lock_ids),
            PackageFile.name == package,
            PackageFile.version.in_(versions),
        )
        .order_by(LockPackage.lock_id, LockPackage.target)
    ).all()
    found: dict[str, list[dict[str, str]]] = {}
    for lock_id, target, version, build in rows:
        found.setdefault(lock_id, []).append(
            {
                "target": target,
                "name": package,
                "version": version,
                "build": build,
                "source": "conda",
            }
        )
    return found


def summary(lock: Lock) -> dict[str, Any]:
    """A lock as a list item: when, for what, from where."""
    return {
        "id": lock.id,
        "created_at": format_time(lock.created_at),
        "name": (lock.spec or {}).get("name"),
        "channels": list((lock.spec or {}).get("channels") or []),
        "targets": {t.name: t.platform for t in lock.targets},
    }


def search_locks(
    session: Session, package: str | None, version: str | None, limit: int, offset: int
) -> Page:
    """Recent locks, newest first; with `package`, only those holding a matching version."""
    if version is not None and not package:
        raise InputError(["query", "version"], "'version' needs 'package'")
    query: Select[tuple[Lock]] = select(Lock)
    conda_name = pypi = None
    versions: list[str] = []
    pypi_versions: list[str] = []
    if package:
        pypi = pypi_name(package)
        try:
            conda_name = package_name(package)
        except InputError:
            if pypi is None:
                raise
        if conda_name:
            versions = matching_versions(session, conda_name, version)
        if pypi:
            pypi_versions = matching_pypi_versions(session, pypi, version)
        held = [_holding(conda_name, versions)] if conda_name and versions else []
        held += [_holding_pypi(pypi, pypi_versions)] if pypi and pypi_versions else []
        if not held:
            return Page([], 0, limit, offset)
        query = query.where(or_(*held))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    locks = session.scalars(
        query.order_by(Lock.created_at.desc(), Lock.id).limit(limit).offset(offset)
    ).all()
    ids = [lk.id for lk in locks]
    matches = _matches(session, ids, conda_name, versions) if conda_name and versions else {}
    pypi_found = _pypi_matches(session, ids, pypi, pypi_versions) if pypi and pypi_versions else {}
    items = []
    for lock in locks:
        item = summary(lock)
        if package:
            item["matches"] = matches.get(lock.id, []) + pypi_found.get(lock.id, [])
        items.append(item)
    return Page(items, total, limit, offset)
