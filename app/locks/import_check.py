"""Checking imported entries against their channels' repodata, and taking the records from it.

PyPI entries (conda-lock's `manager: pip`, pixi.lock's `pypi:`) are looked up on the
project page (PEP 691 JSON, or PEP 503 HTML) of an allowed index (the one the file names,
else the service's default), through the same egress proxy as a PyPI resolution; the
file's sha256 must be the page's. Size comes from the page (or the file's
Content-Length), the requirements from the wheel's core metadata (PEP 658), as a solve
records them.

Each package URL is split into channel, subdir and filename; the channel must pass the
same allowlist a solve does (the service must not fetch arbitrary URLs). Repodata is read
with py-rattler's Gateway (sharded repodata where the channel has it, and the same on-disk
cache as the workers), asking only for the package names in the file. A record is taken
only when the file's md5/sha256 (where given) equal the channel's: the stored lock then
carries the channel's full record (depends, size, both hashes).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import rattler
from packaging.utils import canonicalize_name

from app.config import Settings
from app.core import egress_proxy
from app.core.channels import ChannelError, fetch_refusal, is_allowed, normalise_url
from app.core.filenames import upstream_record_problem
from app.core.pypi_spec import PyPIPolicy, index_refusal
from app.locks.formats.entries import Entry, LineError, ParsedFile, PyPIEntry, subdir_of
from app.locks.pypi_records import InvalidPyPIPackage, LockedPyPIPackage
from app.locks.store import LockedRecord, LockedTarget
from app.solve.pypi_lock import core_metadata, pypi_proxy


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
    pypi, pypi_errors, pypi_read = verify_pypi(parsed, settings)
    errors += pypi_errors
    if errors:
        raise ImportRefused(errors)
    targets = [replace(t, pypi_packages=pypi.get(t.name, ())) for t in targets]
    return targets, {"repodata": read, "hashes_checked": checked, **pypi_read}


# --- the PyPI part ----------------------------------------------------------------------

#: Bytes of one project page read at most (PyPI's largest JSON pages are a few MB).
MAX_PROJECT_PAGE = 32 * 1024 * 1024
_SIMPLE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
_ANCHOR = re.compile(r"<a\s([^>]*)>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r'([\w-]+)\s*=\s*"([^"]*)"')


@dataclass(frozen=True)
class ListedFile:
    """One file as an index's project page lists it."""

    url: str
    filename: str
    sha256: str | None
    size: int | None
    requires_python: str | None


def _project_files(page: str, url: str, is_json: bool) -> list[ListedFile]:
    """The files of a PEP 691 JSON or PEP 503 HTML project page."""
    files = []
    if is_json:
        data = json.loads(page)
        for item in data.get("files") or []:
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                continue
            hashes = item.get("hashes") if isinstance(item.get("hashes"), dict) else {}
            size = item.get("size")
            files.append(
                ListedFile(
                    urljoin(url, item["url"]).split("#", 1)[0],
                    str(item.get("filename") or ""),
                    hashes.get("sha256"),
                    size if isinstance(size, int) else None,
                    item.get("requires-python") or None,
                )
            )
        return files
    for match in _ANCHOR.finditer(page):
        attributes = {k.lower(): html.unescape(v) for k, v in _ATTRIBUTE.findall(match[1])}
        if "href" not in attributes:
            continue
        href, _, fragment = urljoin(url, attributes["href"]).partition("#")
        sha256 = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
        filename = unquote(urlsplit(href).path.rsplit("/", 1)[-1])
        files.append(
            ListedFile(href, filename, sha256, None, attributes.get("data-requires-python"))
        )
    return files


class _IndexReader:
    """Project pages of the allowed indexes, each read once, through the PyPI egress proxy."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.pages: dict[tuple[str, str], list[ListedFile] | None] = {}

    def files(self, index: str, project: str) -> list[ListedFile] | None:
        key = (index, project)
        if key not in self.pages:
            self.pages[key] = self._read(f"{index}/{project}/")
        return self.pages[key]

    def _read(self, url: str) -> list[ListedFile] | None:
        try:
            with self.client.stream("GET", url, headers={"Accept": _SIMPLE_ACCEPT}) as response:
                if response.status_code != 200:
                    return None
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_PROJECT_PAGE:
                        return None
                is_json = "json" in response.headers.get("content-type", "")
                return _project_files(body.decode("utf-8", "replace"), str(response.url), is_json)
        except (httpx.HTTPError, ValueError):
            return None

    def size(self, url: str) -> int | None:
        """Content-Length of the file (for an HTML page, which gives no size)."""
        try:
            response = self.client.head(url)
            length = response.headers.get("content-length")
            return int(length) if response.status_code == 200 and length else None
        except (httpx.HTTPError, ValueError):
            return None


def _candidate_indexes(entry: PyPIEntry, parsed: ParsedFile, settings: Settings) -> list[str]:
    """Where to look for the file: the index the file names for it, the file's indexes,
    then the service's default index."""
    named = [entry.index, *parsed.pypi_indexes, settings.default_pypi_index]
    return list(dict.fromkeys(i.rstrip("/") for i in named if i))


