"""pixi.lock files, read by py-rattler: one target per (named) platform of one environment."""

from __future__ import annotations

import tempfile
from pathlib import Path

import rattler

from app.imports.entries import Entry, LineError, ParsedFile, check_url, make_target


def _last_line_with(lines: list[str], needle: str) -> int:
    """pixi.lock lists each URL under `environments:` and then, with its hashes, under
    `packages:`; the last mention is the one with the hashes."""
    for number in range(len(lines), 0, -1):
        if needle in lines[number - 1]:
            return number
    return 0


def parse_pixi(text: str, environment: str | None = None) -> ParsedFile:
    """A pixi.lock, read by py-rattler; one target per (named) platform of one environment."""
    with tempfile.TemporaryDirectory(prefix="condarchive-import-") as tmp:
        path = Path(tmp) / "pixi.lock"
        path.write_text(text)
        try:
            lockfile = rattler.LockFile.from_path(path)
        except Exception as exc:  # py-rattler raises its own exception types
            raise LineError(0, f"py-rattler cannot read this pixi.lock: {exc}") from exc
    environments = dict(lockfile.environments())
    if environment is None:
        environment = "default" if "default" in environments or not environments else None
        if environment is None and len(environments) == 1:
            environment = next(iter(environments))
    if environment not in environments:
        raise LineError(
            0,
            f"name one environment of this pixi.lock to import: {', '.join(sorted(environments))}",
        )
    env = environments[environment]
    lines = text.splitlines()
    targets = []
    for platform in sorted(env.platforms(), key=lambda p: p.name):
        packages = env.packages(platform) or []
        for package in packages:
            if not isinstance(package, rattler.CondaLockedBinaryPackage):
                raise LineError(
                    _last_line_with(lines, str(package.location)),
                    f"{package.name!r} is not a conda binary package; only those can be archived",
                )
        records = env.conda_repodata_records_for_platform(platform) or []
        entries = []
        for record in records:
            url = str(record.url)
            number = _last_line_with(lines, url)
            check_url(number, url)
            entries.append(
                Entry(
                    number,
                    url,
                    record.md5.hex() if record.md5 else None,
                    record.sha256.hex() if record.sha256 else None,
                )
            )
        entries.sort(key=lambda e: e.line)
        vps = list(platform.virtual_packages or [])
        targets.append(make_target(platform.name, str(platform.subdir), vps or None, entries, 0))
    channels = tuple(str(c) for c in env.channels())
    return ParsedFile("pixi", tuple(targets), channels)
