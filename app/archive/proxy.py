"""The pull-through mirror: `CONDARCHIVE_PROXY_CHANNELS` channels served through the archive.

Repodata: upstream's copy is kept on disk and served merged with the archived packages
upstream no longer lists. Once a copy exists a client never waits on upstream: a stale copy
(older than ``proxy_repodata_ttl``) is served at once while one background refresh per
channel subdir re-validates it (If-None-Match / If-Modified-Since).

Packages: a file is looked up in the upstream repodata copy, and what is served is the
archived copy with exactly that record's hashes; if there is none yet, the file is
downloaded through the same mirror code the workers use (streamed, retried, verified
against the record's sha256, md5 and size), stored, recorded as archived, and only then
served. A file upstream no longer lists is served as the merged listing lists it (the
first archived copy, with its blob's hashes). So the listing and the bytes always agree,
also after upstream replaced a file under the same name.

Only known conda subdirs are proxied (py-rattler's platforms and ``noarch``): any other
name is a 404 with no upstream request and nothing on disk. Upstream repodata is
decoded to disk up to ``CONDARCHIVE_PROXY_MAX_REPODATA_BYTES``; past that (a gzip bomb,
or a runaway body) the fetch fails with 502 naming the limit, and the partial file is
removed.

This is the one place the web process downloads: a conda client is waiting for the bytes,
so a queue round trip would only add latency. Downloads of one file are single-flight per
process; across processes the blob store's write-once rename makes a second copy harmless.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from email.utils import formatdate
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import rattler
from starlette.concurrency import run_in_threadpool

from app.archive.blobs import BlobInfo, BlobMismatch, BlobStore, Expected, mismatches
from app.archive.naming import channel_name
from app.archive.repodata import compress, empty_repodata, encode, merge_archived
from app.archive.state import record_proxied as record_proxied_package
from app.archive.state import stored_blob
from app.archive.views import (
    archive_fingerprint,
    archived_matching,
    archived_packages,
    archived_sha256,
)
from app.config import Settings
from app.core.egress import guard_hooks
from app.core.etag import etag_of
from app.core.filenames import is_package_filename
from app.core.tls import ssl_context
from app.db.session import session_scope

log = logging.getLogger(__name__)


#: The subdirs the proxy fetches: py-rattler's platforms and noarch, nothing a client invents.
KNOWN_SUBDIRS = frozenset(str(p) for p in rattler.Platform.all()) | {"noarch"}


class ProxyError(Exception):
    """What to answer the client instead: an HTTP status and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class UpstreamCopy:
    """Upstream's repodata for one subdir as last fetched (status 404: upstream has none)."""

    path: Path
    status: int
    sha256: str
    fetched_at: float
    etag: str | None
    last_modified: str | None
    url: str


@dataclass(frozen=True)
class MergedRepodata:
    json_path: Path
    zst_path: Path
    json_etag: str
    zst_etag: str
    added: int


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _sibling(stem: Path, suffix: str) -> Path:
    return stem.parent / (stem.name + suffix)


