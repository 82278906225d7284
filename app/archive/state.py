"""Archive state in the database: which package files are kept, and how a lock's archive goes.

Each package file has one :class:`~app.db.models.ArchiveEntry` (pending -> archived | failed,
with the reason). A worker *claims* a pending entry with a lease before downloading it and
renews the lease while it works, so two workers never fetch the same file, and a killed
worker's files are taken over once its lease runs out. An entry becomes ``archived`` only
after its blob is in the store, so whatever the archive channel lists can be served.

Archive channel names
---------------------
Archived packages are served as conda channels at ``/channels/{name}/``. ``name`` is derived
from the upstream channel URL alone, so it never changes: the URL's last path segment
(lower-cased, anything outside ``[a-z0-9._-]`` replaced by ``-``), a dash, and the first 8
hex digits of the sha256 of the URL (trailing ``/`` removed). For example
``https://conda.anaconda.org/conda-forge`` -> ``conda-forge-<8 hex>``. Names configured in
``CONDARCHIVE_PROXY_CHANNELS`` also serve that upstream's archived packages.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.archive.blobs import BlobInfo
from app.core.specs import format_time
from app.db.models import (
    ArchiveEntry,
    Blob,
    Lock,
    LockArchive,
    LockPackage,
    LockTarget,
    PackageFile,
    VerifyReport,
    utcnow,
)
from app.db.session import insert_ignore, write_committed
from app.queue.send import send_archive_task

log = logging.getLogger(__name__)

TERMINAL = ("archived", "failed")


def channel_name(channel_url: str) -> str:
    """The stable archive channel name of an upstream channel URL (see the module doc)."""
    url = channel_url.rstrip("/")
    last = url.rsplit("/", 1)[-1].lower() or "channel"
    slug = re.sub(r"[^a-z0-9._-]+", "-", last).strip("-.")[:40] or "channel"
    return f"{slug}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def archive_url(base_url: str, package: PackageFile | Mapping[str, Any]) -> str:
    """Where the archive serves a package: ``{base}/channels/{name}/{subdir}/{filename}``.

    `package` is a package row or a package of the lock JSON (``channel``, ``subdir``,
    ``filename`` keys), so renderers can point a lockfile at the archive.
    """
    if isinstance(package, Mapping):
        channel, subdir, filename = package["channel"], package["subdir"], package["filename"]
    else:
        channel, subdir, filename = package.channel, package.subdir, package.filename
    return f"{base_url.rstrip('/')}/channels/{channel_name(channel)}/{subdir}/{filename}"


def archive_channel_url(base_url: str, channel_url: str) -> str:
    return f"{base_url.rstrip('/')}/channels/{channel_name(channel_url)}"


def lock_package_ids(session: Session, lock_id: str) -> list[int]:
    return list(
        session.scalars(
            select(LockPackage.package_id).where(LockPackage.lock_id == lock_id).distinct()
        )
    )


def ensure_entries(session: Session, package_ids: list[int], source: str = "lock") -> None:
    """A pending entry for every package that has none (existing entries are left as they are)."""
    for start in range(0, len(package_ids), 500):
        chunk = package_ids[start : start + 500]
        packages = session.execute(
            select(PackageFile.id, PackageFile.channel, PackageFile.subdir, PackageFile.filename)
            .outerjoin(ArchiveEntry, ArchiveEntry.package_id == PackageFile.id)
            .where(PackageFile.id.in_(chunk), ArchiveEntry.package_id.is_(None))
        ).all()
        insert_ignore(
            session,
            ArchiveEntry,
            [
                {
                    "package_id": pid,
                    "channel_name": channel_name(channel),
                    "subdir": subdir,
                    "filename": filename,
                    "source": source,
                    "state": "pending",
                    "attempts": 0,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
                for pid, channel, subdir, filename in packages
            ],
        )


def lock_bytes(session: Session, lock_id: str) -> int:
    """The summed size of the lock's distinct package files: what archiving it stores."""
    ids = select(LockPackage.package_id).where(LockPackage.lock_id == lock_id).distinct()
    total = session.scalar(select(func.sum(PackageFile.size)).where(PackageFile.id.in_(ids)))
    return int(total or 0)


