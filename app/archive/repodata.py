"""repodata.json for archive channels: what conda clients read to find archived packages.

The archive channel lists each archived file with the record it was locked with (the
upstream repodata entry as the solver saw it), so a client solving against the archive
picks the same builds, and its downloads verify against the same hashes. Bodies are
canonical JSON (sorted keys, no whitespace), so equal listings give equal bytes and ETags.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import zstandard

from app.db.models import PackageFile

#: Keys a locked record carries that belong to where a file was found, not to the package.
LOCATION_KEYS = ("fn", "url", "channel")


def repodata_record(package: PackageFile) -> dict[str, Any]:
    record = {k: v for k, v in package.record.items() if k not in LOCATION_KEYS}
    # The archive serves exactly these bytes: the hashes are the ones we verified.
    record.update({"md5": package.md5, "size": package.size})
    if package.sha256:
        record["sha256"] = package.sha256
    return record


def section_of(filename: str) -> str:
    return "packages.conda" if filename.endswith(".conda") else "packages"


def empty_repodata(subdir: str) -> dict[str, Any]:
    return {"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}, "repodata_version": 1}


def archive_repodata(subdir: str, packages: Iterable[PackageFile]) -> dict[str, Any]:
    """The listing of one archive channel subdir."""
    doc = empty_repodata(subdir)
    for package in packages:
        doc[section_of(package.filename)][package.filename] = repodata_record(package)
    return doc


def merge_archived(upstream: dict[str, Any], packages: Iterable[PackageFile]) -> list[str]:
    """Add archived packages upstream no longer lists to `upstream` (in place); return them.

    Upstream's own entries win: for a file it still lists, its current record is what a
    client should see. ``info.base_url`` is dropped so every download comes through us.
    """
    info = upstream.setdefault("info", {})
    info.pop("base_url", None)
    upstream.setdefault("packages", {})
    upstream.setdefault("packages.conda", {})
    added = []
    for package in packages:
        section = upstream[section_of(package.filename)]
        if package.filename not in section:
            section[package.filename] = repodata_record(package)
            added.append(package.filename)
    return added


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compress(body: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=10).compress(body)
