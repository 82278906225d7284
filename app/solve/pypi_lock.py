"""The PyPI part of a lock: resolved per target after the conda solve, from what it chose.

The conda solution fixes the Python version (its ``python`` record) and the packages
PyPI must not install again (:func:`app.solve.pypi_names.held_versions`); the target
fixes the platform. Each target's requirements go to uv (app/solve/pypi.py), and each
file uv chose gets its dependency lines from its core metadata (PEP 658). uv, git and
the metadata fetches all go through an egress proxy that admits only the allowed PyPI
indexes and VCS hosts.

A VCS requirement's commit becomes a source archive stored in the blob store here
(app/solve/pypi_vcs.py), since no downloader can fetch a git URL later: kind "vcs", its
``url`` ``git+<repository>@<commit>``. A direct URL's file is fetched and hashed here
(kind "url") and archived later like an index file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import replace
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from functools import lru_cache
from typing import IO, Any

import httpx
from uv import find_uv_bin

from app.archive.blobs import FilesystemStore
from app.config import Settings
from app.core.canonical import format_time
from app.core.egress_proxy import EgressProxy
from app.core.pypi_spec import (
    INDEX_SETTING,
    VCS_SETTING,
    PyPIPolicy,
    PyPISpec,
    index_refusal,
    vcs_refusal,
)
from app.core.targets import Target
from app.locks.pypi_records import InvalidPyPIPackage, LockedPyPIPackage
from app.locks.store import LockedTarget
from app.solve.pypi import PyPIFailure, PyPIPackage, PyPIRequest, resolve
from app.solve.pypi_names import held_versions
from app.solve.pypi_vcs import SourceArchive, make_source_archive
from app.solve.solver import SolveFailure

log = logging.getLogger(__name__)

#: Bytes of one file's core metadata read at most (PEP 658 `.metadata`).
MAX_METADATA = 4 * 1024 * 1024
#: Bytes of a direct URL's file read at most (to hash it when uv gave no size or hash).
MAX_DIRECT_FILE = 2 << 30


def proxy_entries(policy: PyPIPolicy) -> list[str]:
    """What uv (and git under it) may reach: the index entries, and each VCS host."""
    entries = list(policy.allowed_indexes)
    for entry in policy.allowed_vcs:
        entries += [entry] if "://" in entry else [f"https://{entry}", f"http://{entry}"]
    return entries


_proxies: dict[tuple[str, ...], EgressProxy] = {}


def pypi_proxy(policy: PyPIPolicy) -> EgressProxy:
    """One egress proxy per process and PyPI allowlist (the channels' proxy enforces the
    channel allowlist; this one the indexes' and VCS hosts')."""
    entries = tuple(proxy_entries(policy))
    proxy = _proxies.get(entries)
    if proxy is None or proxy.pid != os.getpid():
        proxy = EgressProxy(lambda: (list(entries), "https://invalid.invalid"))
        _proxies[entries] = proxy
    return proxy


@lru_cache(maxsize=1)
def uv_version() -> str:
    result = subprocess.run([find_uv_bin(), "--version"], capture_output=True, text=True)
    return result.stdout.strip().removeprefix("uv ").split()[0] if result.stdout else "unknown"


def conda_python(target: LockedTarget) -> str:
    """The version of Python the conda solution installs; a clear failure if none."""
    for record in target.records:
        if record.name == "python":
            return record.version
    raise SolveFailure(
        "unsatisfiable",
        f"target {target.name}: the PyPI part needs Python, but the conda solution has no "
        "python package; add python to the conda dependencies",
        {"target": target.name, "stage": "pypi"},
    )


def lock_pypi(
    targets: list[LockedTarget],
    pypi: PyPISpec,
    exclude_newer: datetime | None,
    settings: Settings,
) -> tuple[list[LockedTarget], dict[str, Any]]:
    """Each target with its PyPI packages and local lines; and the PyPI provenance."""
    policy = PyPIPolicy.of(settings)
    proxy = pypi_proxy(policy)
    sources = SourceArchiver(settings, proxy.url)  # one archive per commit, all targets
    locked = []
    for target in targets:
        packages: list[LockedPyPIPackage] = []
        if pypi.requirements:
            packages = resolve_target(target, pypi, exclude_newer, settings, policy, proxy, sources)
        locked.append(replace(target, pypi_packages=tuple(packages), pypi_local=pypi.local))
    provenance = {
        "resolver": {"name": "uv", "version": uv_version()},
        "indexes": list(pypi.indexes),
        "exclude_newer": format_time(exclude_newer),
        "builds": settings.pypi_builds,
        "resolved_at": format_time(datetime.now(UTC)),
    }
    return locked, provenance


def resolve_target(
    target: LockedTarget,
    pypi: PyPISpec,
    exclude_newer: datetime | None,
    settings: Settings,
    policy: PyPIPolicy,
    proxy: EgressProxy,
    sources: SourceArchiver | None = None,
) -> list[LockedPyPIPackage]:
    sources = sources or SourceArchiver(settings, proxy.url)
    request = PyPIRequest(
        requirements=pypi.requirements,
        index_urls=pypi.indexes,
        python_version=conda_python(target),
        target=Target(target.name, target.platform, target.virtual_packages),
        cache_dir=settings.pypi_cache_dir,
        conda_packages=held_versions(r.record for r in target.records),
        exclude_newer=exclude_newer,
        builds_allowed=settings.pypi_builds == "on",
        timeout=settings.pypi_timeout,
        proxy_url=proxy.url,
    )
    try:
        resolved = resolve(request)
    except PyPIFailure as failure:
        raise SolveFailure(
            failure.kind,
            f"target {target.name}: PyPI resolution failed: {failure.message}",
            {"target": target.name, "stage": "pypi", "explanation": failure.message},
        ) from None
    for package in resolved:
        if package.kind == "vcs":
            reason, setting = vcs_refusal(package.url, policy), VCS_SETTING
        else:
            reason, setting = index_refusal(package.url, policy), INDEX_SETTING
        if reason is not None:
            raise SolveFailure(
                "index",
                f"target {target.name}: {package.name} resolves to a file outside "
                f"{setting}: {reason}",
                {"target": target.name, "stage": "pypi", "url": package.url},
            )
    with httpx.Client(proxy=proxy.url, timeout=30.0, follow_redirects=False) as client:
        try:
            return [locked_package(package, client, pypi.indexes, sources) for package in resolved]
        except PyPIFailure as failure:
            raise SolveFailure(
                failure.kind,
                f"target {target.name}: {failure.message}",
                {"target": target.name, "stage": "pypi", "explanation": failure.message},
            ) from None
        except InvalidPyPIPackage as exc:  # an index listing a name or file no index should
            raise SolveFailure(
                "index",
                f"target {target.name}: the index gave {exc}",
                {"target": target.name, "stage": "pypi"},
            ) from None


class SourceArchiver:
    """Source archives of VCS commits for one lock: each made and stored once."""

    def __init__(self, settings: Settings, proxy_url: str | None) -> None:
        self.store = FilesystemStore(settings.resolved_blob_dir)
        self.proxy_url = proxy_url
        self.timeout = settings.pypi_timeout
        self._made: dict[tuple[str, str, str, str | None, str, str], SourceArchive] = {}

    def archive(self, package: PyPIPackage) -> SourceArchive:
        source = package.vcs
        assert source is not None
        key = (
            source.type,
            source.url,
            source.commit,
            source.subdirectory,
            package.name,
            package.version,
        )
        if key not in self._made:
            self._made[key] = make_source_archive(
                source, package.name, package.version, self.store, self.proxy_url, self.timeout
            )
        return self._made[key]


def locked_package(
    package: PyPIPackage,
    client: httpx.Client,
    indexes: tuple[str, ...],
    sources: SourceArchiver | None = None,
) -> LockedPyPIPackage:
    if package.kind == "vcs":
        assert sources is not None, "a VCS package needs a SourceArchiver"
        return vcs_package(package, sources.archive(package))
    if package.kind == "url":
        return direct_package(package, client)
    requires_python, requires = package.requires_python, package.requires
    metadata = core_metadata(client, package.url) if package.filename.endswith(".whl") else None
    if metadata is not None:
        requires_python = metadata.get("Requires-Python") or requires_python
        requires = tuple(metadata.get_all("Requires-Dist") or ())
    if package.size is None:
        raise SolveFailure(
            "index",
            f"{package.filename}: the index gives no size (PEP 700); the lock needs one",
            {"url": package.url},
        )
    return LockedPyPIPackage(
        name=package.name,
        version=package.version,
        url=package.url,
        filename=package.filename,
        sha256=package.sha256,
        size=package.size,
        requires_python=requires_python,
        requires=requires,
        kind="index",
        index=indexes[0] if len(indexes) == 1 else None,
    )


def core_metadata(client: httpx.Client, url: str) -> Any | None:
    """A wheel's METADATA from the index (PEP 658 ``<url>.metadata``), or None."""
    try:
        with client.stream("GET", url.split("#", 1)[0] + ".metadata") as response:
            if response.status_code != 200:
                return None
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_METADATA:
                    return None
    except httpx.HTTPError as exc:
        log.info("no core metadata for %s: %s", url, exc)
        return None
    return HeaderParser().parsestr(body.decode("utf-8", "replace"))


