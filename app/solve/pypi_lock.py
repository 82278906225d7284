"""The PyPI part of a lock: resolved per target after the conda solve, from what it chose.

The conda solution fixes the Python version (its ``python`` record) and the packages
PyPI must not install again (:func:`app.solve.pypi_names.held_versions`); the target
fixes the platform. Each target's requirements go to uv (app/solve/pypi.py), and each
file uv chose gets its dependency lines from its core metadata (PEP 658). uv, git and
the metadata fetches all go through an egress proxy that admits only the allowed PyPI
indexes and VCS hosts.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from email.parser import HeaderParser
from functools import lru_cache
from typing import Any

import httpx
from uv import find_uv_bin

from app.config import Settings
from app.core.canonical import format_time
from app.core.egress_proxy import EgressProxy
from app.core.pypi_spec import INDEX_SETTING, PyPIPolicy, PyPISpec, index_refusal
from app.core.targets import Target
from app.locks.pypi_records import LockedPyPIPackage
from app.locks.store import LockedTarget
from app.solve.pypi import PyPIFailure, PyPIPackage, PyPIRequest, resolve
from app.solve.pypi_names import held_versions
from app.solve.solver import SolveFailure

log = logging.getLogger(__name__)

#: Bytes of one file's core metadata read at most (PEP 658 `.metadata`).
MAX_METADATA = 4 * 1024 * 1024


def policy_of(settings: Settings) -> PyPIPolicy:
    return PyPIPolicy(
        settings.allowed_pypi_entries, settings.allowed_vcs_entries, settings.default_pypi_index
    )


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
    policy = policy_of(settings)
    proxy = pypi_proxy(policy)
    locked = []
    for target in targets:
        packages: list[LockedPyPIPackage] = []
        if pypi.requirements:
            packages = resolve_target(target, pypi, exclude_newer, settings, policy, proxy)
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
) -> list[LockedPyPIPackage]:
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
        if (reason := index_refusal(package.url, policy)) is not None:
            raise SolveFailure(
                "index",
                f"target {target.name}: {package.name} resolves to a file outside "
                f"{INDEX_SETTING}: {reason}",
                {"target": target.name, "stage": "pypi", "url": package.url},
            )
    with httpx.Client(proxy=proxy.url, timeout=30.0, follow_redirects=False) as client:
        return [locked_package(package, client, pypi.indexes) for package in resolved]


def locked_package(
    package: PyPIPackage, client: httpx.Client, indexes: tuple[str, ...]
) -> LockedPyPIPackage:
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
