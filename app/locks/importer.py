"""Archiving an environment someone already has, without a solve.

parse (formats.py) -> check against the channels' repodata (verify.py) -> store the lock
through :func:`app.locks.store.store_lock`. The lock id depends only on what the lock renders
(its files with their metadata, targets and channels), so importing an environment that
was also solved gives the same id; the import is recorded as one more request of it.

A conda-lock.yml's `manager: pip` entries and a pixi.lock's `pypi:` packages become the
targets' PyPI packages, each checked against the index that lists it (import_check.py).
Local pip lines cannot be in either file, so a lock that had some imports as another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version

from sqlalchemy.orm import Session

from app.config import Settings
from app.core.canonical import format_time, sha256_of
from app.core.channels import ChannelError, resolve_channel
from app.locks.formats.detect import FORMATS, parse_lockfile
from app.locks.formats.entries import LineError, ParsedFile
from app.locks.import_check import ImportRefused, verify
from app.locks.store import LockedTarget, RequestRecord, find_lock, lock_id_of, store_lock


@dataclass(frozen=True)
class Imported:
    lock_id: str
    created: bool
    format: str
    targets: dict[str, int]  # target name -> number of packages


def _channels(parsed: ParsedFile, targets: list[LockedTarget], alias: str) -> list[str]:
    """The file's declared channels as URLs, then any other channel a package came from."""
    channels: list[str] = []
    for declared in parsed.channels:
        try:
            urls = resolve_channel(declared, alias)
        except ChannelError:
            continue
        channels.extend(u for u in urls if u not in channels)
    used = [r.channel for t in targets for r in t.records]
    channels.extend(c for c in dict.fromkeys(used) if c not in channels)
    return channels


def import_lockfile(
    session: Session,
    settings: Settings,
    content: str,
    fmt: str | None = None,
    platform: str | None = None,
    environment: str | None = None,
) -> Imported:
    """Parse, verify and store; raises :class:`ImportRefused` (all bad lines) or
    :class:`app.errors.InputError` (a file that cannot be read at all)."""
    parsed = parse_lockfile(content, fmt, platform, environment)
    targets, checks = verify(parsed, settings)
    submitted = {"format": parsed.format, "content": content}
    channels = _channels(parsed, targets, settings.channel_alias)
    spec = {"channels": channels, "dependencies": []}
    provenance = {
        "imported": {
            "format": parsed.format,
            "imported_at": format_time(datetime.now(UTC)),
            "content_sha256": hashlib.sha256(content.encode()).hexdigest(),
        },
        "verifier": {"name": "py-rattler", "version": version("py-rattler")},
        **checks,
    }
    asked = RequestRecord(
        kind="import",
        key=sha256_of(submitted),
        name=None,
        spec=spec,
        spec_hash=sha256_of(spec),
        submitted=submitted,
        provenance=provenance,
    )
    existed = find_lock(session, lock_id_of(targets, channels)) is not None
    lock_id = store_lock(session, targets, channels, asked)
    session.commit()
    return Imported(lock_id, not existed, parsed.format, {t.name: len(t.records) for t in targets})


__all__ = ["FORMATS", "ImportRefused", "Imported", "LineError", "import_lockfile"]
