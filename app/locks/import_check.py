"""Checking imported entries against their channels' repodata, and taking the records from it.

Each package URL is split into channel, subdir and filename; the channel must pass the
same allowlist a solve does (the service must not fetch arbitrary URLs). Repodata is read
with py-rattler's Gateway (sharded repodata where the channel has it, and the same on-disk
cache as the workers), asking only for the package names in the file. A record is taken
only when the file's md5/sha256 (where given) equal the channel's: the stored lock then
carries the channel's full record (depends, size, both hashes).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rattler

from app.config import Settings
from app.core import egress_proxy
from app.core.channels import ChannelError, fetch_refusal, is_allowed, normalise_url
from app.core.filenames import upstream_record_problem
from app.locks.formats.entries import Entry, LineError, ParsedFile, subdir_of
from app.locks.store import LockedRecord, LockedTarget


@dataclass(frozen=True)
class Located:
    """Where an entry's file lives: `channel/subdir/filename`."""

    channel: str
    subdir: str
    filename: str

    @property
    def name(self) -> str:
        return self.filename.rsplit("-", 2)[0]


def locate(entry: Entry, settings: Settings) -> Located:
    try:
        channel = normalise_url(entry.url.rsplit("/", 2)[0])
    except ChannelError as exc:
        raise LineError(entry.line, str(exc), entry.url) from exc
    if not is_allowed(channel, settings.allowed_channel_entries, settings.channel_alias):
        raise LineError(
            entry.line,
            f"channel {channel} is not in CONDARCHIVE_ALLOWED_CHANNELS; ask the operator to add it",
            entry.url,
        )
    reason = fetch_refusal(channel, settings.allowed_channel_entries, settings.channel_alias)
    if reason is not None:  # e.g. a private address the allowlist does not name
        raise LineError(entry.line, f"channel {channel} refused: {reason}", entry.url)
    return Located(channel, subdir_of(entry.url), entry.url.rsplit("/", 1)[1])


async def _query(
    cache_dir: Path, wanted: dict[tuple[str, str], set[str]]
) -> dict[Located, rattler.RepoDataRecord]:
    # Through the egress proxy, as the solver's: every request and redirect hop is checked.
    gateway = rattler.Gateway(cache_dir=cache_dir, client=egress_proxy.rattler_client())
    found: dict[Located, rattler.RepoDataRecord] = {}
    for (channel, subdir), names in sorted(wanted.items()):
        result = await gateway.query(
            [rattler.Channel(channel + "/")], [subdir], sorted(names), recursive=False
        )
        for records in result:
            for record in records:
                found[Located(channel, subdir, record.file_name)] = record
    return found


def fetch_records(
    located: list[Located], settings: Settings
) -> tuple[dict[Located, rattler.RepoDataRecord], list[dict[str, str]]]:
    """Records for every located file that its channel lists, and what was read (provenance)."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for item in located:
        wanted.setdefault((item.channel, item.subdir), set()).add(item.name)
    settings.repodata_cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        found = asyncio.run(
            asyncio.wait_for(_query(settings.repodata_cache_dir, wanted), settings.solve_timeout)
        )
    except TimeoutError as exc:
        raise LineError(0, f"reading repodata took over {settings.solve_timeout:g}s") from exc
    except Exception as exc:  # py-rattler raises its own exception types
        message = f"could not read repodata: {str(exc).splitlines()[0]}"
        if refused := egress_proxy.refusals_since(started):
            message = f"{message} (egress refused {refused[0].url}: {refused[0].reason})"
        raise LineError(0, message) from exc
    read = [
        {"channel": channel, "subdir": subdir, "url": f"{channel}/{subdir}/repodata.json"}
        for channel, subdir in sorted(wanted)
    ]
    return found, read


def _check(entry: Entry, where: Located, record: rattler.RepoDataRecord | None) -> None:
    if record is None:
        raise LineError(
            entry.line,
            f"{where.filename} is not in {where.channel}/{where.subdir}/repodata.json",
            entry.url,
        )
    for kind, given, actual in (
        ("md5", entry.md5, record.md5.hex() if record.md5 else None),
        ("sha256", entry.sha256, record.sha256.hex() if record.sha256 else None),
    ):
        if given and actual and given != actual:
            raise LineError(
                entry.line,
                f"{kind} of {where.filename} is given as {given}, "
                f"but {where.channel}/{where.subdir}/repodata.json says {actual}",
                entry.url,
            )


class ImportRefused(Exception):
    """Every line that failed, so one round trip shows the user all of them."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__("; ".join(e.msg for e in errors))
        self.errors = errors


def verify(parsed: ParsedFile, settings: Settings) -> tuple[list[LockedTarget], dict[str, Any]]:
    """Locked targets for every entry, or :class:`ImportRefused` naming each bad line.

    All entries are located (allowlist) before anything is fetched.
    """
    errors: list[LineError] = []
    located: dict[tuple[str, int, str], Located] = {}
    for target in parsed.targets:
        for entry in target.entries:
            try:
                located[(target.name, entry.line, entry.url)] = locate(entry, settings)
            except LineError as exc:
                errors.append(exc)
    if errors:
        raise ImportRefused(errors)
    found, read = fetch_records(sorted(set(located.values()), key=str), settings)
    targets = []
    checked = {"md5": 0, "sha256": 0}
    for target in parsed.targets:
        records: dict[str, LockedRecord] = {}
        for entry in target.entries:
            where = located[(target.name, entry.line, entry.url)]
            record = found.get(where)
            try:
                _check(entry, where, record)
            except LineError as exc:
                errors.append(exc)
                continue
            assert record is not None
            checked["md5"] += bool(entry.md5)
            checked["sha256"] += bool(entry.sha256)
            locked = LockedRecord.from_rattler(record)
            problem = upstream_record_problem(
                locked.filename,
                locked.subdir,
                locked.url,
                settings.allowed_channel_entries,
                settings.channel_alias,
            )
            if problem is not None:  # e.g. a `base_url` that points outside the allowlist
                errors.append(
                    LineError(
                        entry.line,
                        f"{where.channel}/{where.subdir}/repodata.json {problem}",
                        entry.url,
                    )
                )
                continue
            if locked.name in records:
                errors.append(
                    LineError(
                        entry.line,
                        f"{locked.name} is listed twice for target {target.name}",
                        entry.url,
                    )
                )
            records[locked.name] = locked
        targets.append(
            LockedTarget(
                target.name,
                target.platform,
                target.virtual_packages,
                tuple(sorted(records.values(), key=lambda r: r.name)),
            )
        )
    if errors:
        raise ImportRefused(errors)
    return targets, {"repodata": read, "hashes_checked": checked}
