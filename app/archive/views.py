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
from app.core.canonical import format_time
from app.db.models import (
    ArchiveEntry,
    Lock,
    LockArchive,
    LockPackage,
    LockTarget,
    PackageFile,
    VerifyReport,
)
from app.db.session import session_scope


def find_archived(
    session: Session, name: str, subdir: str, filename: str
) -> tuple[ArchiveEntry, PackageFile] | None:
    """The archived file served at ``/channels/{name}/{subdir}/{filename}`` (first kept wins)."""
    row = session.execute(
        select(ArchiveEntry, PackageFile)
        .join(PackageFile, PackageFile.id == ArchiveEntry.package_id)
        .where(
            ArchiveEntry.channel_name == name,
            ArchiveEntry.subdir == subdir,
            ArchiveEntry.filename == filename,
            ArchiveEntry.state == "archived",
        )
        .order_by(ArchiveEntry.archived_at, ArchiveEntry.package_id)
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def archived_sha256(name: str, subdir: str, filename: str) -> str | None:
    """The blob sha256 of the archived file `find_archived` names, in a session of its own
    (the channel routes and the proxy call it from a worker thread), or None."""
    with session_scope() as session:
        found = find_archived(session, name, subdir, filename)
        return found[0].blob_sha256 if found else None


def archived_packages(session: Session, name: str, subdir: str) -> list[PackageFile]:
    """Every archived package of a channel subdir; for a repeated filename, the first kept."""
    rows = session.scalars(
        select(PackageFile)
        .join(ArchiveEntry, ArchiveEntry.package_id == PackageFile.id)
        .where(
            ArchiveEntry.channel_name == name,
            ArchiveEntry.subdir == subdir,
            ArchiveEntry.state == "archived",
        )
        .order_by(ArchiveEntry.archived_at, ArchiveEntry.package_id)
    )
    seen: dict[str, PackageFile] = {}
    for package in rows:
        seen.setdefault(package.filename, package)
    return list(seen.values())


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


def _counts(states: list[str]) -> dict[str, int]:
    return {
        "total": len(states),
        "archived": states.count("archived"),
        "failed": states.count("failed"),
        "pending": states.count("pending"),
        "not_requested": states.count("not_requested"),
    }


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
    left), or ``not_requested``.
    """
    rows = session.execute(
        select(LockPackage.target, PackageFile, ArchiveEntry)
        .join(PackageFile, PackageFile.id == LockPackage.package_id)
        .outerjoin(ArchiveEntry, ArchiveEntry.package_id == PackageFile.id)
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
    for target, package, entry in rows:
        state = entry.state if entry is not None else "not_requested"
        all_states[package.id] = state
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
                "blob_sha256": entry.blob_sha256 if entry is not None else None,
                "archive_url": archive_url(base_url, package) if state == "archived" else None,
            }
        )
    for view in targets.values():
        view["packages"].sort(key=lambda p: (p["name"], p["subdir"], p["url"]))
        states = [p["state"] for p in view["packages"]]
        view.update(_counts(states))
        view["bytes_total"] = sum(p["size"] for p in view["packages"])
        view["bytes_archived"] = sum(
            p["size"] for p in view["packages"] if p["state"] == "archived"
        )
        view["status"] = _overall(_counts(states), run)
    summary = _counts(list(all_states.values()))
    return {
        "lock_id": lock_id,
        "status": _overall(summary, run),
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
    """Upstream URL -> archive URL for each package of the lock that is archived."""
    rows = session.execute(
        select(PackageFile)
        .join(LockPackage, LockPackage.package_id == PackageFile.id)
        .join(ArchiveEntry, ArchiveEntry.package_id == PackageFile.id)
        .where(LockPackage.lock_id == lock_id, ArchiveEntry.state == "archived")
    ).scalars()
    return {package.url: archive_url(base_url, package) for package in rows}


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
