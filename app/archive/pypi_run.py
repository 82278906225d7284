"""What a worker does with a lock's PyPI files: decide, per claimed file, whether it is
stored already, refused by the PyPI allowlist, or to be downloaded, and the HTTP client
that downloads them.

The downloading itself is app/archive/download.py's, as for conda packages: streamed into
the blob store, the sha256 and size checked before the blob is named, retried, resumed.
app/archive/run.py runs the loop (claim, plan, download, record).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx
from sqlalchemy.orm import Session

from app.archive.blobs import BlobInfo, BlobMismatch, BlobStore, Expected, mismatches
from app.archive.download import Download, policy_from, read_large_chunks
from app.archive.state import stored_blob
from app.config import Settings
from app.core.egress import guard_hooks
from app.core.pypi_spec import PyPIPolicy, index_refusal
from app.core.tls import ssl_context
from app.db.models import PyPIArchiveEntry, PyPIFile

log = logging.getLogger(__name__)

#: No channel alias applies to PyPI URLs: only the allowlist entries themselves.
NO_ALIAS = "https://invalid.invalid"


@dataclass
class PyPIPlan:
    """What to do with the claimed entries: download some, record the others now."""

    downloads: list[Download] = field(default_factory=list)
    archived: list[tuple[int, BlobInfo]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def expected_of(package: PyPIFile) -> Expected:
    """A lock records a PyPI file's sha256 and size (no md5): what its bytes must be."""
    return Expected(package.sha256 or None, None, package.size or None)


def plan_pypi(
    session: Session, store: BlobStore, settings: Settings, entries: list[PyPIArchiveEntry]
) -> PyPIPlan:
    """Sort claimed entries: stored already (checked by size too), refused, or to fetch.

    Every URL must pass ``CONDARCHIVE_ALLOWED_PYPI_INDEXES`` (the lock was made under
    that allowlist, but it may have changed since, and an imported lock names any URL).
    """
    policy = PyPIPolicy.of(settings)
    plan = PyPIPlan()
    for entry in entries:
        package = entry.package
        expected = expected_of(package)
        stored = stored_blob(session, store, package.sha256) if package.sha256 else None
        if stored is not None:
            if mismatches(expected, stored):
                plan.failed.append(
                    (entry.pypi_package_id, str(BlobMismatch(expected, stored, package.url)))
                )
            else:
                plan.archived.append((entry.pypi_package_id, stored))
            continue
        if not package.sha256:
            plan.failed.append(
                (entry.pypi_package_id, f"{package.url}: the lock names no sha256 to check")
            )
            continue
        refusal = index_refusal(package.url, policy)
        if refusal is not None:
            plan.failed.append((entry.pypi_package_id, f"refused to fetch {refusal}"))
            continue
        plan.downloads.append(Download(entry.pypi_package_id, package.url, expected))
    return plan


def pypi_client(settings: Settings, concurrency: int) -> httpx.AsyncClient:
    """A download client whose requests and redirects stay inside the PyPI allowlist
    (a file host such as files.pythonhosted.org is an entry of its own)."""
    read_large_chunks()
    policy = policy_from(settings)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(policy.timeout, connect=min(policy.timeout, 15.0)),
        limits=httpx.Limits(max_connections=max(concurrency, 1) * 2),
        follow_redirects=True,
        event_hooks=guard_hooks(settings.allowed_pypi_entries, NO_ALIAS),
        verify=ssl_context(),
    )