def _check_pypi_entry(
    entry: PyPIEntry,
    parsed: ParsedFile,
    settings: Settings,
    policy: PyPIPolicy,
    reader: _IndexReader,
) -> tuple[LockedPyPIPackage, str]:
    """The locked package the index lists for the entry (and the page read), or LineError."""
    filename = unquote(urlsplit(entry.url).path.rsplit("/", 1)[-1])
    if (reason := index_refusal(entry.url, policy)) is not None:
        raise LineError(entry.line, f"PyPI file {filename} refused: {reason}", entry.url)
    if not entry.sha256:
        raise LineError(
            entry.line, f"{filename} has no sha256, which the index's must equal", entry.url
        )
    indexes = [
        i for i in _candidate_indexes(entry, parsed, settings) if not index_refusal(i, policy)
    ]
    project = canonicalize_name(entry.name)
    for index in indexes:
        listed = next(
            (f for f in reader.files(index, project) or [] if f.url == entry.url),
            None,
        )
        if listed is None:
            continue
        page = f"{index}/{project}/"
        if listed.sha256 is None or listed.sha256.lower() != entry.sha256.lower():
            raise LineError(
                entry.line,
                f"sha256 of {filename} is given as {entry.sha256}, but {page} says "
                f"{listed.sha256 or 'nothing'}",
                entry.url,
            )
        size = listed.size if listed.size is not None else reader.size(entry.url)
        if size is None:
            raise LineError(entry.line, f"{page} gives no size for {filename}", entry.url)
        requires, requires_python = entry.requires or (), entry.requires_python
        requires_python = listed.requires_python or requires_python
        metadata = core_metadata(reader.client, entry.url) if filename.endswith(".whl") else None
        if metadata is not None:  # the file's own metadata, as a solve records it
            requires_python = metadata.get("Requires-Python") or requires_python
            requires = tuple(metadata.get_all("Requires-Dist") or ())
        try:
            package = LockedPyPIPackage(
                name=str(project),
                version=entry.version,
                url=entry.url,
                filename=listed.filename or filename,
                sha256=listed.sha256.lower(),
                size=size,
                requires_python=requires_python,
                requires=tuple(requires),
                kind="index",
                index=index,
            )
        except InvalidPyPIPackage as exc:  # a version or file name no index would list
            raise LineError(entry.line, str(exc), entry.url) from exc
        return package, page
    raise LineError(
        entry.line,
        f"{filename} is not listed by {' or '.join(f'{i}/{project}/' for i in indexes)} "
        f"(the allowed indexes the file names, and {settings.default_pypi_index})",
        entry.url,
    )


def verify_pypi(
    parsed: ParsedFile, settings: Settings
) -> tuple[dict[str, tuple[LockedPyPIPackage, ...]], list[LineError], dict[str, Any]]:
    """Each target's PyPI packages, checked against the index that lists them: the file's
    sha256 must be the index's. Returns the packages, the lines refused and what was read."""
    entries = [(t.name, e) for t in parsed.targets for e in t.pypi_entries]
    if not entries:
        return {}, [], {}
    policy = PyPIPolicy.of(settings)
    proxy = pypi_proxy(policy)
    found: dict[str, list[LockedPyPIPackage]] = {t.name: [] for t in parsed.targets}
    errors: list[LineError] = []
    pages: set[str] = set()
    with httpx.Client(proxy=proxy.url, timeout=30.0, follow_redirects=True) as client:
        reader = _IndexReader(client)
        for target, entry in entries:
            try:
                package, page = _check_pypi_entry(entry, parsed, settings, policy, reader)
            except LineError as exc:
                errors.append(exc)
                continue
            if any(p.name == package.name for p in found[target]):
                errors.append(
                    LineError(
                        entry.line,
                        f"PyPI package {package.name} is listed twice for target {target}",
                        entry.url,
                    )
                )
                continue
            found[target].append(package)
            pages.add(page)
    packages = {name: tuple(sorted(p, key=lambda p: (p.name, p.url))) for name, p in found.items()}
    checked = {"pypi_pages": sorted(pages), "sha256_checked": len(entries) - len(errors)}
    return packages, errors, {"pypi": checked}