def request_archive(session: Session, lock_id: str, retry_failed: bool) -> bool:
    """Mark the lock's packages pending (failed ones too when `retry_failed`) and queue the task.

    Commits. Returns False when the broker could not be reached; the request stays recorded
    as queued, and asking again (or the beat sweep) re-sends it. A lock over
    CONDARCHIVE_MAX_ARCHIVE_BYTES_PER_LOCK is not archived (False, nothing recorded): the
    API refuses it with 422, and the automatic archive after a solve skips it.
    """
    from app.config import get_settings

    limit = get_settings().max_archive_bytes_per_lock
    if (total := lock_bytes(session, lock_id)) > limit:
        log.warning(
            "not archiving lock %s: %d bytes is over CONDARCHIVE_MAX_ARCHIVE_BYTES_PER_LOCK=%d",
            lock_id,
            total,
            limit,
        )
        return False
    ids = lock_package_ids(session, lock_id)
    ensure_entries(session, ids)
    if retry_failed and ids:
        session.execute(
            update(ArchiveEntry)
            .where(ArchiveEntry.package_id.in_(ids), ArchiveEntry.state == "failed")
            .values(state="pending", reason=None, attempts=0, updated_at=utcnow())
        )
    run = session.get(LockArchive, lock_id)
    if run is None:
        session.add(LockArchive(lock_id=lock_id, status="queued", requested_at=utcnow()))
    else:
        run.status = "queued"
        run.requested_at = utcnow()
        run.finished_at = None
    session.commit()
    return send_archive_task(lock_id)


def resend_lost_archives(session: Session, own_worker: bool) -> list[str]:
    """At `serve` start, re-send lock archives whose queue message may be gone.

    With its own embedded worker every unfinished run belongs to a dead process; with
    remote workers only runs silent for two leases do. Re-sending is safe: a worker moves
    only pending entries forward, holding each by a lease.
    """
    from app.config import get_settings

    older_than = 0.0 if own_worker else get_settings().archive_lease * 2
    if own_worker:  # leases of a dead process: release them now rather than wait them out
        session.execute(
            update(ArchiveEntry)
            .where(ArchiveEntry.state == "pending", ArchiveEntry.lease_until.is_not(None))
            .values(lease_owner=None, lease_until=None)
        )
        session.commit()
    lock_ids = stale_runs(session, older_than)
    for lock_id in lock_ids:
        send_archive_task(lock_id)
    return lock_ids


# --- what workers do ----------------------------------------------------------------------


def pending_entries(session: Session, lock_id: str) -> list[ArchiveEntry]:
    return list(
        session.scalars(
            select(ArchiveEntry)
            .join(LockPackage, LockPackage.package_id == ArchiveEntry.package_id)
            .where(LockPackage.lock_id == lock_id, ArchiveEntry.state == "pending")
            .distinct()
        )
    )


_ENTRIES = ArchiveEntry.__table__


def claim(session: Session, package_ids: list[int], owner: str, lease: float) -> set[int]:
    """Hold pending entries for `lease` seconds, except those another worker holds.

    One UPDATE per 500 entries and one COMMIT for them all, through Core (see
    :func:`app.db.session.write_committed`); returns the ids this worker now holds.
    """
    now = utcnow()
    claimed: set[int] = set()
    for start in range(0, len(package_ids), 500):
        held = session.connection().scalars(
            update(_ENTRIES)
            .where(
                ArchiveEntry.package_id.in_(package_ids[start : start + 500]),
                ArchiveEntry.state == "pending",
                or_(
                    ArchiveEntry.lease_until.is_(None),
                    ArchiveEntry.lease_until < now,
                    ArchiveEntry.lease_owner == owner,
                ),
            )
            .values(
                lease_owner=owner,
                lease_until=now + timedelta(seconds=lease),
                attempts=ArchiveEntry.attempts + 1,
                updated_at=now,
            )
            .returning(ArchiveEntry.package_id)
        )
        claimed.update(held)
    session.commit()
    return claimed


def renew(session: Session, package_ids: list[int], owner: str, lease: float) -> None:
    if not package_ids:
        return
    write_committed(
        session,
        update(_ENTRIES)
        .where(ArchiveEntry.package_id.in_(package_ids), ArchiveEntry.lease_owner == owner)
        .values(lease_until=utcnow() + timedelta(seconds=lease)),
    )


