"""Verify the archive: re-hash every stored blob and every stored lock, and compare archived
packages with upstream (conda here; PyPI files in app/archive/pypi_verify.py, reported
under ``pypi``).

Three different questions, one report. *Locks*: does every stored lock still hash to its
id (canonical form v2, app/locks/store.py), and every package row to its key? A lock that
does not was changed after it was written. *Integrity*: does every blob still hash to its name,
md5 and size? A failure there is corruption of our copy. *Drift*: does upstream still list
each archived file with the same hashes? A removed or changed package is exactly what the
archive exists for, so it is reported (with the locks that use it), not treated as an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.archive.blobs import BlobStore
from app.archive.pypi_verify import check_pypi_upstream, pypi_integrity
from app.core.canonical import format_time
from app.core.egress import guard_hooks
from app.core.tls import ssl_context
from app.db.models import ArchiveEntry, Blob, LockPackage, PackageFile, VerifyReport
from app.locks.store import verify_locks

log = logging.getLogger(__name__)


def verify_blobs(session: Session, store: BlobStore) -> dict[str, Any]:
    """Re-hash every blob the database says is stored."""
    corrupt: list[dict[str, Any]] = []
    missing: list[str] = []
    checked = 0
    for blob in session.scalars(select(Blob).order_by(Blob.sha256)):
        checked += 1
        if not store.exists(blob.sha256):
            missing.append(blob.sha256)
            continue
        info = store.hash_blob(blob.sha256)
        if (info.sha256, info.md5, info.size) != (blob.sha256, blob.md5, blob.size):
            corrupt.append(
                {
                    "sha256": blob.sha256,
                    "expected": {"sha256": blob.sha256, "md5": blob.md5, "size": blob.size},
                    "actual": {"sha256": info.sha256, "md5": info.md5, "size": info.size},
                }
            )
    return {"checked": checked, "corrupt": corrupt, "missing": missing}


async def _fetch_repodata(client: httpx.AsyncClient, url: str) -> dict[str, Any] | int:
    """Upstream repodata, streamed to a temp file first (it can be hundreds of MB).

    Returns the HTTP status instead when upstream does not answer 200.
    """
    with tempfile.TemporaryFile() as handle:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                return response.status_code
            async for chunk in response.aiter_bytes():
                handle.write(chunk)
        handle.seek(0)
        return json.load(handle)


def _package_ref(package: PackageFile, locks: list[str]) -> dict[str, Any]:
    return {
        "name": package.name,
        "version": package.version,
        "build": package.build,
        "subdir": package.subdir,
        "filename": package.filename,
        "url": package.url,
        "channel": package.channel,
        "locks": locks,
    }


def verify_allowlist() -> list[str]:
    """Where verify may fetch: the allowlist, and the proxied upstreams (whose files the
    archive keeps too)."""
    from app.config import get_settings

    settings = get_settings()
    return settings.allowed_channel_entries + list(settings.proxy_channel_map.values())


def pypi_allowlist() -> list[str]:
    """Where the PyPI drift check may fetch: CONDARCHIVE_ALLOWED_PYPI_INDEXES."""
    from app.config import get_settings

    return get_settings().allowed_pypi_entries


async def check_upstream(session: Session, timeout: float = 60.0) -> dict[str, Any]:
    """Which archived packages upstream no longer lists, or lists with other hashes."""
    rows = session.scalars(
        select(PackageFile)
        .join(ArchiveEntry, ArchiveEntry.package_id == PackageFile.id)
        .where(ArchiveEntry.state == "archived")
    ).all()
    groups: dict[tuple[str, str], list[PackageFile]] = defaultdict(list)
    for package in rows:
        groups[(package.channel, package.subdir)].append(package)
    locks_of: dict[int, list[str]] = defaultdict(list)
    for lock_id, package_id in session.execute(
        select(LockPackage.lock_id, LockPackage.package_id).distinct()
    ):
        locks_of[package_id].append(lock_id)
    removed: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    unreachable: list[dict[str, Any]] = []
    async with httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=True,
        event_hooks=guard_hooks(verify_allowlist()),
        verify=ssl_context(),
    ) as client:
        for (channel, subdir), packages in sorted(groups.items()):
            url = f"{channel}/{subdir}/repodata.json"
            try:
                repodata = await _fetch_repodata(client, url)
            except (httpx.HTTPError, ValueError) as exc:
                unreachable.append({"url": url, "error": f"{type(exc).__name__}: {exc}"})
                continue
            if isinstance(repodata, int) and repodata != 404:
                unreachable.append({"url": url, "error": f"HTTP {repodata}"})
                continue
            listed: dict[str, Any] = {}
            if isinstance(repodata, dict):
                listed = {**repodata.get("packages", {}), **repodata.get("packages.conda", {})}
            for package in packages:
                ref = _package_ref(package, sorted(locks_of.get(package.id, [])))
                upstream = listed.get(package.filename)
                if upstream is None:
                    removed.append(ref)
                    continue
                ours = {"sha256": package.sha256, "md5": package.md5, "size": package.size}
                theirs = {k: upstream.get(k) for k in ours}
                if any(ours[k] and theirs[k] and ours[k] != theirs[k] for k in ours):
                    changed.append({**ref, "archived": ours, "upstream": theirs})
    return {
        "channels_checked": len(groups),
        "removed": removed,
        "changed": changed,
        "unreachable": unreachable,
    }


def run_verify(session: Session, store: BlobStore, upstream: bool = True) -> dict[str, Any]:
    """Run both checks, store the report (a new row) and return it."""
    started = datetime.now(UTC)
    blobs = verify_blobs(session, store)
    locks = verify_locks(session)
    drift = asyncio.run(check_upstream(session)) if upstream else None
    pypi = pypi_integrity(session, blobs)
    pypi["upstream"] = (
        asyncio.run(check_pypi_upstream(session, pypi_allowlist())) if upstream else None
    )
    pypi_drift = pypi["upstream"]
    finished = datetime.now(UTC)
    ok = (
        not blobs["corrupt"]
        and not blobs["missing"]
        and not locks["mismatched"]
        and not locks["packages_mismatched"]
    )
    summary = {
        "ok": ok,
        "blobs_checked": blobs["checked"],
        "corrupt": len(blobs["corrupt"]),
        "missing": len(blobs["missing"]),
        "locks_checked": locks["checked"],
        "locks_mismatched": len(locks["mismatched"]),
        "packages_mismatched": len(locks["packages_mismatched"]),
        "removed_upstream": len(drift["removed"]) if drift else None,
        "changed_upstream": len(drift["changed"]) if drift else None,
        "unreachable": len(drift["unreachable"]) if drift else None,
        "pypi_checked": pypi["checked"],
        "pypi_corrupt": len(pypi["corrupt"]),
        "pypi_missing": len(pypi["missing"]),
        "pypi_removed_upstream": len(pypi_drift["removed"]) if pypi_drift else None,
        "pypi_changed_upstream": len(pypi_drift["changed"]) if pypi_drift else None,
        "pypi_yanked_upstream": len(pypi_drift["yanked"]) if pypi_drift else None,
        "pypi_unreachable": len(pypi_drift["unreachable"]) if pypi_drift else None,
    }
    report = {
        "started_at": format_time(started),
        "finished_at": format_time(finished),
        "summary": summary,
        "blobs": blobs,
        "locks": locks,
        "upstream": drift,
        "pypi": pypi,
    }
    session.add(
        VerifyReport(
            started_at=started, finished_at=finished, ok=ok, summary=summary, report=report
        )
    )
    session.commit()
    return report
