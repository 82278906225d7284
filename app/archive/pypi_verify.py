"""Verify the PyPI part of the archive: each archived PyPI file's blob, and upstream drift.

*Integrity* comes from the blob re-hash app/archive/verify.py already does (PyPI files
are blobs like any other); this names the PyPI files whose blob is corrupt or missing.
*Drift*: does the file's index still list it, with the same sha256, and not yanked
(PEP 592: ``data-yanked`` in HTML, ``yanked`` in PEP 691 JSON)? A release deleted or
yanked upstream is exactly what the archive exists for, so it is reported, with the
locks that use it, not treated as an error. A direct-URL file is checked by asking for
it (gone: removed); a VCS source archive, made by condarchive, has no upstream listing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.archive.pypi_views import normalize
from app.core.egress import guard_hooks
from app.core.tls import ssl_context
from app.db.models import LockPyPIPackage, PyPIArchiveEntry, PyPIFile

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
NO_ALIAS = "https://invalid.invalid"


def _archived(session: Session) -> list[tuple[PyPIFile, str]]:
    return [
        (package, sha256 or "")
        for package, sha256 in session.execute(
            select(PyPIFile, PyPIArchiveEntry.blob_sha256)
            .join(PyPIArchiveEntry, PyPIArchiveEntry.pypi_package_id == PyPIFile.id)
            .where(PyPIArchiveEntry.state == "archived")
            .order_by(PyPIFile.name, PyPIFile.filename)
        ).all()
    ]


def _locks_of(session: Session) -> dict[int, list[str]]:
    locks: dict[int, list[str]] = defaultdict(list)
    for lock_id, package_id in session.execute(
        select(LockPyPIPackage.lock_id, LockPyPIPackage.pypi_package_id).distinct()
    ):
        locks[package_id].append(lock_id)
    return {k: sorted(v) for k, v in locks.items()}


def _ref(package: PyPIFile, locks: dict[int, list[str]]) -> dict[str, Any]:
    return {
        "name": package.name,
        "version": package.version,
        "filename": package.filename,
        "url": package.url,
        "sha256": package.sha256,
        "index": (package.record or {}).get("index"),
        "locks": locks.get(package.id, []),
    }


def pypi_integrity(session: Session, blobs: dict[str, Any]) -> dict[str, Any]:
    """The archived PyPI files whose blob `blobs` (verify_blobs' report) found corrupt or
    missing."""
    corrupt = {item["sha256"] for item in blobs["corrupt"]}
    missing = set(blobs["missing"])
    locks = _locks_of(session)
    archived = _archived(session)
    return {
        "checked": len(archived),
        "corrupt": [_ref(p, locks) for p, sha in archived if sha in corrupt],
        "missing": [_ref(p, locks) for p, sha in archived if sha in missing],
    }


class _Links(HTMLParser):
    """A PEP 503 project page's anchors: filename -> (sha256 or None, yanked reason or None)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, dict[str, Any]] = {}
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        attributes = dict(attrs)
        href = attributes.get("href") or ""
        fragment = urlsplit(href).fragment
        sha256 = fragment.split("=", 1)[1] if fragment.startswith("sha256=") else None
        yanked = "data-yanked" in attributes
        path = urlsplit(href).path
        self._current = {
            "filename": path.rsplit("/", 1)[-1],
            "sha256": sha256,
            "yanked": (attributes.get("data-yanked") or True) if yanked else False,
        }

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.files[self._current["filename"]] = self._current
            self._current = None


def parse_project_page(body: bytes, content_type: str) -> dict[str, dict[str, Any]]:
    """filename -> {"sha256", "yanked": False | True | reason} from a JSON or HTML page."""
    if content_type.split(";")[0].strip() == JSON_TYPE:
        page = json.loads(body)
        return {
            item["filename"]: {
                "filename": item["filename"],
                "sha256": (item.get("hashes") or {}).get("sha256"),
                "yanked": item.get("yanked") or False,
            }
            for item in page.get("files", [])
        }
    links = _Links()
    links.feed(body.decode("utf-8", "replace"))
    return links.files


async def check_pypi_upstream(
    session: Session, allowed: list[str], timeout: float = 60.0
) -> dict[str, Any]:
    """Which archived PyPI files their index no longer lists, lists with another sha256,
    or lists as yanked."""
    locks = _locks_of(session)
    pages: dict[str, list[PyPIFile]] = defaultdict(list)
    direct: list[PyPIFile] = []
    not_checked: list[dict[str, Any]] = []
    for package, _sha in _archived(session):
        record = package.record or {}
        kind = record.get("kind") or "index"
        if kind == "vcs":
            not_checked.append({**_ref(package, locks), "why": "a VCS source archive"})
        elif kind == "index" and record.get("index"):
            index = str(record["index"]).rstrip("/")
            pages[f"{index}/{normalize(package.name)}/"].append(package)
        else:  # a direct URL, or an index file of a lock that searched several indexes
            direct.append(package)
    removed: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    yanked: list[dict[str, Any]] = []
    unreachable: list[dict[str, Any]] = []
    async with httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=True,
        event_hooks=guard_hooks(allowed, NO_ALIAS),
        verify=ssl_context(),
    ) as client:
        for url, packages in sorted(pages.items()):
            try:
                response = await client.get(url, headers={"Accept": ACCEPT})
            except httpx.HTTPError as exc:
                unreachable.append({"url": url, "error": f"{type(exc).__name__}: {exc}"})
                continue
            if response.status_code == 404:
                removed += [{**_ref(p, locks), "why": "project gone"} for p in packages]
                continue
            if response.status_code != 200:
                unreachable.append({"url": url, "error": f"HTTP {response.status_code}"})
                continue
            try:
                listed = parse_project_page(
                    response.content, response.headers.get("content-type", "")
                )
            except ValueError as exc:
                unreachable.append({"url": url, "error": f"unreadable project page: {exc}"})
                continue
            for package in packages:
                ref = _ref(package, locks)
                upstream = listed.get(package.filename)
                if upstream is None:
                    removed.append({**ref, "why": "no longer listed"})
                    continue
                if upstream["sha256"] and package.sha256 and upstream["sha256"] != package.sha256:
                    changed.append({**ref, "upstream_sha256": upstream["sha256"]})
                if upstream["yanked"]:
                    reason = upstream["yanked"] if isinstance(upstream["yanked"], str) else None
                    yanked.append({**ref, "reason": reason})
        for package in direct:
            try:
                response = await client.head(package.url)
            except httpx.HTTPError as exc:
                unreachable.append({"url": package.url, "error": f"{type(exc).__name__}: {exc}"})
                continue
            if response.status_code in (404, 410):
                removed.append({**_ref(package, locks), "why": f"HTTP {response.status_code}"})
            elif response.status_code >= 400 and response.status_code != 405:
                unreachable.append({"url": package.url, "error": f"HTTP {response.status_code}"})
    return {
        "pages_checked": len(pages),
        "files_checked": sum(len(p) for p in pages.values()) + len(direct),
        "removed": removed,
        "changed": changed,
        "yanked": yanked,
        "unreachable": unreachable,
        "not_checked": not_checked,
    }
