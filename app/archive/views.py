"""What readers see of the archive: a lock's archive status and links, the archived files
of a channel subdir, the archive channels, and the newest verify report.

Read-only queries over the state app/archive/state.py keeps; the web routes, the
pull-through proxy and the lock JSON use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.archive.naming import archive_channel_url, archive_url
from app.archive.pypi_views import pypi_status
from app.archive.repodata import ArchivedFile
from app.core.canonical import format_time
from app.db.models import (
    ArchiveEntry,
    Blob,
    Lock,
    LockArchive,
    LockPackage,
    LockTarget,
    PackageFile,
    VerifyReport,
)
from app.db.session import session_scope


def find_archived(
    session: Session, name: str, subdir: str, filename: str, sha256: str | None = None
) -> tuple[ArchiveEntry, PackageFile] | None:
    """The archived file served at ``/channels/{name}/{subdir}/{filename}`` (first kept wins),
    or with `sha256`, the one whose blob is exactly that (``.../sha256/{sha256}/...``)."""
    query = (
        select(ArchiveEntry, PackageFile)
        .join(PackageFile, PackageFile.id == ArchiveEntry.package_id)
        .where(
            ArchiveEntry.channel_name == name,
            ArchiveEntry.subdir == subdir,
            ArchiveEntry.filename == filename,
            ArchiveEntry.state == "archived",
        )
    )
    if sha256 is not None:
        query = query.where(ArchiveEntry.blob_sha256 == sha256)
    row = session.execute(
        query.order_by(ArchiveEntry.archived_at, ArchiveEntry.package_id).limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def archived_sha256(name: str, subdir: str, filename: str, sha256: str | None = None) -> str | None:
    """The blob sha256 of the archived file `find_archived` names, in a session of its own
    (the channel routes and the proxy call it from a worker thread), or None."""
    with session_scope() as session:
        found = find_archived(session, name, subdir, filename, sha256)
        return found[0].blob_sha256 if found else None


def archived_matching(
    name: str, subdir: str, filename: str, sha256: str | None, md5: str | None, size: int | None
) -> str | None:
    """The blob of an archived `filename` whose bytes have every hash given, or None.

    What the pull-through proxy serves for a file upstream lists: the copy with the
    listed hashes, not merely the first copy of that name.
    """
    with session_scope() as session:
        query = (
            select(Blob.sha256)
            .join(ArchiveEntry, ArchiveEntry.blob_sha256 == Blob.sha256)
            .where(
                ArchiveEntry.channel_name == name,
                ArchiveEntry.subdir == subdir,
                ArchiveEntry.filename == filename,
                ArchiveEntry.state == "archived",
            )
        )
        if sha256:
            query = query.where(Blob.sha256 == sha256)
        if md5:
            query = query.where(Blob.md5 == md5)
        if size:
            query = query.where(Blob.size == size)
        return session.scalars(
            query.order_by(ArchiveEntry.archived_at, ArchiveEntry.package_id).limit(1)
        ).first()


def archived_packages(
    session: Session, name: str, subdir: str, sha256: str | None = None
) -> list[ArchivedFile]:
    """Every archived package of a channel subdir, with the blob its URL serves; for a
    repeated filename, the first kept (as `find_archived` serves). With `sha256`, only
    the files whose blob is that one (the content channel ``.../sha256/{sha256}``)."""
    query = (
        select(PackageFile, Blob)
        .join(ArchiveEntry, ArchiveEntry.package_id == PackageFile.id)
        .join(Blob, Blob.sha256 == ArchiveEntry.blob_sha256)
        .where(
            ArchiveEntry.channel_name == name,
            ArchiveEntry.subdir == subdir,
            ArchiveEntry.state == "archived",
        )
    )
    if sha256 is not None:
        query = query.where(ArchiveEntry.blob_sha256 == sha256)
    rows = session.execute(query.order_by(ArchiveEntry.archived_at, ArchiveEntry.package_id))
    seen: dict[str, ArchivedFile] = {}
    for package, blob in rows:
        if package.filename not in seen:
            seen[package.filename] = ArchivedFile(package, blob.sha256, blob.md5, blob.size)
    return list(seen.values())


def blob_in_channel(session: Session, name: str, sha256: str) -> bool:
    """Whether the archive channel `name` holds an archived file with blob `sha256`."""
    return (
        session.scalars(
            select(ArchiveEntry.package_id)
            .where(
                ArchiveEntry.channel_name == name,
                ArchiveEntry.blob_sha256 == sha256,
                ArchiveEntry.state == "archived",
            )
            .limit(1)
        ).first()
        is not None
    )


def archive_fingerprint(session: Session, name: str, subdir: str) -> str:
    """Changes whenever the archived set of a channel subdir does (a cache key for repodata)."""
    count, latest = session.execute(
        select(func.count(), func.max(ArchiveEntry.archived_at)).where(
            ArchiveEntry.channel_name == name,
            ArchiveEntry.subdir == subdir,
            ArchiveEntry.state == "archived",
        )
    ).one()
    return f"{count}:{format_time(latest) if latest else '-'}"


def channel_known(session: Session, name: str) -> bool:
    return (
        session.scalars(
            select(ArchiveEntry.package_id).where(ArchiveEntry.channel_name == name).limit(1)
        ).first()
        is not None
    )


def _counts(states: list[str], unverified: int = 0) -> dict[str, int]:
    return {
        "total": len(states),
        "archived": states.count("archived"),
        "failed": states.count("failed"),
        "pending": states.count("pending"),
        "not_requested": states.count("not_requested"),
        "unverified": unverified,
    }


def verifiable(package: PackageFile) -> bool:
    """Whether the record names a hash the archived bytes were checked against.

    A record with neither sha256 nor md5 (size alone proves little) is archived
    *unverified*: its bytes are kept and their hashes recorded, but nothing said what
    they should have been.
    """
    return bool(package.sha256 or package.md5)


def _overall(counts: dict[str, int], run: LockArchive | None) -> str:
    if counts["total"] and counts["archived"] == counts["total"]:
        return "archived"
    if counts["pending"]:
        return run.status if run is not None and run.status in ("queued", "running") else "pending"
    if counts["failed"]:
        return "failed"
    return "not_requested"


def archive_status(session: Session, lock_id: str, base_url: str = "") -> dict[str, Any]:
    """The archive of one lock: overall and per-target progress, and each package's state.

    `status` is ``archived`` (every file kept), ``failed`` (done, some files could not be
    kept: see each package's ``reason``), ``queued`` / ``running`` / ``pending`` (work
    left), or ``not_requested``. Each archived package says whether it was ``verified``
    (its record named a sha256 or md5 the bytes matched) and the hashes computed from the
    stored bytes (``blob_*``); ``unverified`` counts the archived files that were not.
    """
    rows = session.execute(
        select(LockPackage.target, PackageFile, ArchiveEntry, Blob)
        .join(PackageFile, PackageFile.id == LockPackage.package_id)
        .outerjoin(ArchiveEntry, ArchiveEntry.package_id == PackageFile.id)
        .outerjoin(Blob, Blob.sha256 == ArchiveEntry.blob_sha256)
        .where(LockPackage.lock_id == lock_id)
    ).all()
    run = session.get(LockArchive, lock_id)
    platforms = dict(
        session.execute(
            select(LockTarget.name, LockTarget.platform).where(LockTarget.lock_id == lock_id)
        ).all()
    )
    targets: dict[str, dict[str, Any]] = {
        name: {"platform": platform, "packages": []} for name, platform in platforms.items()
    }
    channels: dict[str, str] = {}
    all_states: dict[int, str] = {}
    unverified: set[int] = set()
    for target, package, entry, blob in rows:
        state = entry.state if entry is not None else "not_requested"
        all_states[package.id] = state
        archived = state == "archived" and blob is not None
        verified = archived and verifiable(package)
        if archived and not verified:
            unverified.add(package.id)
        channels[package.channel] = archive_channel_url(base_url, package.channel)
        targets.setdefault(target, {"platform": package.subdir, "packages": []})
        targets[target]["packages"].append(
            {
                "name": package.name,
                "version": package.version,
                "build": package.build,
                "subdir": package.subdir,
                "filename": package.filename,
                "url": package.url,
                "sha256": package.sha256,
                "md5": package.md5,
                "size": package.size,
                "state": state,
                "reason": entry.reason if entry is not None else None,
                "attempts": entry.attempts if entry is not None else 0,
                "archived_at": format_time(entry.archived_at) if entry is not None else None,
                "blob_sha256": blob.sha256 if archived else None,
                "blob_md5": blob.md5 if archived else None,
                "blob_size": blob.size if archived else None,
                "verified": verified,
                "archive_url": archive_url(base_url, package, blob.sha256) if archived else None,
            }
        )
    for view in targets.values():
        view["packages"].sort(key=lambda p: (p["name"], p["subdir"], p["url"]))
        states = [p["state"] for p in view["packages"]]
        loose = sum(1 for p in view["packages"] if p["state"] == "archived" and not p["verified"])
        view.update(_counts(states, loose))
        view["bytes_total"] = sum(p["size"] for p in view["packages"])
        view["bytes_archived"] = sum(
            p["size"] for p in view["packages"] if p["state"] == "archived"
        )
        view["status"] = _overall(_counts(states), run)
    summary = _counts(list(all_states.values()), len(unverified))
    # The PyPI files of each target: counted apart (``pypi``), and in each status.
    pypi = pypi_status(session, lock_id, base_url)
    pypi_states: dict[str, str] = {}
    for name, files in pypi.items():
        view = targets.setdefault(name, {"platform": "", "packages": []})
        view["pypi_packages"] = files
        view["pypi"] = _counts([p["state"] for p in files])
        pypi_states.update({p["url"] + p["sha256"]: p["state"] for p in files})
        states = [p["state"] for p in view["packages"]] + [p["state"] for p in files]
        view["status"] = _overall(_counts(states), run)
    overall = _overall(summary, run)
    if pypi_states:
        overall = _overall(_counts([*all_states.values(), *pypi_states.values()]), run)
    return {
        "lock_id": lock_id,
        "status": overall,
        "pypi": _counts(list(pypi_states.values())),
        "requested_at": format_time(run.requested_at) if run else None,
        "started_at": format_time(run.started_at) if run else None,
        "finished_at": format_time(run.finished_at) if run else None,
        "runs": run.runs if run else 0,
        "summary": summary,
        "channels": channels,
        "targets": targets,
    }


def latest_verify_report(session: Session) -> dict[str, Any] | None:
    """The newest `condarchive verify` report (CLI or beat), or None if it never ran."""
    row = session.scalars(select(VerifyReport).order_by(VerifyReport.id.desc()).limit(1)).first()
    return None if row is None else {"id": row.id, **row.report}


def archived_urls(session: Session, lock_id: str, base_url: str) -> dict[str, str]:
    """Upstream URL -> archive URL (by content: exactly the blob of the lock's package) for
    each package of the lock that is archived."""
    rows = session.execute(
        select(PackageFile, ArchiveEntry.blob_sha256)
        .join(LockPackage, LockPackage.package_id == PackageFile.id)
        .join(ArchiveEntry, ArchiveEntry.package_id == PackageFile.id)
        .where(LockPackage.lock_id == lock_id, ArchiveEntry.state == "archived")
    ).all()
    return {package.url: archive_url(base_url, package, sha256) for package, sha256 in rows}


def with_archive_urls(lock: dict[str, Any], urls: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the lock JSON whose package URLs point at the archive (where archived)."""
    copy = {**lock, "targets": {}}
    for name, target in lock["targets"].items():
        packages = [{**p, "url": urls.get(p["url"], p["url"])} for p in target["packages"]]
        copy["targets"][name] = {**target, "packages": packages}
    return copy


def archive_links(session: Session, lock: Lock, base_url: str) -> dict[str, Any]:
    """What the lock JSON says about its archive: where the status and the channels are.

    Only links (stable for a deployment), so reading a lock twice gives equal JSON while
    its archive is in progress; the state itself is at ``links.status``.
    """
    channels = session.scalars(
        select(PackageFile.channel)
        .join(LockPackage, LockPackage.package_id == PackageFile.id)
        .where(LockPackage.lock_id == lock.id)
        .distinct()
    )
    base = base_url.rstrip("/")
    return {
        "links": {"status": f"{base}/api/v1/locks/{lock.id}/archive"},
        "channels": {url: archive_channel_url(base, url) for url in sorted(channels)},
    }


def archive_channels(session: Session, base_url: str) -> list[dict[str, Any]]:
    """Every archive channel: its name, upstream URL, URL here, and archived file count."""
    rows = session.execute(
        select(ArchiveEntry.channel_name, PackageFile.channel, func.count())
        .join(PackageFile, PackageFile.id == ArchiveEntry.package_id)
        .where(ArchiveEntry.state == "archived")
        .group_by(ArchiveEntry.channel_name, PackageFile.channel)
        .order_by(ArchiveEntry.channel_name)
    ).all()
    base = base_url.rstrip("/")
    return [
        {"name": name, "upstream": upstream, "url": f"{base}/channels/{name}", "packages": count}
        for name, upstream, count in rows
    ]
