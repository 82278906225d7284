"""repodata.json for archive channels: what conda clients read to find archived packages.

The archive channel lists each archived file with the record it was locked with (the
upstream repodata entry as the solver saw it), so a client solving against the archive
picks the same builds. Its sha256, md5 and size are always those of the stored blob the
listed URL serves (computed when it was stored), never the record's claim: a record that
had no hashes, or empty ones, is listed with the real ones. Bodies are canonical JSON
(sorted keys, no whitespace), so equal listings give equal bytes and ETags.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import zstandard

from app.db.models import PackageFile

#: Keys a locked record carries that belong to where a file was found, not to the package.
LOCATION_KEYS = ("fn", "url", "channel")


#: Hash fields of a repodata record: listed only with a real value (never "" or 0).
HASH_KEYS = ("sha256", "md5", "size")


@dataclass(frozen=True)
class ArchivedFile:
    """An archived package row and the blob its URL serves (the hashes we computed)."""

    package: PackageFile
    sha256: str
    md5: str
    size: int

    @property
    def filename(self) -> str:
        return self.package.filename


def repodata_record(archived: ArchivedFile) -> dict[str, Any]:
    record = {k: v for k, v in archived.package.record.items() if k not in LOCATION_KEYS}
    # The archive serves exactly the blob's bytes: list its hashes, whatever the record said.
    record.update({"sha256": archived.sha256, "md5": archived.md5, "size": archived.size})
    return record


def drop_empty_hashes(record: dict[str, Any]) -> None:
    """Remove hash fields that say nothing (``""``, ``0``, null) from an upstream record."""
    for key in HASH_KEYS:
        if key in record and not record[key]:
            del record[key]


def section_of(filename: str) -> str:
    return "packages.conda" if filename.endswith(".conda") else "packages"


def empty_repodata(subdir: str) -> dict[str, Any]:
    return {"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}, "repodata_version": 1}


def archive_repodata(subdir: str, packages: Iterable[ArchivedFile]) -> dict[str, Any]:
    """The listing of one archive channel subdir."""
    doc = empty_repodata(subdir)
    for package in packages:
        doc[section_of(package.filename)][package.filename] = repodata_record(package)
    return doc


def merge_archived(upstream: dict[str, Any], packages: Iterable[ArchivedFile]) -> list[str]:
    """Add archived packages upstream no longer lists to `upstream` (in place); return them.

    Upstream's own entries win: for a file it still lists, its current record is what a
    client should see, and the proxy serves the bytes of that record (see
    app/archive/proxy.py). Empty hash fields of upstream's records are dropped.
    ``info.base_url`` is dropped so every download comes through us.
    """
    info = upstream.setdefault("info", {})
    info.pop("base_url", None)
    upstream.setdefault("packages", {})
    upstream.setdefault("packages.conda", {})
    for section in ("packages", "packages.conda"):
        for record in upstream[section].values():
            if isinstance(record, dict):
                drop_empty_hashes(record)
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