def vcs_package(package: PyPIPackage, archive: SourceArchive) -> LockedPyPIPackage:
    """kind "vcs": the source archive of the commit, already in the blob store."""
    source = package.vcs
    assert source is not None
    url = f"{source.type}+{source.url}@{source.commit}"
    if source.subdirectory:
        url += f"#subdirectory={source.subdirectory}"
    return LockedPyPIPackage(
        name=package.name,
        version=package.version,
        url=url,
        filename=archive.filename,
        sha256=archive.sha256,
        size=archive.size,
        requires_python=package.requires_python or archive.requires_python,
        requires=package.requires or archive.requires,
        kind="vcs",
        index=None,
        vcs={
            "type": source.type,
            "url": source.url,
            "requested_revision": source.requested_revision,
            "commit": source.commit,
        },
    )


def direct_package(package: PyPIPackage, client: httpx.Client) -> LockedPyPIPackage:
    """kind "url": the file at a direct reference, fetched through the egress proxy (each
    redirect hop checked there) and hashed; uv's sha256, when it gave one, must agree."""
    digest, size = hashlib.sha256(), 0
    with tempfile.SpooledTemporaryFile(max_size=16 << 20) as body:
        try:
            with client.stream("GET", package.url, follow_redirects=True) as response:
                if response.status_code != 200:
                    raise SolveFailure(
                        "index",
                        f"{package.name}: {package.url} answered {response.status_code}",
                        {"url": package.url},
                    )
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    size += len(chunk)
                    if size > MAX_DIRECT_FILE:
                        raise SolveFailure(
                            "index",
                            f"{package.name}: {package.url} is larger than {MAX_DIRECT_FILE} bytes",
                            {"url": package.url},
                        )
                    body.write(chunk)
        except httpx.HTTPError as exc:
            raise SolveFailure(
                "index", f"{package.name}: cannot fetch {package.url}: {exc}", {"url": package.url}
            ) from None
        sha256 = digest.hexdigest()
        if package.sha256 and package.sha256 != sha256:
            raise SolveFailure(
                "index",
                f"{package.name}: {package.url} changed while it was locked: uv saw sha256 "
                f"{package.sha256}, condarchive {sha256}",
                {"url": package.url},
            )
        if package.size is not None and package.size != size:
            raise SolveFailure(
                "index",
                f"{package.name}: {package.url} is {size} bytes, uv said {package.size}",
                {"url": package.url},
            )
        body.seek(0)
        metadata = file_metadata(body, package.filename)
    requires_python, requires = package.requires_python, package.requires
    if metadata is not None:
        requires_python = metadata.get("Requires-Python") or requires_python
        requires = tuple(metadata.get_all("Requires-Dist") or ())
    return LockedPyPIPackage(
        name=package.name,
        version=package.version or (metadata.get("Version") if metadata else "") or "",
        url=package.url,
        filename=package.filename,
        sha256=sha256,
        size=size,
        requires_python=requires_python,
        requires=requires,
        kind="url",
        index=None,
    )


def file_metadata(body: IO[bytes], filename: str) -> Message | None:
    """Core metadata from a wheel's ``.dist-info/METADATA`` or an sdist's ``PKG-INFO``."""
    text: bytes | None = None
    try:
        if filename.endswith(".whl"):
            with zipfile.ZipFile(body) as wheel:
                names = [
                    n
                    for n in wheel.namelist()
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
                ]
                if names and wheel.getinfo(names[0]).file_size <= MAX_METADATA:
                    text = wheel.read(names[0])
        elif filename.endswith((".tar.gz", ".tgz")):
            with tarfile.open(fileobj=body, mode="r:gz") as sdist:
                for member in sdist:
                    if member.name.count("/") == 1 and member.name.endswith("/PKG-INFO"):
                        if member.isfile() and member.size <= MAX_METADATA:
                            handle = sdist.extractfile(member)
                            text = handle.read() if handle else None
                        break
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        log.info("no metadata in %s: %s", filename, exc)
        return None
    return HeaderParser().parsestr(text.decode("utf-8", "replace")) if text else None