class Proxy:
    """Per-process state of the pull-through mirror."""

    def __init__(self, settings: Settings, store: BlobStore) -> None:
        self.channels = settings.proxy_channel_map
        # Fetches (and redirects) may go to the allowlist and the proxied upstreams.
        self.fetches_from = settings.allowed_channel_entries + list(self.channels.values())
        self.alias = settings.channel_alias
        self.root = settings.proxy_dir
        self.ttl = settings.proxy_repodata_ttl
        self.max_repodata_bytes = settings.proxy_max_repodata_bytes
        self.store = store
        self.timeout = settings.archive_timeout
        from app.archive.download import policy_from

        self.policy = policy_from(settings)
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self._refreshing: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None

    # --- upstream repodata ------------------------------------------------------------------

    def _dir(self, name: str, subdir: str) -> Path:
        if subdir not in KNOWN_SUBDIRS:  # never a directory for a name a client invented
            raise ProxyError(404, f"{subdir!r} is not a conda subdir")
        return self.root / channel_name(self.channels[name]) / subdir

    @staticmethod
    def check_subdir(subdir: str) -> None:
        if subdir not in KNOWN_SUBDIRS:
            known = ", ".join(sorted(KNOWN_SUBDIRS))
            raise ProxyError(404, f"{subdir!r} is not a conda subdir (known: {known})")

    def _lock(self, *key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            from app.archive.download import read_large_chunks

            read_large_chunks()  # package files, as the archive fetches them
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 15.0))
            self._client = httpx.AsyncClient(
                timeout=timeout,
                follow_redirects=True,
                event_hooks=guard_hooks(self.fetches_from, self.alias),
                verify=ssl_context(),
            )
        return self._client

    def _read_copy(self, name: str, subdir: str) -> UpstreamCopy | None:
        meta_path = self._dir(name, subdir) / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None
        return UpstreamCopy(
            path=self._dir(name, subdir) / "upstream.json",
            status=meta["status"],
            sha256=meta["sha256"],
            fetched_at=meta["fetched_at"],
            etag=meta.get("etag"),
            last_modified=meta.get("last_modified"),
            url=meta["url"],
        )

    def _write_meta(self, name: str, subdir: str, meta: dict[str, Any]) -> None:
        _write_atomic(self._dir(name, subdir) / "meta.json", json.dumps(meta).encode())

    async def _fetch(self, name: str, subdir: str) -> None:
        """Fetch (or re-validate) upstream repodata into the on-disk copy."""
        url = f"{self.channels[name]}/{subdir}/repodata.json"
        old = self._read_copy(name, subdir)
        headers = {}
        if old is not None and old.status == 200 and old.path.exists():
            if old.etag:
                headers["If-None-Match"] = old.etag
            if old.last_modified:
                headers["If-Modified-Since"] = old.last_modified
        directory = self._dir(name, subdir)
        directory.mkdir(parents=True, exist_ok=True)
        async with self.client().stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status == 304 and old is not None:
                meta = {**old.__dict__, "fetched_at": time.time()}
                meta.pop("path")
                self._write_meta(name, subdir, meta)
                return
            if status not in (200, 404):
                raise ProxyError(502, f"upstream {url} answered HTTP {status}")
            digest = hashlib.sha256()
            fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    if status == 200:
                        await self._write_capped(response, handle, digest, url)
                    handle.flush()
                    os.fsync(handle.fileno())
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            os.replace(temp, directory / "upstream.json")
            self._write_meta(
                name,
                subdir,
                {
                    "status": status,
                    "sha256": digest.hexdigest(),
                    "fetched_at": time.time(),
                    "etag": response.headers.get("etag"),
                    "last_modified": response.headers.get("last-modified"),
                    "url": url,
                },
            )

    async def _write_capped(
        self, response: httpx.Response, handle: Any, digest: Any, url: str
    ) -> None:
        """Decode the body into `handle`, refusing more than ``max_repodata_bytes``.

        httpx decodes gzip, deflate, br and zstd content-encodings as it streams, so a
        small compressed body can decode to any size: the count is of decoded bytes.
        """
        written = 0
        async for chunk in response.aiter_bytes():
            written += len(chunk)
            if written > self.max_repodata_bytes:
                raise ProxyError(
                    502,
                    f"upstream {url} decodes to more than "
                    f"CONDARCHIVE_PROXY_MAX_REPODATA_BYTES={self.max_repodata_bytes} bytes",
                )
            handle.write(chunk)
            digest.update(chunk)

    async def _refresh_in_background(self, name: str, subdir: str) -> None:
        async with self._lock("repodata", name, subdir):
            try:
                await self._fetch(name, subdir)
            except (httpx.HTTPError, ProxyError, OSError) as exc:
                log.warning("refreshing %s/%s failed; serving the old copy: %s", name, subdir, exc)

    def _schedule_refresh(self, name: str, subdir: str) -> None:
        key = (name, subdir)
        if key in self._refreshing:
            return
        task = asyncio.create_task(self._refresh_in_background(name, subdir))
        self._refreshing[key] = task
        task.add_done_callback(lambda _t: self._refreshing.pop(key, None))

    async def upstream(self, name: str, subdir: str) -> UpstreamCopy:
        """The upstream copy: at once if we have one (refreshing it if stale), else fetched."""
        self.check_subdir(subdir)
        copy = self._read_copy(name, subdir)
        if copy is not None:
            if time.time() - copy.fetched_at > self.ttl:
                self._schedule_refresh(name, subdir)
            return copy
        async with self._lock("repodata", name, subdir):
            copy = self._read_copy(name, subdir)
            if copy is None:
                try:
                    await self._fetch(name, subdir)
                except httpx.HTTPError as exc:
                    raise ProxyError(
                        502, f"upstream {self.channels[name]}/{subdir} unreachable: {exc}"
                    ) from exc
                copy = self._read_copy(name, subdir)
        if copy is None:  # pragma: no cover - _fetch always writes meta or raises
            raise ProxyError(502, f"no repodata for {name}/{subdir}")
        return copy

    # --- merged repodata --------------------------------------------------------------------

    async def repodata(self, name: str, subdir: str) -> MergedRepodata:
        """Upstream's listing plus the archived packages it no longer has."""
        copy = await self.upstream(name, subdir)
        cname = channel_name(self.channels[name])

        def fingerprint() -> str:
            with session_scope() as session:
                return archive_fingerprint(session, cname, subdir)

        key = hashlib.sha256(f"{copy.sha256}:{await run_in_threadpool(fingerprint)}".encode())
        stem = self._dir(name, subdir) / f"merged-{key.hexdigest()[:24]}"
        done = _sibling(stem, ".meta")
        if not done.exists():
            async with self._lock("merge", name, subdir):
                if not done.exists():
                    await run_in_threadpool(self._merge, copy, cname, subdir, stem)
        meta = json.loads(done.read_text())
        if meta["status"] == 404:
            raise ProxyError(404, f"{self.channels[name]} has no subdir {subdir}")
        return MergedRepodata(
            _sibling(stem, ".json"),
            _sibling(stem, ".json.zst"),
            meta["json_etag"],
            meta["zst_etag"],
            meta["added"],
        )

    def _merge(self, copy: UpstreamCopy, cname: str, subdir: str, stem: Path) -> None:
        with session_scope() as session:
            packages = archived_packages(session, cname, subdir)
        if copy.status == 200:
            with copy.path.open("rb") as handle:
                doc = json.load(handle)
        else:
            doc = empty_repodata(subdir)
        added = merge_archived(doc, packages)
        status = 404 if copy.status == 404 and not packages else 200
        body = encode(doc)
        zst = compress(body)
        _write_atomic(_sibling(stem, ".json"), body)
        _write_atomic(_sibling(stem, ".json.zst"), zst)
        meta = {
            "status": status,
            "json_etag": etag_of(body),
            "zst_etag": etag_of(zst),
            "added": len(added),
            "built": formatdate(usegmt=True),
        }
        _write_atomic(_sibling(stem, ".meta"), json.dumps(meta).encode())
        self._prune(stem)

    @staticmethod
    def _prune(keep: Path, older_than: float = 600.0) -> None:
        """Drop merged listings superseded a while ago (a slow client may still be reading one)."""
        cutoff = time.time() - older_than
        for path in keep.parent.glob("merged-*"):
            if not path.name.startswith(keep.name) and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)

    # --- packages ---------------------------------------------------------------------------

    def _lookup(self, copy: UpstreamCopy, subdir: str, filename: str) -> dict[str, Any] | None:
        """The upstream record of `filename`, read lazily from the on-disk copy."""
        if copy.status != 200:
            return None
        found = _lookup_cached(str(copy.path), copy.sha256, copy.url, subdir, filename)
        return json.loads(found) if found is not None else None

    async def package(self, name: str, subdir: str, filename: str) -> str:
        """The sha256 of the stored file, fetching and verifying it first if need be.

        The bytes served are those the merged listing names: for a file upstream lists,
        the archived copy with every hash of upstream's record (fetched now if there is
        none); for one it no longer lists, the first copy archived.
        """
        if not is_package_filename(filename):
            raise ProxyError(404, f"{filename!r} is not a conda package filename")
        self.check_subdir(subdir)
        cname = channel_name(self.channels[name])
        try:
            copy: UpstreamCopy | None = await self.upstream(name, subdir)
        except ProxyError:
            copy = None  # upstream unreachable: what we archived is all we can list
        record = await run_in_threadpool(self._lookup, copy, subdir, filename) if copy else None
        if record is None:
            sha256 = await run_in_threadpool(archived_sha256, cname, subdir, filename)
            if sha256:
                return sha256
            if copy is None:
                raise ProxyError(502, f"upstream {self.channels[name]}/{subdir} unreachable")
            raise ProxyError(404, f"{self.channels[name]}/{subdir} does not list {filename}")
        expected = Expected(
            record.get("sha256") or None, record.get("md5") or None, record.get("size") or None
        )
        match = (cname, subdir, filename, expected.sha256, expected.md5, expected.size)
        sha256 = await run_in_threadpool(archived_matching, *match)
        if sha256:
            return sha256
        async with self._lock("package", name, subdir, filename):
            sha256 = await run_in_threadpool(archived_matching, *match)
            if sha256:
                return sha256
            info = await self._fetch_package(record["url"], expected)
            record["channel"] = self.channels[name]
            await run_in_threadpool(self._record, record, info)
            return info.sha256

    async def _fetch_package(self, url: str, expected: Expected) -> BlobInfo:
        from app.archive.download import FetchError, fetch_to_store

        if expected.sha256:
            stored = await run_in_threadpool(self._stored, expected.sha256)
            if stored is not None:
                if mismatches(expected, stored):  # a true sha256 beside a wrong md5 or size
                    raise ProxyError(502, str(BlobMismatch(expected, stored, url)))
                return stored
        try:
            info, _created = await fetch_to_store(
                self.client(), url, expected, self.store, self.policy
            )
        except FetchError as exc:
            raise ProxyError(502, str(exc)) from exc
        return info

    def _stored(self, sha256: str) -> BlobInfo | None:
        with session_scope() as session:
            return stored_blob(session, self.store, sha256)

    def _record(self, record: dict[str, Any], info: BlobInfo) -> None:
        with session_scope() as session:
            record_proxied_package(session, record, info)


@lru_cache(maxsize=4096)
def _lookup_cached(path: str, sha256: str, url: str, subdir: str, filename: str) -> str | None:
    """The record of `filename` in the upstream copy at `path` (digest `sha256`), as JSON.

    Cached per copy (a refreshed copy has another digest), so serving a file again costs
    no re-read of upstream's repodata.
    """
    del sha256  # part of the cache key only
    stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
    parts = stem.rsplit("-", 2)
    if len(parts) != 3:
        return None
    base = url.rsplit("/", 2)[0]
    sparse = rattler.SparseRepoData(rattler.Channel(base), subdir, Path(path))
    try:
        records = sparse.load_records(parts[0], rattler.PackageFormatSelection.BOTH)
    except Exception:  # noqa: BLE001 - an invalid name is simply not listed
        return None
    finally:
        sparse.close()
    for record in records:
        if record.file_name == filename:
            return str(record.to_json())
    return None


@lru_cache(maxsize=1)
def get_proxy() -> Proxy:
    """One proxy per process, built from the settings on first use."""
    from app.archive.blobs import get_store
    from app.config import get_settings

    return Proxy(get_settings(), get_store())