def record_blob(session: Session, info: BlobInfo) -> None:
    """The blobs row, once: two workers storing the same file both end here harmlessly."""
    insert_ignore(
        session,
        Blob,
        [{"sha256": info.sha256, "md5": info.md5, "size": info.size, "stored_at": utcnow()}],
    )


def mark_archived(session: Session, package_id: int, info: BlobInfo) -> None:
    """Called only once the blob is in the store. Commits."""
    record_blob(session, info)
    now = utcnow()
    write_committed(
        session,
        update(_ENTRIES)
        .where(ArchiveEntry.package_id == package_id)
        .values(
            state="archived",
            reason=None,
            blob_sha256=info.sha256,
            archived_at=now,
            updated_at=now,
            lease_owner=None,
            lease_until=None,
        ),
    )


def record_proxied(session: Session, record: dict[str, Any], info: BlobInfo) -> None:
    """A file the pull-through proxy fetched and stored: its package row and archived entry.

    `record` is the upstream repodata record with ``url``, ``fn`` and ``channel`` (no
    trailing slash). Commits.
    """
    sha256 = record.get("sha256") or info.sha256
    content_key = sha256 or f"md5:{record.get('md5')}"
    insert_ignore(
        session,
        PackageFile,
        [
            {
                "url": record["url"],
                "content_key": content_key,
                "sha256": sha256,
                "md5": record.get("md5") or info.md5,
                "size": int(record.get("size") or info.size),
                "name": record["name"],
                "version": str(record["version"]),
                "build": str(record["build"]),
                "build_number": int(record.get("build_number") or 0),
                "channel": record["channel"],
                "subdir": record.get("subdir") or "",
                "filename": record["fn"],
                "record": record,
            }
        ],
    )
    package_id = session.scalars(
        select(PackageFile.id).where(
            PackageFile.url == record["url"], PackageFile.content_key == content_key
        )
    ).one()
    ensure_entries(session, [package_id], source="proxy")
    mark_archived(session, package_id, info)


def mark_failed(session: Session, package_id: int, reason: str) -> None:
    write_committed(
        session,
        update(_ENTRIES)
        .where(ArchiveEntry.package_id == package_id, ArchiveEntry.state == "pending")
        .values(
            state="failed", reason=reason, updated_at=utcnow(), lease_owner=None, lease_until=None
        ),
    )


def set_run(session: Session, lock_id: str, status: str) -> None:
    """Record a lock archive's progress (queued -> running -> done) and its heartbeat. Commits."""
    run = session.get(LockArchive, lock_id)
    if run is None:
        run = LockArchive(lock_id=lock_id, requested_at=utcnow(), runs=0)
        session.add(run)
    run.status = status
    run.heartbeat_at = utcnow()
    if status == "running":
        run.started_at = utcnow()
        run.finished_at = None
        run.runs = (run.runs or 0) + 1
    elif status == "done":
        run.finished_at = utcnow()
    session.commit()


def touch_run(session: Session, lock_id: str) -> None:
    """The run is alive (the sweep re-sends runs that stop saying so). Commits."""
    session.execute(
        update(LockArchive).where(LockArchive.lock_id == lock_id).values(heartbeat_at=utcnow())
    )
    session.commit()


def stale_runs(session: Session, older_than: float) -> list[str]:
    """Lock archives queued or running with no sign of life for `older_than` seconds."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    return list(
        session.scalars(
            select(LockArchive.lock_id).where(
                LockArchive.status.in_(("queued", "running")),
                or_(
                    and_(LockArchive.heartbeat_at.is_(None), LockArchive.requested_at < cutoff),
                    LockArchive.heartbeat_at < cutoff,
                ),
            )
        )
    )


# --- what readers see ---------------------------------------------------------------------


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


def archive_summary(session: Session, lock_id: str, base_url: str = "") -> dict[str, Any]:
    """:func:`archive_status` without the per-package lists: what the lock JSON carries."""
    status = archive_status(session, lock_id, base_url)
    for target in status["targets"].values():
        del target["packages"]
    status["links"] = {"self": f"{base_url.rstrip('/')}/api/v1/locks/{lock_id}/archive"}
    return status


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
