"""Reading an explicit file (`@EXPLICIT`) back as an explicit-file installer does."""

from __future__ import annotations

import rattler


def explicit_records(text: str) -> list[rattler.RepoDataRecord]:
    """What an explicit-file installer knows: URL, md5 fragment (and our sha256 comments)."""
    records, sha256 = [], None
    for line in text.splitlines():
        if line.startswith("# sha256:"):
            sha256 = line.split(":", 1)[1].strip()
            continue
        if not line.strip() or line.startswith("#") or line.strip() == "@EXPLICIT":
            continue
        url, md5 = line.split("#")
        filename = url.rsplit("/", 1)[1]
        stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
        name, version, build = stem.rsplit("-", 2)
        record = rattler.PackageRecord(
            name,
            version,
            rattler.BuildString.new_unchecked(build),
            0,
            url.rsplit("/", 2)[1],
            md5=bytes.fromhex(md5),
            sha256=bytes.fromhex(sha256) if sha256 else None,
        )
        records.append(rattler.RepoDataRecord(record, filename, url, url.rsplit("/", 2)[0] + "/"))
        sha256 = None
    return records
